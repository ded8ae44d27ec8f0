"""src/predict.py: image files of any kind classified by a trained checkpoint."""

import csv
import json
import os
from pathlib import Path

from PIL import Image, ImageDraw

from tests.helpers import run_in_process


def _dark_digit_on_white(path, size=(64, 80)):
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).line((size[0] // 2, 8, size[0] // 2, size[1] - 8), fill=(20, 20, 90), width=8)
    image.save(path)


def test_predict_converts_classifies_and_reconstructs(trained_capsnet, tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    _dark_digit_on_white(folder / "one.png")
    Image.new("L", (28, 28), 0).save(folder / "blank.png")
    result = run_in_process(
        "predict", [f"ckpt_path={trained_capsnet.last}", f"input={folder}"], tmp_path / "out"
    )
    assert result.code == 0, result.output[-3000:]
    said = result.output
    assert "Classifying on cpu" in said  # device=auto without a GPU
    assert (
        "converted from RGB to greyscale; inverted (dark digit on a light background); centred as MNIST"
        in said
    )
    assert f"{folder / 'one.png'}\t" in said
    for name in ("one.png", "blank.png"):
        with Image.open(tmp_path / "out" / f"{name}.reconstruction.png") as picture:
            assert picture.size == (2 * 30 + 2, 30 + 2)  # input and reconstruction side by side


def test_predict_refuses_what_it_cannot_read(trained_capsnet, tmp_path):
    (tmp_path / "note.png").write_text("not an image")
    overrides = [f"ckpt_path={trained_capsnet.last}", f"input={tmp_path / 'note.png'}"]
    result = run_in_process("predict", overrides, tmp_path)
    assert result.code == 2
    assert "note.png: not an image Pillow can read" in result.output


def test_a_real_folder_every_file_accounted_for(trained_capsnet, tmp_path):
    """Same stems, an unreadable file, a FIFO and markup in the folder name: every image classified in
    one batch, the rest named; predictions.csv holds a row per file; the exit code says one failed."""
    folder = tmp_path / "scans [" / "y]"  # a path with [/y] in it: Rich markup, were it read as such
    folder.mkdir(parents=True)
    for name in ("a.png", "a.jpg", "b.png"):
        Image.new("L", (28, 28), 30).save(folder / name)
    (folder / "broken.png").write_text("not an image")
    os.mkfifo(folder / "pipe.png")
    overrides = [f"ckpt_path={trained_capsnet.last}", f"input='{folder}'", "batch_size=2"]
    result = run_in_process("predict", overrides, tmp_path / "out")
    assert result.code == 2, result.output[-3000:]
    assert f"{folder / 'pipe.png'}: not a regular file, skipped" in result.output
    assert f"{folder / 'broken.png'}: not an image Pillow can read" in result.output
    assert "1 of 4 files could not be classified" in result.output
    with open(tmp_path / "out" / "predictions.csv") as file:
        rows = {Path(row["file"]).name: row for row in csv.DictReader(file)}
    assert sorted(rows) == ["a.jpg", "a.png", "b.png", "broken.png"]
    assert rows["broken.png"]["class"] == "" and "not an image" in rows["broken.png"]["error"]
    assert all(rows[n]["class"].isdigit() and not rows[n]["error"] for n in ("a.jpg", "a.png", "b.png"))
    assert rows["a.png"]["reconstruction"] != rows["a.jpg"]["reconstruction"]  # nothing overwritten
    assert all(Path(rows[n]["reconstruction"]).is_file() for n in ("a.jpg", "a.png", "b.png"))
    records = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [Path(r["path"]).name for r in records] == ["a.jpg", "a.png", "b.png", "broken.png"]
    assert f"{folder / 'a.jpg'}\t" in result.output  # the path exactly, markup and all


def test_invert_takes_auto_true_or_false_only(trained_capsnet, tmp_path):
    _dark_digit_on_white(tmp_path / "one.png")
    overrides = [f"ckpt_path={trained_capsnet.last}", f"input={tmp_path / 'one.png'}", "invert=ture"]
    result = run_in_process("predict", overrides, tmp_path / "out")
    assert result.code == 2 and "invert='ture' is invalid; allowed: auto, true or false" in result.output


def test_device_takes_auto_cpu_cuda_or_mps_only(trained_capsnet, tmp_path):
    overrides = [f"ckpt_path={trained_capsnet.last}", f"input={tmp_path}", "device=gpu0"]
    result = run_in_process("predict", overrides, tmp_path / "out")
    assert (
        result.code == 2
        and "device='gpu0' is invalid; allowed: auto, cpu, cuda, cuda:<index> or mps" in result.output
    )


def test_names_at_the_file_systems_limits_lose_nothing(trained_capsnet, tmp_path):
    """A legal 250-character name (its reconstruction's name would be too long) and names with a tab
    and a newline: every file classified, the CSV and JSON written, one printed line a file."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    names = ["d" * 246 + ".png", "tab\there.png", "new\nline.png", "plain.png"]
    for name in names:
        _dark_digit_on_white(folder / name)
    result = run_in_process(
        "predict", [f"ckpt_path={trained_capsnet.last}", f"input={folder}"], tmp_path / "out"
    )
    assert result.code == 0, result.output[-3000:]
    with open(tmp_path / "out" / "predictions.csv", newline="") as rows:
        recorded = {Path(row["file"]).name: row for row in csv.DictReader(rows)}
    assert set(recorded) == set(names) and all(
        row["class"] != "" and not row["error"] for row in recorded.values()
    )
    assert all(Path(row["reconstruction"]).is_file() for row in recorded.values())
    printed = [line for line in result.output.splitlines() if line.startswith(str(folder))]
    assert len(printed) == 4 and any("tab\\there.png\t" in line for line in printed)
