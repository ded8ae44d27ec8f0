"""The MLflow run id in every checkpoint, so that a run resumed from it logs into the same MLflow run."""

import lightning as L
from lightning.pytorch.loggers import MLFlowLogger

MLFLOW_RUN_ID_KEY = "mlflow_run_id"  # where checkpoints keep the MLflow run they belong to


class MlflowRunInCheckpoint(L.Callback):
    """Writes the id of the run an MLflow logger has started into every checkpoint; a run resumed from
    it continues that MLflow run (``capsnet.run.checkpoints.continue_tracking_runs``)."""

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, MLFlowLogger) and logger._initialized:  # never starts a run itself
                checkpoint[MLFLOW_RUN_ID_KEY] = logger.run_id
