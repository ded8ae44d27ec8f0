"""Ctrl-C or SIGTERM (a cluster pre-empting the job) ends training with a resumable checkpoint."""

import functools
import logging
import os
import signal
import threading
from pathlib import Path

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class CheckpointOnInterrupt(L.Callback):
    """Ctrl-C or SIGTERM during training: finish the current step, save ``<dirpath>/last.ckpt``, stop.

    Lightning turns a flag set on SIGTERM (what a cluster sends before pre-empting a job) into a stop
    at the end of the current training step (``SIGTERMException``); this callback's own handler sets
    that flag during training (see ``on_train_start`` for why). Ctrl-C is routed the same way: the
    first one sends this process a SIGTERM; a second one interrupts at once, without a checkpoint.
    The checkpoint then holds a consistent state after a whole step (weights, optimizer, schedule,
    loop counters, the data order's position, random states), which
    ``python src/train.py ckpt_path=last`` continues exactly.

    A signal during validation inside ``fit`` lets the validation finish first: Lightning would stop
    it after the current batch, and a run resumed from there skips the rest of that validation (no
    ``val/acc``, no best checkpoint for the epoch).
    """

    def __init__(self, dirpath: str, filename: str = "last"):
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self._previous_sigint = None
        self._stop_after_validation = False

    def _on_sigint(self, signum, frame) -> None:
        signal.signal(signal.SIGINT, self._previous_sigint or signal.default_int_handler)
        log.warning(
            "Ctrl-C: finishing this training step, then saving a checkpoint (Ctrl-C again to quit now)"
        )
        os.kill(os.getpid(), signal.SIGTERM)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)
            # In place of Lightning's SIGTERM handler (it comes back at teardown), which broadcasts to
            # the other processes from inside the handler: a collective that can meet another one (a
            # gradient all-reduce) and hang every process. This one passes the signal on to the
            # processes it started and sets the flag; Lightning broadcasts rank 0's flag at the start
            # of every step, where all processes meet anyway.
            signal.signal(signal.SIGTERM, functools.partial(self._on_sigterm, trainer))

    @staticmethod
    def _on_sigterm(trainer: L.Trainer, signum, frame) -> None:
        connector = trainer._signal_connector  # no public setter for the flag Lightning reads
        launcher = trainer.strategy.launcher
        if not connector.received_sigterm and launcher is not None:
            launcher.kill(signum)
        connector.received_sigterm = True

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)

    def on_validation_batch_end(self, trainer: L.Trainer, *args, **kwargs) -> None:
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking and trainer.received_sigterm:
            # Lightning reads this flag after each validation batch (and nowhere else during validation);
            # it has no public setter.
            trainer._signal_connector.received_sigterm = False
            self._stop_after_validation = True

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._stop_after_validation:  # the stop happens after the epoch's end (or, mid-epoch, now)
            self._stop_after_validation = False
            trainer._signal_connector.received_sigterm = True

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != TrainerFn.FITTING:
            return
        trainer.save_checkpoint(self.path)
        if trainer.is_global_zero:
            log.warning(
                "Interrupted after step %d (epoch %d): resumable checkpoint %s; continue with ckpt_path=last",
                trainer.global_step,
                trainer.current_epoch,
                self.path,
            )
