"""StopAtAccuracy: Lightning's EarlyStopping at a target accuracy, reached or passed."""

import time

import torch

from capsnet.callbacks.stop_at_accuracy import StopAtAccuracy


def test_reaching_the_target_exactly_stops():
    accuracy = torch.tensor(9900 / 10000)  # float32, as torchmetrics computes it
    assert StopAtAccuracy(target=0.99)._evaluate_stopping_criteria(accuracy)[0]
    assert not StopAtAccuracy(target=0.99)._evaluate_stopping_criteria(torch.tensor(9899 / 10000))[0]


def test_no_patience_limit():
    callback = StopAtAccuracy(target=0.99)
    for _ in range(100):  # 100 validations without progress: still training
        assert not callback._evaluate_stopping_criteria(torch.tensor(0.5))[0]


def test_a_resumed_runs_clock_goes_on_from_the_checkpoint():
    before = StopAtAccuracy(target=0.99)
    before.start -= 300.0  # five minutes into the run when it was interrupted
    state = before.state_dict()
    resumed = StopAtAccuracy(target=0.99)
    resumed.load_state_dict(state)
    assert 300.0 <= time.perf_counter() - resumed.start < 310.0
