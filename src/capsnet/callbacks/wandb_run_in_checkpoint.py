"""The W&B run id and its history position in every checkpoint, so that a run resumed from it logs
into the same W&B run, after the rows it already has."""

import lightning as L
from lightning.pytorch.loggers import WandbLogger

WANDB_RUN_ID_KEY = "wandb_run_id"  # where checkpoints keep the W&B run they belong to
WANDB_STEP_KEY = "wandb_step"  # and the next row of that run's history


def _started_wandb_runs(trainer: L.Trainer):
    return [
        logger.experiment
        for logger in trainer.loggers
        if isinstance(logger, WandbLogger) and logger._experiment is not None
    ]


class WandbRunInCheckpoint(L.Callback):
    """Writes the W&B run id and its next history row into every checkpoint; resumed from it, the run
    continues that W&B run from that row on.

    W&B numbers a run's history rows (``_step``) and keeps only increasing ones. A run resumed online
    learns the last row from W&B's server; one resumed offline (or against a server that does not say)
    starts again at 0, and its rows would collide with the first part's when uploaded. So the resumed
    run moves on to the row the checkpoint recorded first (never back).
    """

    def __init__(self):
        self._resume_row: int | None = None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        for run in _started_wandb_runs(trainer):
            checkpoint[WANDB_RUN_ID_KEY] = run.id
            checkpoint[WANDB_STEP_KEY] = run.step

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self._resume_row = checkpoint.get(WANDB_STEP_KEY)

    def on_train_start(self, trainer, pl_module) -> None:
        if self._resume_row is None:
            return
        for run in _started_wandb_runs(trainer):
            if run.step < self._resume_row:  # the next row logged lands there
                run.log({"trainer/global_step": trainer.global_step}, step=self._resume_row, commit=False)
