"""Experiment tracking (issue #4): an offline W&B run read back, the media publisher, the W&B mode,
and scripts/visualize.py. Nothing here needs a network or a W&B account, and nothing prompts."""

import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from PIL import Image

from capsnet.media import MediaPublisher
from capsnet.tracking import resolve_mode, run_name_from_overrides, sweep_group

from .helpers import run_entry
from .test_configs import compose_config
from .wandb_records import read_run

CELL = 28 + 2  # an MNIST image and the grid's padding


def _no_wandb_credentials(home: Path) -> dict[str, str]:
    """The environment of a user who never logged in to W&B: no key, an empty home, no mode set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    return {**env, "HOME": str(home)}


@pytest.fixture(scope="module")
def wandb_run(tmp_path_factory, data_overrides):
    """One short training run with `logger=many` (W&B + CSV), as a user without W&B credentials."""
    out = tmp_path_factory.mktemp("wandb_run")
    overrides = [*data_overrides, "logger=many", "trainer.max_epochs=2", "trainer.log_every_n_steps=1"]
    overrides += ["logger.wandb.log_model=true"]
    result = run_entry("train.py", overrides, out, env=_no_wandb_credentials(out / "home"))
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (out / "wandb").glob("offline-run-*")
    return SimpleNamespace(out=out, run_dir=run_dir, stdout=result.stdout + result.stderr)


def test_offline_run_says_how_to_sync_it(wandb_run):
    commands = re.findall(r"to upload it: wandb sync (\S+)", wandb_run.stdout)
    assert commands == [str(wandb_run.run_dir)]


def test_offline_run_holds_config_and_metrics(wandb_run):
    run = read_run(wandb_run.run_dir)
    assert run["run"].display_name.endswith("trainer.max_epochs=2,trainer.log_every_n_steps=1")
    assert "logger.wandb.log_model" not in run["run"].display_name  # where it logs, not what it trains
    assert run["config"]["routing"]["iterations"] == 3
    assert run["config"]["parameters"]["total"] == 8_215_568
    logged = {key for row in run["history"] for key in row}
    for stage in ("val", "test"):
        for name in ("acc", "error", "margin_loss", "reconstruction_loss", "total_loss"):
            assert f"{stage}/{name}" in logged
        assert {f"{stage}/routing_entropy_iter{r}" for r in (1, 2, 3)} <= logged
    assert {"train/total_loss", "train/margin_loss", "train/reconstruction_loss", "train/lr"} <= logged
    assert {f"test/acc_class_{k}" for k in range(10)} <= logged
    test_acc = [row["test/acc"] for row in run["history"] if "test/acc" in row]
    assert len(test_acc) == 1 and 0.0 <= test_acc[0] <= 1.0
    # Iteration 1's couplings are uniform over 10 parents: entropy log(10).
    entropy_1 = [
        row["val/routing_entropy_iter1"] for row in run["history"] if "val/routing_entropy_iter1" in row
    ]
    assert entropy_1 and all(v == pytest.approx(2.302585, abs=1e-4) for v in entropy_1)


def test_offline_run_holds_the_pictures(wandb_run):
    run = read_run(wandb_run.run_dir)
    images = {}
    for row in run["history"]:
        for key, value in row.items():
            if key.endswith("/filenames"):
                images.setdefault(key.removesuffix("/filenames"), []).append((value, row))
    expected = {
        "val/reconstructions": (8 * CELL + 2, 2 * CELL + 2),
        "test/reconstructions": (8 * CELL + 2, 2 * CELL + 2),
        "test/pose_perturbation": (11 * CELL + 2, 3 * 16 * CELL + 2),  # 11 offsets x (3 digits x 16 dims)
        "test/routing_entropy": (640, 400),
        "test/confusion_matrix": (520, 530),
    }
    assert set(expected) <= set(images)
    assert len(images["val/reconstructions"]) == 2  # every validation epoch (not the sanity check)
    for key, size in expected.items():
        for filenames, row in images[key]:
            (name,) = filenames
            with Image.open(wandb_run.run_dir / "files" / name) as picture:
                assert picture.size == size == (row[f"{key}/width"], row[f"{key}/height"])
    histograms = {
        key.removesuffix("/values") for row in run["history"] for key in row if key.endswith("/values")
    }
    assert {
        "test/final_couplings/c_ij",
        "test/capsule_lengths/true class",
        "test/capsule_lengths/other classes",
    } <= (histograms)


def test_offline_run_holds_the_checkpoint_as_a_model_artifact(wandb_run):
    from wandb.proto import wandb_internal_pb2

    from .wandb_records import _payloads

    (path,) = wandb_run.run_dir.glob("run-*.wandb")
    artifacts = []
    for payload in _payloads(path.read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        if record.WhichOneof("record_type") == "artifact":
            artifacts.append(record.artifact)
    assert artifacts and all(a.type == "model" for a in artifacts)
    assert any("best" in a.aliases for a in artifacts)
    assert all([entry.path for entry in a.manifest.contents] == ["model.ckpt"] for a in artifacts)


def test_csv_logger_gets_the_pictures_as_png_files(wandb_run):
    media = wandb_run.out / "csv" / "media"
    names = sorted(path.name for path in media.glob("*.png"))
    assert any(name.startswith("val_reconstructions_step") for name in names)
    assert any(name.startswith("test_confusion_matrix_step") for name in names)
    assert any(name.startswith("test_capsule_lengths_step") for name in names)  # the histogram, drawn


def test_visualize_writes_pngs_next_to_the_checkpoint(wandb_run, data_overrides, tmp_path):
    checkpoint = wandb_run.out / "checkpoints" / "last.ckpt"
    result = run_entry("visualize.py", [*data_overrides, f"ckpt_path={checkpoint}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = [Path(line) for line in result.stdout.splitlines() if line.endswith(".png")]
    sizes = {path.name: Image.open(path).size for path in printed}
    assert all(path.parent == checkpoint.parent / "last_figures" for path in printed)
    assert sizes["test_reconstructions.png"] == (8 * CELL + 2, 2 * CELL + 2)
    assert sizes["test_pose_perturbation.png"] == (11 * CELL + 2, 3 * 16 * CELL + 2)
    assert sizes["test_routing_entropy.png"] == (640, 400)
    assert sizes["test_confusion_matrix.png"] == (520, 530)
    assert {"test_final_couplings.png", "test_capsule_lengths.png"} <= set(sizes)


def _trainer(loggers, step=7):
    return SimpleNamespace(loggers=loggers, is_global_zero=True, global_step=step)


def test_publisher_writes_tensorboard_events_and_png_files(tmp_path):
    tensorboard = TensorBoardLogger(tmp_path / "tb", name=None, version="")
    csv = CSVLogger(tmp_path, name="csv", version="")
    publisher = MediaPublisher(png_dir=tmp_path / "png")
    picture = Image.new("RGB", (30, 20), "red")
    publisher.image(_trainer([tensorboard, csv]), "val/reconstructions", picture)
    publisher.histogram(_trainer([tensorboard, csv]), "test/lengths", {"a": torch.rand(100)}, "length")
    tensorboard.experiment.flush()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0, "histograms": 0}).Reload()
    assert events.Tags()["images"] == ["val/reconstructions"]
    assert events.Images("val/reconstructions")[0].step == 7
    assert events.Tags()["histograms"] == ["test/lengths/a"]
    assert Image.open(tmp_path / "csv" / "media" / "val_reconstructions_step000007.png").size == (30, 20)
    assert Image.open(tmp_path / "png" / "val_reconstructions.png").size == (30, 20)
    assert (tmp_path / "png" / "test_lengths.png").is_file()


def test_publisher_is_silent_off_rank_zero(tmp_path):
    publisher = MediaPublisher(png_dir=tmp_path)
    trainer = SimpleNamespace(loggers=[CSVLogger(tmp_path)], is_global_zero=False, global_step=0)
    publisher.image(trainer, "x", Image.new("RGB", (4, 4)))
    assert publisher.written == [] and not list(tmp_path.rglob("*.png"))


def test_auto_mode_is_offline_without_credentials(tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("WANDB_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_mode("auto") == "offline"


def test_auto_mode_is_offline_when_the_server_is_unreachable(tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("WANDB_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # the discard port: refused at once
    assert resolve_mode("auto") == "offline"


def test_explicit_modes_and_the_environment_win(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_mode("auto") == "disabled"
    assert resolve_mode("offline") == "offline"
    with pytest.raises(ValueError, match=r"logger\.wandb\.mode"):
        resolve_mode("sometimes")


def test_run_name_is_the_overrides_that_change_the_model():
    compose_config(
        "train", ["routing.iterations=2", "logger=csv", "paths.output_dir=/tmp/x", "decoder.alpha=0"]
    )
    assert run_name_from_overrides(default="train") == "routing.iterations=2,decoder.alpha=0"
    assert sweep_group() is None  # a single run
    compose_config("train", ["logger=csv"])
    assert run_name_from_overrides(default="train") == "train"
