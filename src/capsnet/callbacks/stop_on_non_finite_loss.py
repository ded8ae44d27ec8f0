"""Stop at the first NaN or infinite loss, before a checkpoint of the damaged weights is written."""

import lightning as L
import torch

from capsnet.errors import NonFiniteLossError


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
