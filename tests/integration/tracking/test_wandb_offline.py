"""An offline W&B run read back with W&B's own reader, the CSV logger's pictures, and
src/visualize.py. Nothing here needs a network or a W&B account, and nothing prompts."""

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from tests.helpers import read_wandb_run, run_in_process

CELL = 28 + 2  # an MNIST image and the grid's padding
TEST_IMAGES = 37  # the synthetic test set


@pytest.fixture(scope="module")
def wandb_run(trained_capsnet):
    """The shared training run (``logger=many``: W&B offline and CSV), its W&B run folder."""
    (run_dir,) = (trained_capsnet.out / "wandb").glob("offline-run-*")
    return SimpleNamespace(out=trained_capsnet.out, run_dir=run_dir, stdout=trained_capsnet.output)


def test_offline_run_says_how_to_sync_it(wandb_run):
    commands = re.findall(r"to upload it: wandb sync (\S+)", wandb_run.stdout)
    assert commands == [str(wandb_run.run_dir)]
    assert re.findall(r"in the terminal: wandb leet (\S+)", wandb_run.stdout) == commands


def test_offline_run_holds_config_and_metrics(wandb_run):
    run = read_wandb_run(wandb_run.run_dir)
    assert run.run["display_name"].endswith(
        "trainer.max_epochs=2,trainer.log_every_n_steps=1,routing.iterations=2"
    )
    assert "logger.wandb.log_model" not in run.run["display_name"]  # where it logs, not what it trains
    assert run.config["routing"]["iterations"] == 2
    assert "routing" not in run.config["model"]  # each value once (the module gets the group by name)
    weights = torch.load(wandb_run.out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    network = sum(weight.numel() for name, weight in weights.items() if name.startswith("net."))
    assert run.config["parameters"]["total"] == network
    logged = {key for row in run.history for key in row}
    for stage in ("val", "test"):
        for name in ("acc", "error", "margin_loss", "reconstruction_loss", "total_loss"):
            assert f"{stage}/{name}" in logged
        assert {f"{stage}/routing_entropy_iter{r}" for r in (1, 2)} <= logged
    assert {"train/total_loss", "train/margin_loss", "train/reconstruction_loss", "train/lr"} <= logged
    assert {f"test/acc_class_{k}" for k in range(10)} <= logged
    test_acc = [row["test/acc"] for row in run.history if "test/acc" in row]
    assert len(test_acc) == 1 and 0.0 <= test_acc[0] <= 1.0
    # Iteration 1's couplings are uniform over 10 parents: entropy log(10).
    entropy_1 = [
        row["val/routing_entropy_iter1"] for row in run.history if "val/routing_entropy_iter1" in row
    ]
    assert entropy_1 and all(v == pytest.approx(2.302585, abs=1e-4) for v in entropy_1)


def test_offline_run_holds_the_pictures(wandb_run):
    run = read_wandb_run(wandb_run.run_dir)
    images = {}
    for row in run.history:
        for key, value in row.items():
            if key.endswith(".filenames"):
                images.setdefault(key.removesuffix(".filenames"), []).append((value, row))
    expected = {
        "val/reconstructions": (8 * CELL + 2, 2 * CELL + 2),
        "test/reconstructions": (8 * CELL + 2, 2 * CELL + 2),
        "test/pose_perturbation": (11 * CELL + 2, 3 * 16 * CELL + 2),  # 11 offsets x (3 digits x 16 dims)
    }
    assert set(expected) <= set(images)
    assert len(images["val/reconstructions"]) == 2  # every validation epoch (not the sanity check)
    for key, size in expected.items():
        for filenames, row in images[key]:
            (name,) = filenames
            with Image.open(wandb_run.run_dir / "files" / name) as picture:
                assert picture.size == size == (row[f"{key}.width"], row[f"{key}.height"])
    histograms = {
        key.removesuffix(".values") for row in run.history for key in row if key.endswith(".values")
    }
    assert {
        "test/final_couplings/c_ij",
        "test/capsule_lengths/true class",
        "test/capsule_lengths/other classes",
    } <= (histograms)


def _table(run_dir: Path, key: str) -> dict:
    (path,) = (run_dir / "files" / "media" / "table").glob(f"{key}_*.table.json")
    return json.loads(path.read_text())


def test_offline_run_has_wandb_charts_and_a_table_of_test_examples(wandb_run):
    """The confusion matrix and the routing entropy as W&B's interactive charts; the test examples,
    misclassified first, as a W&B table."""
    run = read_wandb_run(wandb_run.run_dir)
    panels = {
        key: run.config[f"_wandb.visualize.{key}"]["panel_config"]
        for key in ("test/confusion_matrix", "test/routing_entropy")
    }
    assert panels["test/confusion_matrix"]["panelDefId"] == "wandb/confusion_matrix/v1"
    assert panels["test/routing_entropy"]["panelDefId"] == "wandb/line/v0"

    confusion = _table(wandb_run.run_dir, "test/confusion_matrix_table")
    assert confusion["columns"] == ["Actual", "Predicted", "nPredictions"] and len(confusion["data"]) == 100
    assert sum(count for _, _, count in confusion["data"]) == TEST_IMAGES
    entropy = _table(wandb_run.run_dir, "test/routing_entropy_table")
    assert [i for i, _ in entropy["data"]] == [1, 2] and entropy["data"][0][1] == pytest.approx(
        2.302585, abs=1e-4
    )

    examples = _table(wandb_run.run_dir, "test/examples")
    columns = examples["columns"]
    assert columns == ["image", "label", "prediction", *[f"length_{k}" for k in range(10)], "reconstruction"]
    assert len(examples["data"]) == TEST_IMAGES  # table_size 64, more than the test set
    wrong = [row[1] != row[2] for row in examples["data"]]
    assert wrong == sorted(wrong, reverse=True)  # the misclassified first
    for row in examples["data"]:
        assert row[2] == max(range(10), key=lambda k: row[3 + k])  # the prediction is the longest capsule
    misclassified = sum(count for actual, predicted, count in confusion["data"] if actual != predicted)
    assert sum(wrong) == misclassified


def test_offline_run_holds_the_checkpoint_as_a_model_artifact(wandb_run):
    artifacts = read_wandb_run(wandb_run.run_dir).artifacts
    models = [a for a in artifacts if a["type"] == "model"]
    assert {a["type"] for a in artifacts} == {"model", "run_table"}  # the tables are artifacts too
    assert any("best" in a["aliases"] for a in models)
    assert all([entry["path"] for entry in a["manifest"]["contents"]] == ["model.ckpt"] for a in models)


def test_csv_logger_gets_the_pictures_as_png_files(wandb_run):
    media = wandb_run.out / "csv" / "media"
    names = sorted(path.name for path in media.glob("*.png"))
    assert any(name.startswith("val_reconstructions_step") for name in names)
    assert any(name.startswith("test_confusion_matrix_step") for name in names)
    assert any(name.startswith("test_capsule_lengths_step") for name in names)  # the histogram, drawn
    (examples,) = media.glob("test_examples_step*.csv")  # the table, without its images
    rows = examples.read_text().splitlines()
    assert rows[0] == ",".join(["label", "prediction", *[f"length_{k}" for k in range(10)]])
    assert len(rows) == 1 + TEST_IMAGES


def test_visualize_writes_pngs_next_to_the_checkpoint(wandb_run, data_overrides, tmp_path):
    checkpoint = wandb_run.out / "checkpoints" / "last.ckpt"
    result = run_in_process("visualize", [*data_overrides, f"ckpt_path={checkpoint}"], tmp_path)
    assert result.code == 0, result.output[-3000:]
    printed = [Path(line) for line in result.output.splitlines() if line.endswith(".png")]
    assert printed == result.value  # what it printed is what it wrote
    sizes = {path.name: Image.open(path).size for path in printed}
    assert all(path.parent == checkpoint.parent / "last_figures" for path in printed)
    assert sizes["test_reconstructions.png"] == (8 * CELL + 2, 2 * CELL + 2)
    assert sizes["test_pose_perturbation.png"] == (11 * CELL + 2, 3 * 16 * CELL + 2)
    assert sizes["test_routing_entropy.png"] == (640, 400)
    assert sizes["test_confusion_matrix.png"] == (520, 530)
    assert {"test_final_couplings.png", "test_capsule_lengths.png"} <= set(sizes)
