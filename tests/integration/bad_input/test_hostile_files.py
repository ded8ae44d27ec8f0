"""Files from strangers: a checkpoint that would run code, a damaged one, one of another model or other
settings. Each entry point refuses it with one line naming the file, exit code 2, and runs nothing."""

import pytest
import torch
from PIL import Image

from tests.helpers import Payload, run_in_process


@pytest.fixture
def crafted(tmp_path, trained_capsnet):
    """The shared run's checkpoint with a payload added."""
    checkpoint = torch.load(trained_capsnet.last, map_location="cpu", weights_only=True)
    checkpoint["x"] = Payload(tmp_path / "payload_ran")
    torch.save(checkpoint, tmp_path / "crafted.ckpt")
    return tmp_path / "crafted.ckpt", tmp_path / "payload_ran"


ENTRY_POINTS = {
    "train": ["trainer.max_epochs=3"],
    "eval": [],
    "visualize": [],
    "predict": [],
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_crafted_checkpoint_is_refused_by_every_entry_point(entry, crafted, data_overrides, tmp_path):
    path, marker = crafted
    overrides = [f"ckpt_path={path}", *ENTRY_POINTS[entry]]
    if entry == "predict":
        Image.new("L", (28, 28)).save(tmp_path / "digit.png")
        overrides.append(f"input={tmp_path / 'digit.png'}")
    else:
        overrides += data_overrides
    result = run_in_process(entry, overrides, tmp_path / "out")
    assert result.code == 2, result.output[-2000:]
    assert f"ckpt_path={path}: refused, it is not weights and values only (it asks to import" in result.output
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["empty", "truncated"])
@pytest.mark.parametrize("entry", ["train", "eval"])
def test_a_damaged_checkpoint_is_named(entry, damage, trained_capsnet, data_overrides, tmp_path):
    path = tmp_path / "damaged.ckpt"
    path.write_bytes(b"" if damage == "empty" else trained_capsnet.last.read_bytes()[:100_000])
    result = run_in_process(entry, [f"ckpt_path={path}", *data_overrides], tmp_path / "out")
    assert result.code == 2, result.output[-2000:]
    assert f"ckpt_path={path}: not a readable checkpoint" in result.output
    assert "Traceback" not in result.output


def test_resuming_another_models_checkpoint_is_refused(trained_capsnet, data_overrides, tmp_path):
    overrides = [f"ckpt_path={trained_capsnet.last}", "model=baseline_cnn", *data_overrides]
    result = run_in_process("train", overrides, tmp_path)
    assert result.code == 2, result.output[-2000:]
    assert "holds a CapsNetModule, this run trains a BaselineCNNModule" in result.output


def test_resuming_with_other_hyperparameters_is_refused(trained_capsnet, tiny_overrides, tmp_path):
    """The shared run trained 2 routing iterations; this asks for the default 3."""
    overrides = [f"ckpt_path={trained_capsnet.last}", "trainer.max_epochs=3", *tiny_overrides]
    result = run_in_process("train", overrides, tmp_path)
    assert result.code == 2, result.output[-2000:]
    assert "was trained with other settings (routing.iterations: 2 in the checkpoint, 3 now)" in result.output


def test_visualize_refuses_a_folder_it_cannot_write_before_testing(trained_capsnet, data_overrides, tmp_path):
    (tmp_path / "a_file").write_text("")
    overrides = [f"ckpt_path={trained_capsnet.last}", f"figures_dir={tmp_path / 'a_file' / 'figures'}"]
    result = run_in_process("visualize", [*overrides, *data_overrides], tmp_path / "out")
    assert result.code == 2, result.output[-2000:]
    assert f"figures_dir={tmp_path / 'a_file' / 'figures'}: cannot write there" in result.output
    assert "Testing" not in result.output  # refused before the test set was touched
