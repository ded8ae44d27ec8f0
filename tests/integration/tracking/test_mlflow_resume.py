"""A resumed run continues its MLflow run: one run, each epoch's metrics, ``FINISHED``; against a local
MLflow store (a folder, ``file:``), so it runs in ``make test`` with the project's own MLflow client."""

import os

import pytest

from tests.helpers import run_entry


@pytest.fixture
def mlflow_env(tmp_path, monkeypatch):
    uri = f"file://{tmp_path / 'mlruns'}"
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for this process's client too
    return uri, {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_ALLOW_FILE_STORE": "true"}


def test_a_resumed_run_continues_its_mlflow_run(tiny_overrides, mlflow_env, tmp_path):
    from mlflow import MlflowClient

    uri, env = mlflow_env
    overrides = [
        *tiny_overrides,
        "logger=mlflow",
        "+trainer.limit_train_batches=3",
        "trainer.log_every_n_steps=1",
    ]
    first = run_entry(
        "train.py", [*overrides, "trainer.max_epochs=1", "test=false"], tmp_path / "run", env=env
    )
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = run_entry(
        "train.py",
        [*overrides, "trainer.max_epochs=2", f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}"],
        tmp_path / "run",
        env=env,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("capsnet").experiment_id])
    assert len(runs) == 1, [run.info.run_name for run in runs]
    (run,) = runs
    assert run.info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/total_loss")]
    assert steps == list(range(6))
    assert len(client.get_metric_history(run.info.run_id, "val/acc")) == 2
    assert "test/acc" in run.data.metrics
    # MLflow never changes a parameter: the first part's stay, the resumed part's changes are tags
    assert (run.data.params["trainer/max_epochs"], run.data.params["test"]) == ("1", "False")
    assert (run.data.tags["resumed/trainer/max_epochs"], run.data.tags["resumed/test"]) == ("2", "True")
    assert run.data.tags["resumed/ckpt_path"].endswith("last.ckpt")
