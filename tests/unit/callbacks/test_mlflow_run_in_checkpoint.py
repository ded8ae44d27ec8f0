"""Checkpoints carry their MLflow run; a resumed run continues it (the whole path, with MLflow's own
store: tests/integration/tracking/test_mlflow_resume.py)."""

from types import SimpleNamespace

from lightning.pytorch.loggers import MLFlowLogger
from omegaconf import OmegaConf

from capsnet.callbacks.mlflow_run_in_checkpoint import MLFLOW_RUN_ID_KEY, MlflowRunInCheckpoint
from capsnet.run.checkpoints import continue_tracking_runs


def _logger(run_id: str | None) -> MLFlowLogger:
    logger = MLFlowLogger(tracking_uri="http://127.0.0.1:9", run_id=run_id)  # never contacted
    logger._initialized = run_id is not None
    return logger


def test_checkpoints_hold_the_started_mlflow_run_only():
    checkpoint = {}
    MlflowRunInCheckpoint().on_save_checkpoint(SimpleNamespace(loggers=[_logger(None)]), None, checkpoint)
    assert checkpoint == {}  # a logger that has not started its run is not made to start one
    MlflowRunInCheckpoint().on_save_checkpoint(SimpleNamespace(loggers=[_logger("abc")]), None, checkpoint)
    assert checkpoint == {MLFLOW_RUN_ID_KEY: "abc"}


def test_resuming_continues_the_checkpoints_mlflow_run_unless_one_is_named():
    cfg = OmegaConf.create({"logger": {"mlflow": {"run_id": None}, "csv": {}}})
    continue_tracking_runs(cfg, {MLFLOW_RUN_ID_KEY: "abc"})
    assert cfg.logger.mlflow.run_id == "abc" and "id" not in cfg.logger.csv
    cfg = OmegaConf.create({"logger": {"mlflow": {"run_id": "chosen"}}})
    continue_tracking_runs(cfg, {MLFLOW_RUN_ID_KEY: "abc"})
    assert cfg.logger.mlflow.run_id == "chosen"
    cfg = OmegaConf.create({"logger": {"mlflow": {"run_id": None}}})
    continue_tracking_runs(cfg, {})  # a checkpoint of a run without MLflow: a new MLflow run
    assert cfg.logger.mlflow.run_id is None
