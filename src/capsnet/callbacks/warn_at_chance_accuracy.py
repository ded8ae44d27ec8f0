"""A warning when training accuracy is still at chance level after a warm-up: the run is not learning.

A learning rate far too high (``model.optimizer.lr=1e3``) need not produce a NaN that
``StopOnNonFiniteLoss`` would catch: the margin loss is bounded, and the capsules can collapse to
lengths that score 1 / num_classes whatever the input. Nothing fails; the run just never learns.
"""

import logging

import lightning as L

log = logging.getLogger(__name__)


class WarnAtChanceAccuracy(L.Callback):
    """Once, after ``after_steps`` steps: warn if this epoch's training accuracy so far is at most
    ``margin`` times chance, naming the learning rate."""

    def __init__(self, after_steps: int = 200, margin: float = 1.5):
        self.after_steps, self.margin = after_steps, margin

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if trainer.global_step != self.after_steps:
            return
        accuracy = float(pl_module.accuracy["train_acc"].compute())  # over every rank
        chance = pl_module.chance_accuracy()
        if accuracy > self.margin * chance or not trainer.is_global_zero:
            return
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        log.warning(
            "Training accuracy is %.1f%% after %d steps, chance level (%.0f%%): the model is not learning. "
            "The learning rate may be too high: model.optimizer.lr=%s (now %.3g; the paper's is 0.001)",
            100 * accuracy,
            trainer.global_step,
            100 * chance,
            pl_module.hparams["optimizer"].get("lr"),
            lr,
        )
