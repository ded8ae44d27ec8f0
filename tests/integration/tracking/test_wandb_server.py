"""W&B's online path end to end, against a W&B-compatible server on 127.0.0.1.
(``make test-tracking-servers``)

The server is openwandb, a test tool installed by the Makefile in a virtual environment of its own
(``.venv-wandb-server``; its licence allows no other use here). W&B's public API (``wandb.Api``) sends
queries it does not know, so the checks read its REST API: run state, config, scalar history by step,
files. What it cannot show (groups, histograms, custom-chart panels) is checked offline instead
(``test_wandb_offline.py``).
"""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import ROOT, free_port, running_server, server_binary

pytestmark = pytest.mark.tracking_server

API_KEY = "local" + "0" * 40  # the key openwandb gives its default user


def _get(url: str):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {API_KEY}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The base URL of a fresh server, stopped at the end."""
    binary = server_binary("OPENWANDB", ROOT / ".venv-wandb-server" / "bin" / "openwandb")
    data, port = tmp_path_factory.mktemp("openwandb"), free_port()
    command = [str(binary), "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data)]
    base = f"http://127.0.0.1:{port}"
    with running_server(command, f"{base}/api/v1/viewer"):
        yield base


def _env(server: str, home: Path, **extra: str) -> dict[str, str]:
    """A user logged in to ``server`` by environment variables, no other W&B settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    return {**env, "HOME": str(home), "WANDB_BASE_URL": server, "WANDB_API_KEY": API_KEY, **extra}


def _train(overrides: list[str], env: dict[str, str], run_dir: Path, check: bool = True):
    command = [sys.executable, str(ROOT / "src" / "train.py"), *overrides, f"hydra.run.dir={run_dir}"]
    result = subprocess.run(
        command, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=600
    )
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def _sync(runs: list[Path], server: str, home: Path) -> None:
    """``wandb sync`` of offline runs, run in ``home``: it writes its debug logs into ./wandb."""
    wandb_cli = Path(sys.executable).with_name("wandb")
    command = [str(wandb_cli), "sync", *map(str, runs)]
    sync = subprocess.run(command, env=_env(server, home), cwd=home, capture_output=True, text=True)
    assert sync.returncode == 0, sync.stderr[-2000:]


def _run_id(run_dir: Path) -> str:
    (folder,) = (run_dir / "wandb").glob("*run-*")
    return folder.name.rsplit("-", 1)[1]


def _history(server: str, run_id: str) -> dict[str, list[tuple[int, float]]]:
    """{metric: [(W&B step, value)]} as the server holds them."""
    metrics = _get(f"{server}/api/v2/runs/{run_id}/metrics")["metrics_by_key"]
    return {key: [(row["step"], row["value"]) for row in rows] for key, rows in metrics.items()}


@pytest.fixture
def tiny(tiny_overrides, tmp_path) -> list[str]:
    return [
        *tiny_overrides,
        "trainer.max_epochs=2",
        "+trainer.limit_train_batches=3",
        "trainer.log_every_n_steps=1",
        "logger=wandb",
        "routing.iterations=2",
        f"paths.log_dir={tmp_path / 'logs'}",
    ]


def test_a_run_with_credentials_logs_online_with_metrics_config_and_media(server, tiny, tmp_path):
    run_dir = tmp_path / "run"
    result = _train([*tiny, "logger.wandb.mode=auto"], _env(server, tmp_path), run_dir)
    assert "offline" not in result.stdout + result.stderr.replace("`wandb offline`", "")
    run_id = _run_id(run_dir)
    run = _get(f"{server}/api/v2/runs/{run_id}")["run"]
    assert run["state"] == "finished" and run["display_name"].endswith("routing.iterations=2")
    assert run["config"]["routing"]["value"]["iterations"] == 2
    history = _history(server, run_id)
    assert {"train/lr", "train/total_loss", "val/acc", "val/acc_best", "test/acc"} <= set(history)
    assert len(history["val/acc"]) == 2 and len(history["test/acc"]) == 1
    assert run["summary"]["test/acc"] == history["test/acc"][0][1]
    files = [
        f["name"] if isinstance(f, dict) else f for f in _get(f"{server}/api/v1/runs/{run_id}/files")["files"]
    ]
    for prefix in ("media/images/val/reconstructions_", "media/images/test/pose_perturbation_"):
        assert sum(name.startswith(prefix) for name in files) >= 1, files
    for table in ("confusion_matrix_table", "routing_entropy_table", "examples"):
        assert any(name.startswith(f"media/table/test/{table}_") for name in files), files


def test_an_offline_run_uploads_with_wandb_sync(server, tiny, tmp_path):
    run_dir = tmp_path / "run"
    result = _train([*tiny, "logger.wandb.mode=offline"], _env(server, tmp_path), run_dir)
    (offline_dir,) = (run_dir / "wandb").glob("offline-run-*")
    assert f"wandb sync {offline_dir}" in result.stdout
    _sync([offline_dir], server, tmp_path)
    history = _history(server, _run_id(run_dir))
    assert len(history["val/acc"]) == 2 and len(history["test/acc"]) == 1


def test_a_run_resumed_online_keeps_its_history_whole(server, tiny_overrides, tiny, tmp_path):
    """Stopped by SIGTERM after epoch 0's validation, resumed with ckpt_path=last into the same W&B
    run: every training step is in the history once, and each epoch's validation once."""
    env = _env(server, tmp_path)
    overrides = [*tiny, "trainer.max_epochs=3"]
    sigterm = "+callbacks.sigterm._target_=tests.helpers.SigtermDuringValidation"
    runs = tmp_path / "logs" / "train" / "runs"
    first = _train([*overrides, sigterm, "data.eval_batch_size=4"], env, runs / "first", check=False)
    assert first.returncode == 143, first.stderr[-3000:]
    _train([*overrides, "data.eval_batch_size=4", "ckpt_path=last"], env, runs / "resumed")
    run_id = _run_id(runs / "first")
    assert _run_id(runs / "resumed") == run_id  # the same W&B run continued
    _assert_whole(_history(server, run_id))
    assert _get(f"{server}/api/v2/runs/{run_id}")["run"]["state"] == "finished"


def _assert_whole(history: dict) -> None:
    """Every training step of the 3 epochs in its own history row, once; each epoch's validation once."""
    rows = [row for row, _ in history["train/total_loss"]]
    assert len(rows) == len(set(rows)) == 3 * 3, rows
    assert rows == sorted(rows)
    assert len(history["val/acc"]) == 3


def test_a_run_resumed_offline_and_synced_keeps_its_history_whole(server, tiny_overrides, tiny, tmp_path):
    """Both parts offline, then uploaded with one ``wandb sync``: the resumed part's rows follow the
    first part's instead of colliding with them."""
    env = _env(server, tmp_path, WANDB_MODE="offline")
    overrides = [*tiny, "trainer.max_epochs=3", "data.eval_batch_size=4"]
    sigterm = "+callbacks.sigterm._target_=tests.helpers.SigtermDuringValidation"
    runs = tmp_path / "logs" / "train" / "runs"
    assert _train([*overrides, sigterm], env, runs / "first", check=False).returncode == 143
    _train([*overrides, "ckpt_path=last"], env, runs / "resumed")
    parts = sorted(runs.glob("*/wandb/offline-run-*"))
    assert len(parts) == 2 and len({part.name.rsplit("-", 1)[1] for part in parts}) == 1
    _sync(parts, server, tmp_path)
    _assert_whole(_history(server, _run_id(runs / "first")))
