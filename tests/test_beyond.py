"""Beyond the MNIST table (issue #7): baseline CNN, Fashion-MNIST, prediction, the affNIST proxy."""

import json
import re
import shutil
import subprocess
import sys

import pytest
import torch
import yaml
from PIL import Image, ImageDraw

from capsnet.baseline import BaselineCNN
from capsnet.data.files import md5
from capsnet.errors import InputError
from capsnet.prediction import load_image

from .helpers import FILE_NAMES, ROOT, run_entry

TINY = ["trainer.max_epochs=1", "+trainer.limit_train_batches=2", "logger=csv"]


def test_baseline_has_the_papers_parameter_count():
    net = BaselineCNN()
    assert sum(p.numel() for p in net.parameters()) == 35_445_522  # the paper: "35.4M"
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, 10)


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory, data_overrides):
    out = tmp_path_factory.mktemp("baseline")
    result = run_entry("train.py", [*data_overrides, *TINY, "model=baseline_cnn"], out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_baseline_trains_with_the_same_metrics(baseline_run):
    out, result = baseline_run
    assert "BaselineCNN" in result.stdout and "35.4 M" in result.stdout  # the model summary
    for name in ("test/acc", "test/error", "test/total_loss", "test/acc_class_0"):
        assert re.search(rf"{re.escape(name)}\s*│", result.stdout), name
    assert (out / "csv" / "media").glob("test_confusion_matrix_step*.png")


def test_eval_loads_the_class_the_checkpoint_names(baseline_run, data_overrides, tmp_path):
    out, _ = baseline_run
    (checkpoint,) = (out / "checkpoints").glob("epoch_*.ckpt")
    result = run_entry("eval.py", [*data_overrides, f"ckpt_path={checkpoint}"], tmp_path)  # model=capsnet
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"test/acc\s*│", result.stdout)


def test_fashion_mnist_config_trains(tmp_path, synthetic_data):
    root, _ = synthetic_data
    fashion = tmp_path / "data" / "FashionMNIST" / "raw"
    shutil.copytree(root / "MNIST" / "raw", fashion)
    overrides = [
        "data=fashion_mnist",
        f"data.data_dir={tmp_path / 'data'}",
        "data.sources=[]",
        "debug=fast_dev_run",
    ]
    overrides += ["data.val_size=16", "data.batch_size=8", "logger=csv"]
    overrides += [f"data.files.{split}.md5={md5(fashion / name)}" for split, name in FILE_NAMES.items()]
    result = run_entry("train.py", overrides, tmp_path / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "FashionMNIST" in (tmp_path / "run" / "resolved_config.yaml").read_text()


@pytest.fixture(scope="module")
def capsnet_checkpoint(tmp_path_factory, data_overrides):
    out = tmp_path_factory.mktemp("capsnet")
    result = run_entry("train.py", [*data_overrides, *TINY, "test=false"], out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out / "checkpoints" / "last.ckpt"


def _dark_digit_on_white(path, size=(64, 80)):
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).line((size[0] // 2, 8, size[0] // 2, size[1] - 8), fill=(20, 20, 90), width=8)
    image.save(path)


def test_predict_converts_classifies_and_reconstructs(capsnet_checkpoint, tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    _dark_digit_on_white(folder / "one.png")
    Image.new("L", (28, 28), 0).save(folder / "blank.png")
    result = run_entry("predict.py", [f"ckpt_path={capsnet_checkpoint}", f"input={folder}"], tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    said = result.stdout + result.stderr
    assert "one.png: converted from RGB to greyscale; resized from 64x80 to 28x28; inverted" in said
    for name in ("one", "blank"):
        with Image.open(tmp_path / "out" / f"{name}_reconstruction.png") as picture:
            assert picture.size == (2 * 30 + 2, 30 + 2)  # input and reconstruction side by side


def test_predict_refuses_what_it_cannot_read(capsnet_checkpoint, tmp_path):
    (tmp_path / "note.png").write_text("not an image")
    result = run_entry(
        "predict.py", [f"ckpt_path={capsnet_checkpoint}", f"input={tmp_path / 'note.png'}"], tmp_path
    )
    assert result.returncode == 2
    assert "note.png: not an image Pillow can read" in result.stderr and "Traceback" not in result.stderr


def test_load_image_matches_training_data(tmp_path):
    _dark_digit_on_white(tmp_path / "digit.png")
    image, notes = load_image(tmp_path / "digit.png", (1, 28, 28))
    assert image.shape == (1, 28, 28) and image.min() >= 0.0 and image.max() <= 1.0
    assert image[0, 0, 0] < 0.1 and image[0, 14, 14] > 0.5  # light stroke on a dark background
    assert len(notes) == 3
    Image.new("L", (5, 40)).save(tmp_path / "thin.png")
    with pytest.raises(InputError, match="5x40 pixels is too small"):
        load_image(tmp_path / "thin.png", (1, 28, 28))


def _digits(count=12, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.zeros(count, 28, 28, dtype=torch.uint8)
    images[:, 6:22, 12:16] = 255  # a bar, off-centre rows, so that moves show
    images[:, 6:9, 12:20] = torch.randint(100, 255, (count, 3, 8), generator=generator, dtype=torch.uint8)
    return images.numpy(), torch.arange(count).remainder(10).numpy().astype("uint8")


def test_affine_proxy_is_deterministic_and_within_its_ranges(tmp_path):
    from capsnet.data.affine import AffineRanges, affine_test_set

    images, labels = _digits()
    ranges = AffineRanges()
    first = affine_test_set(tmp_path / "a", images, labels, seed=3, ranges=ranges)
    again = affine_test_set(tmp_path / "b", images, labels, seed=3, ranges=ranges)
    other = affine_test_set(tmp_path / "c", images, labels, seed=4, ranges=ranges)
    assert (first[0] == again[0]).all() and (first[2] == again[2]).all()
    assert not (first[0] == other[0]).all()
    assert first[0].shape == (12, 40, 40) and (first[1] == labels).all()
    rotation, shear, scale, dx, dy = torch.from_numpy(first[2]).T
    assert rotation.abs().max() <= 20 and shear.abs().max() <= 0.2
    assert scale.min() >= 0.8 and scale.max() <= 1.2 and max(dx.abs().max(), dy.abs().max()) <= 6


def test_affine_transform_moves_as_stated():
    from capsnet.data.affine import transform_images

    images, _ = _digits(1)
    identity = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    centred = transform_images(torch.from_numpy(images), identity, 40)
    assert torch.equal(centred[0, 6:34, 6:34], torch.from_numpy(images[0]))  # centred, unchanged
    shifted = transform_images(
        torch.from_numpy(images), torch.tensor([[0.0, 0.0, 1.0, 5.0, -3.0]]).double(), 40
    )
    assert torch.equal(shifted[0, 3:31, 11:39], torch.from_numpy(images[0]))  # 5 right, 3 up


def test_corrupt_cached_proxy_is_generated_again(tmp_path):
    from capsnet.data.affine import AffineRanges, affine_test_set

    images, labels = _digits()
    made = affine_test_set(tmp_path, images, labels, seed=0, ranges=AffineRanges())
    (cached,) = tmp_path.glob("*-images.idx")
    data = bytearray(cached.read_bytes())
    data[-1] ^= 0xFF
    cached.write_bytes(bytes(data))
    again = affine_test_set(tmp_path, images, labels, seed=0, ranges=AffineRanges())
    assert (again[0] == made[0]).all()


def test_affine_robustness_experiment_runs(tmp_path, data_overrides):
    result = run_entry(
        "train.py",
        [*data_overrides, "experiment=affine_robustness", "debug=fast_dev_run", "logger=csv"],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "affNIST proxy: 37 images generated" in result.stdout + result.stderr
    resolved = yaml.safe_load((tmp_path / "resolved_config.yaml").read_text())
    assert resolved["data"]["image_shape"] == resolved["model"]["net"]["image_shape"] == [1, 40, 40]


def test_multimnist_pairs_are_of_different_classes_within_bounds_and_seeded(tmp_path):
    from capsnet.data.multimnist import MAX_SHIFT, cached_pair_table

    labels = torch.arange(50).remainder(10).numpy().astype("uint8")
    table = cached_pair_table(tmp_path / "a", labels, pairs_per_digit=3, seed=1, split="train")
    assert (
        len(table["first"]) == 150 and (table["first"] == torch.arange(50).repeat_interleave(3).numpy()).all()
    )
    assert (labels[table["first"]] != labels[table["second"]]).all()
    assert table["shifts"].min() >= -MAX_SHIFT and table["shifts"].max() <= MAX_SHIFT
    assert len({tuple(row) for row in table["shifts"].tolist()}) > 100  # really random
    again = cached_pair_table(tmp_path / "b", labels, pairs_per_digit=3, seed=1, split="train")
    other = cached_pair_table(tmp_path / "c", labels, pairs_per_digit=3, seed=2, split="train")
    assert all((again[k] == table[k]).all() for k in table)
    assert not (other["second"] == table["second"]).all()


def test_multimnist_composition_places_each_digit_and_clips_the_sum():
    from capsnet.data.multimnist import compose_pairs

    first, second = torch.zeros(1, 28, 28), torch.zeros(1, 28, 28)
    first[0, 10:18, 10:18] = 0.8
    second[0, 12:20, 12:20] = 0.7
    overlays, alone = compose_pairs(first, second, torch.tensor([[2, -3, 0, 0]]))
    assert overlays.shape == (1, 1, 36, 36) and alone.shape == (1, 2, 1, 36, 36)
    assert torch.equal(alone[0, 0, 0, 4 + 2 : 32 + 2, 4 - 3 : 32 - 3], first[0])  # down 2, left 3
    assert torch.equal(alone[0, 1, 0, 4:32, 4:32], second[0])  # centred
    assert torch.equal(overlays[0, 0], (alone[0, 0, 0] + alone[0, 1, 0]).clamp(max=1.0))
    assert overlays.max() == 1.0  # 0.8 + 0.7 clipped


def test_both_labels_must_be_right(monkeypatch):
    import hydra

    from capsnet.network import CapsNetOutput

    from .test_configs import compose_config

    model = hydra.utils.instantiate(compose_config("train", ["experiment=multimnist"]).model)
    lengths = torch.tensor([[0.9, 0.8, 0.1], [0.9, 0.1, 0.8], [0.2, 0.9, 0.95]])
    monkeypatch.setattr(model, "_step", lambda batch, stage: (None, CapsNetOutput(lengths, None, None, ())))
    model._scored_step((None, torch.tensor([[1, 0], [0, 1], [2, 1]]), None), "val")
    assert model.accuracy["val_acc"].compute().item() == pytest.approx(2 / 3)  # the 2nd predicts {0, 2}


def test_multimnist_experiment_trains_and_shows_each_digit(tmp_path, data_overrides):
    result = run_entry("train.py", [*data_overrides, *TINY, "experiment=multimnist"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MultiMNIST: train 160 / val 16 pairs" in result.stdout + result.stderr
    (grid,) = (tmp_path / "csv" / "media").glob("test_reconstructions_step*.png")
    with Image.open(grid) as picture:  # overlays, then digit A, then digit B: 3 rows of 36 + 2
        assert picture.size == (8 * 38 + 2, 3 * 38 + 2)


def test_capsnet_vs_cnn_runs_both_models_in_one_sweep(tmp_path, data_overrides):
    import subprocess
    import sys

    from .helpers import ROOT

    sweep = tmp_path / "sweep"
    command = [
        sys.executable,
        str(ROOT / "src" / "train.py"),
        "experiment=capsnet_vs_cnn",
        *data_overrides,
        *TINY,
    ]
    result = subprocess.run(
        [*command, f"hydra.sweep.dir={sweep}"],
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    models = [yaml.safe_load((sweep / str(job) / ".hydra" / "overrides.yaml").read_text()) for job in (0, 1)]
    assert [next(o for o in job if o.startswith("model=")) for job in models] == [
        "model=capsnet",
        "model=baseline_cnn",
    ]
    for job in (0, 1):
        assert "test/acc" in (sweep / str(job) / "metrics.json").read_text()


def test_affine_comparison_stops_both_at_the_target_and_tests_clean_and_proxy(tmp_path, data_overrides):
    out = tmp_path / "comparison"
    command = [sys.executable, str(ROOT / "scripts" / "affine_comparison.py"), "--target", "0"]
    command += ["--out", str(out), *data_overrides, "logger=csv", "+trainer.limit_train_batches=2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    rows = json.loads((out / "comparison.json").read_text())
    assert [row["model"] for row in rows] == ["capsnet", "baseline_cnn"]
    for row in rows:
        trained = json.loads((out / row["model"] / "train" / "metrics.json").read_text())
        clean = json.loads((out / row["model"] / "clean" / "metrics.json").read_text())
        assert row["reached_target"] and row["val_clean_acc"] == trained["val/acc_best"]
        assert row["test_proxy_acc"] == trained["test/acc"] and row["test_clean_acc"] == clean["test/acc"]
        assert row["steps"] == 1  # target 0: stopped at the first validation, after one step of two
    assert rows[1]["parameters"] == sum(p.numel() for p in BaselineCNN(image_shape=(1, 40, 40)).parameters())
    assert "GENERATED affNIST PROXY" in result.stdout and "| baseline_cnn |" in result.stdout
    assert (out / "comparison.md").read_text() in result.stdout


def test_affine_comparison_refuses_a_target_that_is_not_an_accuracy():
    command = [sys.executable, str(ROOT / "scripts" / "affine_comparison.py"), "--target", "99"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2 and "--target=99.0 must be an accuracy in [0, 1]" in result.stderr
