"""W&B's gradient and parameter histograms (``wandb.watch``): off unless ``log`` is set."""

import logging

import lightning as L
from lightning.pytorch.loggers import WandbLogger

log = logging.getLogger(__name__)


class WatchModel(L.Callback):
    """``log``: gradients, parameters or all (null: off), every ``log_freq`` steps, to each W&B logger."""

    def __init__(self, log: str | None = None, log_freq: int = 100):
        self.what, self.log_freq = log, log_freq

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.what is None:
            return
        wandb_loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        if not wandb_loggers and trainer.is_global_zero:
            log.warning("callbacks.wandb_watch.log=%s: no W&B logger in this run (logger=wandb)", self.what)
        for logger in wandb_loggers:
            logger.watch(pl_module, log=self.what, log_freq=self.log_freq)
