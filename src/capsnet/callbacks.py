"""Callbacks of this project (Lightning's own are configured in ``conf/callbacks``)."""

import logging
import os
import random
import signal
import threading
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from capsnet.errors import NonFiniteLossError
from capsnet.validation import ConfigError

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
        if value is None:  # a misspelt monitor would otherwise never stop the run
            logged = ", ".join(sorted(k for k in trainer.callback_metrics if k.startswith("val/")))
            raise ConfigError(
                f"callbacks.stop_at_accuracy.monitor={self.monitor!r} is not logged by validation; "
                f"it logs: {logged}"
            )
        elapsed = time.perf_counter() - self.start
        if float(value) < self.target:
            log.info("%s = %.4f after %.0f s (target %.4f)", self.monitor, float(value), elapsed, self.target)
            return
        self.reached_after_s = elapsed
        trainer.should_stop = True
        log.info("%s = %.4f >= %.4f after %.1f s: stopping", self.monitor, float(value), self.target, elapsed)
        for logger in trainer.loggers:
            logger.log_metrics({"time_to_target_s": elapsed}, step=trainer.global_step)


class RandomStateCheckpoint(L.Callback):
    """Saves the random number generators' states in every checkpoint and restores them on resume,
    so that a resumed run draws the same augmentation shifts as the run it continues."""

    # Tensors, numbers and lists only: checkpoints load with torch.load(weights_only=True).
    def state_dict(self) -> dict:
        _, keys, position, has_gauss, cached_gauss = np.random.get_state(legacy=True)
        version, python_state, python_gauss = random.getstate()
        state = {
            "torch": torch.get_rng_state(),
            "numpy": [torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gauss],
            "python": [version, list(python_state), python_gauss],
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        torch.set_rng_state(state["torch"])
        keys, position, has_gauss, cached_gauss = state["numpy"]
        np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), position, has_gauss, cached_gauss))
        version, python_state, python_gauss = state["python"]
        random.setstate((version, tuple(python_state), python_gauss))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


class CheckpointOnInterrupt(L.Callback):
    """Ctrl-C or SIGTERM during training: finish the current step, save ``<dirpath>/last.ckpt``, stop.

    Lightning already turns SIGTERM (what a cluster sends before pre-empting a job) into a stop at
    the end of the current training step (``SIGTERMException``). Ctrl-C is routed the same way: the
    first one sends this process a SIGTERM; a second one interrupts at once, without a checkpoint.
    The checkpoint then holds a consistent state after a whole step (weights, optimizer, schedule,
    loop counters, the data order's position, random states), which
    ``python src/train.py ckpt_path=last`` continues exactly.
    """

    def __init__(self, dirpath: str, filename: str = "last"):
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self._previous_sigint = None

    def _on_sigint(self, signum, frame) -> None:
        signal.signal(signal.SIGINT, self._previous_sigint or signal.default_int_handler)
        log.warning(
            "Ctrl-C: finishing this training step, then saving a checkpoint (Ctrl-C again to quit now)"
        )
        os.kill(os.getpid(), signal.SIGTERM)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)

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


class StopOnNonFiniteLoss(L.Callback):
    """Stops training at the first non-finite loss, before any checkpoint of the damaged weights.

    Every step adds one device-side flag update (no host synchronisation); the flag is read every
    ``check_every_n_steps`` steps and before every checkpoint, so the checkpoints on disk are all from
    before the fault. The error names the first bad step and its loss terms, and what to try.
    """

    def __init__(self, check_every_n_steps: int = 50):
        self.check_every_n_steps = check_every_n_steps
        self._first_bad: torch.Tensor | None = None  # [step, *loss terms]; step -1: none yet
        self._term_names: tuple[str, ...] = ()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        terms = pl_module.last_loss_terms  # a NamedTuple of scalar tensors, `total` first
        values = torch.stack([t.detach().float() for t in terms])
        if self._first_bad is None:
            self._term_names = terms._fields
            self._first_bad = torch.full((1 + len(values),), -1.0, device=values.device)
        bad_now = ~torch.isfinite(values[0]) & (self._first_bad[0] < 0)
        step = torch.tensor([trainer.global_step], device=values.device, dtype=values.dtype)
        self._first_bad = torch.where(bad_now, torch.cat([step, values]), self._first_bad)
        if trainer.global_step % self.check_every_n_steps == 0:
            self._raise_if_bad(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._raise_if_bad(trainer)

    def on_validation_start(self, trainer, pl_module) -> None:
        self._raise_if_bad(trainer)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self._raise_if_bad(trainer)

    def _raise_if_bad(self, trainer) -> None:
        if self._first_bad is None or self._first_bad[0].item() < 0:
            return
        step, *values = self._first_bad.tolist()
        terms = ", ".join(f"{name}={value}" for name, value in zip(self._term_names, values, strict=True))
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        raise NonFiniteLossError(
            f"non-finite loss at training step {int(step)}: {terms}. No checkpoint was written after it"
            + (f"; the best one before it is {best}" if best else "")
            + ". Try a lower model.optimizer.lr, trainer.gradient_clip_val=1.0, routing.detach_inner=true, "
            "or trainer.precision=32 if it ran in 16-mixed."
        )
