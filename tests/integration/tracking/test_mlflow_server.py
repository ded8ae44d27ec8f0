"""``logger=mlflow`` against a real ``mlflow server`` on 127.0.0.1 (``make test-tracking-servers``): the
same metrics, hyperparameters and pictures as W&B gets, as MLflow metrics, params and artifacts.

The server runs from a virtual environment of its own (``.venv-mlflow-server``, full MLflow); the
project's environment has only the client (``mlflow-skinny``, the ``mlflow`` extra).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, free_port, running_server, server_binary

pytestmark = pytest.mark.tracking_server


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory):
    binary = server_binary("MLFLOW", ROOT / ".venv-mlflow-server" / "bin" / "mlflow")
    store, port = tmp_path_factory.mktemp("mlflow"), free_port()
    command = [str(binary), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{store / 'runs.db'}"]
    command += ["--artifacts-destination", str(store / "artifacts")]
    uri = f"http://127.0.0.1:{port}"
    with running_server(command, f"{uri}/health"):
        yield uri


def _artifacts(client, run_id: str, path: str | None = None) -> list[str]:
    found = []
    for entry in client.list_artifacts(run_id, path):
        found += _artifacts(client, run_id, entry.path) if entry.is_dir else [entry.path]
    return found


def test_mlflow_gets_the_metrics_hyperparameters_and_pictures(tracking_uri, tiny_overrides, tmp_path):
    from mlflow import MlflowClient

    overrides = [
        *tiny_overrides,
        "trainer.max_epochs=2",
        "+trainer.limit_train_batches=3",
        "trainer.log_every_n_steps=1",
        "logger=mlflow",
        "routing.iterations=2",
        f"paths.log_dir={tmp_path}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    result = subprocess.run(
        [sys.executable, str(ROOT / "src" / "train.py"), *overrides],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "takes no pictures" not in result.stdout + result.stderr

    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("capsnet").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name.endswith("routing.iterations=2")
    assert run.data.params["routing/iterations"] == "2"
    assert {"train/lr", "train/total_loss", "val/acc", "val/acc_best", "test/acc"} <= set(run.data.metrics)
    assert len(client.get_metric_history(run.info.run_id, "val/acc")) == 2
    stored = _artifacts(client, run.info.run_id)
    pictures = {path.split("/")[1].split("+")[0] for path in stored if path.endswith(".png")}
    assert pictures == {
        f"{stage}~{name}"
        for stage, name in [
            ("val", "reconstructions"),
            ("test", "reconstructions"),
            ("test", "pose_perturbation"),
            ("test", "routing_entropy"),
            ("test", "final_couplings"),
            ("test", "confusion_matrix"),
            ("test", "capsule_lengths"),
        ]
    }
    assert (
        sum(path.startswith("images/val~reconstructions+") and path.endswith(".png") for path in stored) == 2
    )
    (table,) = [path for path in stored if path.startswith("tables/test_examples_step")]
    downloaded = Path(client.download_artifacts(run.info.run_id, table, str(tmp_path)))
    assert downloaded.read_text().splitlines()[0].startswith("label,prediction,length_0")
