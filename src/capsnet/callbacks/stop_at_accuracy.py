"""Stop training once validation accuracy reaches a target, and log how long that took."""

import logging
import sys
import time

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason
from lightning.pytorch.trainer.states import TrainerFn

from capsnet.errors import ConfigError

log = logging.getLogger(__name__)


class StopAtAccuracy(EarlyStopping):
    """Lightning's ``EarlyStopping`` with ``stopping_threshold=target`` (and no patience), plus the time.

    The clock starts when the callback is built, before data is prepared, so ``time_to_target_s`` (logged
    when the target is reached) is the wall time of the run up to that validation, data loading included.
    Validate several times an epoch (``trainer.val_check_interval``) to stop close to the target, and set
    ``trainer.min_epochs=0`` to allow a stop within the first epoch. A resumed run's clock goes on from
    where the checkpoint left it (the time between the interruption and the resume is not counted).
    """

    def __init__(self, target: float = 0.99, monitor: str = "val/acc"):
        # EarlyStopping stops when the metric is strictly above its threshold; 9,900 of 10,000 right is
        # 0.99 and must stop too. Accuracies are float32: the float32 just below the target makes > mean >=.
        just_below = float(np.nextafter(np.float32(target), np.float32(-np.inf)))
        super().__init__(
            monitor=monitor,
            mode="max",
            stopping_threshold=just_below,
            patience=sys.maxsize,  # stop at the target only, never for a lack of progress
            check_on_train_epoch_end=False,  # check after every validation, mid-epoch ones too
        )
        self.target = target
        self.start = time.perf_counter()
        self.reached_after_s: float | None = None

    def state_dict(self) -> dict:
        elapsed = time.perf_counter() - self.start
        return {**super().state_dict(), "elapsed_s": elapsed, "reached_after_s": self.reached_after_s}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self.start = time.perf_counter() - state_dict.get("elapsed_s", 0.0)
        self.reached_after_s = state_dict.get("reached_after_s")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        fitting = trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking
        if fitting and self.monitor not in trainer.callback_metrics:
            # EarlyStopping would raise a RuntimeError with a traceback; this is a config mistake.
            logged = ", ".join(sorted(k for k in trainer.callback_metrics if k.startswith("val/")))
            raise ConfigError(
                f"callbacks.stop_at_accuracy.monitor={self.monitor!r} is not logged by validation; "
                f"it logs: {logged}"
            )
        super().on_validation_end(trainer, pl_module)
        elapsed = time.perf_counter() - self.start
        if not fitting or self.reached_after_s is not None:
            return
        value = float(trainer.callback_metrics[self.monitor])
        if self.stopping_reason != EarlyStoppingReason.STOPPING_THRESHOLD:
            log.info("%s = %.4f after %.0f s (target %.4f)", self.monitor, value, elapsed, self.target)
            return
        self.reached_after_s = elapsed
        log.info("%s = %.4f >= %.4f after %.1f s: stopping", self.monitor, value, self.target, elapsed)
        for logger in trainer.loggers:
            logger.log_metrics({"time_to_target_s": elapsed}, step=trainer.global_step)
