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

    Lightning turns a flag (``received_sigterm``) into a stop at the end of the current training step
    (``SIGTERMException``). This callback's handler of SIGTERM (what a cluster sends before pre-empting
    a job) only notes the signal; after every training step, and after every validation, all processes
    agree whether any of them was signalled, and if so all of them set the flag (see
    ``_stop_if_any_process_was_signalled`` for why). Ctrl-C is routed the same way: the first one
    sends this process a SIGTERM; a second one interrupts at once, without a checkpoint. The checkpoint
    then holds a consistent state after a whole step (weights, optimizer, schedule, loop counters, the
    data order's position, random states), which ``python src/train.py ckpt_path=last`` continues
    exactly.

    A signal during validation inside ``fit`` lets the validation finish first (Lightning would stop
    it after the current batch, and a run resumed from there would skip the rest of that validation:
    no ``val/acc``, no best checkpoint for the epoch), then stops.
    """

    def __init__(self, dirpath: str, filename: str = "last"):
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self._previous_sigint = None
        self._signalled = False

    def _on_sigint(self, signum, frame) -> None:
        signal.signal(signal.SIGINT, self._previous_sigint or signal.default_int_handler)
        log.warning(
            "Ctrl-C: finishing this training step, then saving a checkpoint (Ctrl-C again to quit now)"
        )
        os.kill(os.getpid(), signal.SIGTERM)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._signalled = False
        if threading.current_thread() is threading.main_thread():
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)
            # In place of Lightning's SIGTERM handler (it comes back at teardown), which sets the flag
            # at once and broadcasts to the other processes from inside the handler: a collective that
            # can meet a gradient all-reduce and hang every process.
            signal.signal(signal.SIGTERM, functools.partial(self._on_sigterm, trainer))

    def _on_sigterm(self, trainer: L.Trainer, signum, frame) -> None:
        launcher = trainer.strategy.launcher
        if not self._signalled and launcher is not None:  # the processes this one started
            launcher.kill(signum)
        self._signalled = True

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)

    def on_train_batch_end(self, trainer: L.Trainer, *args, **kwargs) -> None:
        self._stop_if_any_process_was_signalled(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self._stop_if_any_process_was_signalled(trainer)

    def _stop_if_any_process_was_signalled(self, trainer: L.Trainer) -> None:
        """Every process sets Lightning's flag at the same point of the same step, or none does.

        Lightning stops each process on its own flag at the end of a step. A signal that reached one
        process before that check and another one after it (the handler passes it on a moment later)
        stopped the first, which then waited in the checkpoint's barrier while the other went on to
        the next step's broadcast: both hung. One small all-reduce a step (one process: none).
        """
        if trainer.strategy.reduce_boolean_decision(self._signalled, all=False):
            trainer._signal_connector.received_sigterm = True  # no public setter for the flag Lightning reads

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
