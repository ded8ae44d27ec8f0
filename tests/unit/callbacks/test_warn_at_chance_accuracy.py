"""WarnAtChanceAccuracy: a run that does not learn is named, with its learning rate."""

from types import SimpleNamespace

import torch
from torchmetrics.classification import MulticlassAccuracy

from capsnet.callbacks.warn_at_chance_accuracy import WarnAtChanceAccuracy


def _run(predicted: torch.Tensor, step: int):
    accuracy = MulticlassAccuracy(10, average="micro")
    accuracy.update(predicted, torch.arange(100) % 10)
    module = SimpleNamespace(
        accuracy={"train_acc": accuracy}, hparams={"optimizer": {"lr": 1000.0}}, chance_accuracy=lambda: 0.1
    )
    optimizer = SimpleNamespace(param_groups=[{"lr": 1000.0}])
    trainer = SimpleNamespace(global_step=step, optimizers=[optimizer], is_global_zero=True)
    WarnAtChanceAccuracy(after_steps=200).on_train_batch_end(trainer, module, None, None, 0)


def test_chance_accuracy_after_the_warm_up_is_named_with_the_learning_rate(caplog):
    _run(torch.zeros(100, dtype=torch.long), step=200)  # always class 0: 10% right
    assert "Training accuracy is 10.0% after 200 steps, chance level (10%)" in caplog.text
    assert "model.optimizer.lr=1000.0" in caplog.text


def test_no_warning_while_learning_or_before_the_warm_up(caplog):
    _run(torch.arange(100) % 10, step=200)  # all right
    _run(torch.zeros(100, dtype=torch.long), step=199)
    assert "chance level" not in caplog.text
