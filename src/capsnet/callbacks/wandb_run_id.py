"""The W&B run id in every checkpoint, so that a run resumed from it logs into the same W&B run."""

import lightning as L
from lightning.pytorch.loggers import WandbLogger

WANDB_RUN_ID_KEY = "wandb_run_id"  # where checkpoints keep the W&B run they belong to


class WandbRunInCheckpoint(L.Callback):
    """Writes the W&B run id into every checkpoint, so that resuming from it continues that run."""

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger) and logger._experiment is not None:
                checkpoint[WANDB_RUN_ID_KEY] = logger.version
