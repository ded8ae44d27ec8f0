"""Callbacks of this project (Lightning's own are configured in ``conf/callbacks``)."""

import logging
import time

import lightning as L

log = logging.getLogger(__name__)


class StopAtAccuracy(L.Callback):
    """Stop training once ``monitor`` (validation accuracy) reaches ``target``; report the time it took.

    The clock starts when the callback is built, before data is prepared, so the reported
    ``time_to_target_s`` is the wall time of the run up to that validation, data loading included.
    Validate several times an epoch (``trainer.val_check_interval``) to stop close to the target,
    and set ``trainer.min_epochs=0`` to allow a stop within the first epoch.
    """

    def __init__(self, target: float = 0.99, monitor: str = "val/acc"):
        self.target, self.monitor = target, monitor
        self.start = time.perf_counter()
        self.reached_after_s: float | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # on_validation_end runs after the module's epoch-end hook has logged the accuracy.
        if trainer.sanity_checking:
            return
        if self.reached_after_s is not None:
            # Lightning refuses (and forgets) a stop before trainer.min_epochs: ask again.
            trainer.should_stop = True
            return
        value = trainer.callback_metrics.get(self.monitor)
        elapsed = time.perf_counter() - self.start
        if value is None or float(value) < self.target:
            log.info("%s = %s after %.0f s (target %.4f)", self.monitor, value, elapsed, self.target)
            return
        self.reached_after_s = elapsed
        trainer.should_stop = True
        log.info("%s = %.4f >= %.4f after %.1f s: stopping", self.monitor, float(value), self.target, elapsed)
        for logger in trainer.loggers:
            logger.log_metrics({"time_to_target_s": elapsed}, step=trainer.global_step)
