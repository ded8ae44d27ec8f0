"""The warning before a bf16 run on a CPU that emulates bfloat16, and the run-length line's advice there
(the line in a real run: tests/integration/train/test_train.py)."""

import logging
from types import SimpleNamespace

import pytest
import torch

import capsnet.callbacks.run_length_estimate as run_length_estimate
from capsnet.callbacks.run_length_estimate import RunLengthEstimate, matmul_gflops, slow_bfloat16


@pytest.fixture(autouse=True)
def measured_anew():
    """Each test measures (with its own rates); a process otherwise measures once."""
    slow_bfloat16.cache_clear()
    yield
    slow_bfloat16.cache_clear()


def _with_rates(monkeypatch, rates) -> None:
    monkeypatch.setattr(run_length_estimate, "matmul_gflops", rates)


def _trainer(device: str, precision: str):
    return SimpleNamespace(
        strategy=SimpleNamespace(root_device=torch.device(device)), precision=precision, is_global_zero=True
    )


@pytest.mark.parametrize(
    ("device", "precision", "bf16_rate", "warned"),
    [
        ("cpu", "bf16-mixed", 3.0, True),  # an AVX2-only CPU
        ("cpu", "bf16-true", 3.0, True),
        ("cpu", "bf16-mixed", 900.0, False),  # AVX-512 BF16
        ("cpu", "32-true", 3.0, False),
        ("meta", "bf16-mixed", 3.0, False),  # not a CPU run
    ],
)
def test_bf16_on_a_cpu_that_emulates_it_is_named_before_training(
    monkeypatch, caplog, device, precision, bf16_rate, warned
):
    _with_rates(monkeypatch, {torch.bfloat16: bf16_rate, torch.float32: 140.0}.get)
    with caplog.at_level(logging.WARNING, logger=run_length_estimate.__name__):
        RunLengthEstimate().on_fit_start(_trainer(device, precision), None)
    expected = (
        f"trainer.precision={precision} on a CPU without fast bfloat16 (no AVX-512 BF16 or AMX): its bf16 "
        "matmuls run at 3.0 GFLOP/s, float32 at 140.0, so this run trains many times slower than in "
        "float32; for speed add trainer.precision=32"
    )
    assert [r.getMessage() for r in caplog.records] == ([expected] if warned else [])


def test_the_matmul_rates_are_measured():
    assert matmul_gflops(torch.float32, size=64, repeats=2) > 0
    assert matmul_gflops(torch.bfloat16, size=64, repeats=2) > 0


def test_both_rates_are_measured_on_one_thread_and_the_thread_count_restored(monkeypatch):
    seen = []
    _with_rates(monkeypatch, lambda dtype: seen.append(torch.get_num_threads()) or 1.0)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert slow_bfloat16() is None
        assert seen == [1, 1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def _run_length_line(caplog, callback: RunLengthEstimate) -> str:
    trainer = _trainer("cpu", "32-true")
    trainer.global_step, trainer.world_size, trainer.estimated_stepping_batches = 0, 1, 100
    callback.on_fit_start(trainer, None)
    with caplog.at_level(logging.INFO):
        for step in range(3):
            callback.on_train_batch_start(trainer, None, None, step)
            trainer.global_step += 1
            callback.on_train_batch_end(trainer, None, None, None, step)
    (line,) = [r.getMessage() for r in caplog.records if "Training on cpu" in r.getMessage()]
    return line


@pytest.mark.parametrize(("bf16_rate", "advice"), [(3.0, " trainer.precision=32"), (900.0, "")])
def test_the_fast_recipe_named_runs_in_float32_where_bf16_is_emulated(monkeypatch, caplog, bf16_rate, advice):
    _with_rates(monkeypatch, {torch.bfloat16: bf16_rate, torch.float32: 140.0}.get)
    line = _run_length_line(caplog, RunLengthEstimate(timed_steps=1))
    assert line.endswith(f"for a fast result on a CPU: python src/train.py experiment=fast_cpu{advice}")


def test_a_run_of_the_fast_recipe_does_not_name_it(monkeypatch, caplog):
    _with_rates(monkeypatch, {torch.bfloat16: 3.0, torch.float32: 140.0}.get)
    line = _run_length_line(caplog, RunLengthEstimate(timed_steps=1, suggest_fast_cpu=False))
    assert line.startswith("Training on cpu") and "fast_cpu" not in line


def test_the_measurement_draws_nothing_from_the_global_generator():
    """A resumed run restores the random state before training starts: a draw from it changes the run."""
    state = torch.get_rng_state()
    slow_bfloat16()
    assert torch.equal(torch.get_rng_state(), state)


def test_a_process_measures_once(monkeypatch):
    calls = []
    _with_rates(monkeypatch, lambda dtype: calls.append(dtype) or 1.0)
    slow_bfloat16(), slow_bfloat16()
    assert calls == [torch.bfloat16, torch.float32]
