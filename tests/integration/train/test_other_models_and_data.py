"""Training beyond the MNIST CapsNet: the baseline CNN, Fashion-MNIST, the affine and MultiMNIST
experiments."""

import json
import math
import re
import shutil

import pytest
import yaml
from PIL import Image

from capsnet.data.files import md5
from tests.helpers import FILE_NAMES, TWO_STEPS, run_in_process

TWO_STEPS_CSV = [*TWO_STEPS, "logger=csv"]


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory, data_overrides):
    out = tmp_path_factory.mktemp("baseline")
    result = run_in_process("train", [*data_overrides, *TWO_STEPS_CSV, "model=baseline_cnn"], out)
    assert result.code == 0, result.output[-3000:]
    return out, result


def test_baseline_trains_with_the_same_metrics(baseline_run):
    out, result = baseline_run
    assert "BaselineCNN" in result.output and "35.4 M" in result.output  # the model summary
    for name in ("test/acc", "test/error", "test/total_loss", "test/acc_class_0"):
        assert re.search(rf"{re.escape(name)}\s*│", result.output), name
    assert list((out / "csv" / "media").glob("test_confusion_matrix_step*.png"))


def test_eval_loads_the_class_the_checkpoint_names(baseline_run, data_overrides, tmp_path):
    out, _ = baseline_run
    (checkpoint,) = (out / "checkpoints").glob("epoch_*.ckpt")
    result = run_in_process("eval", [*data_overrides, f"ckpt_path={checkpoint}"], tmp_path)
    assert result.code == 0, result.output[-3000:]
    assert re.search(r"test/acc\s*│", result.output)


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
    result = run_in_process("train", overrides, tmp_path / "run")
    assert result.code == 0, result.output[-3000:]
    assert "FashionMNIST" in (tmp_path / "run" / "resolved_config.yaml").read_text()


def test_affine_robustness_experiment_runs(tmp_path, synthetic_data, data_overrides):
    root, _ = synthetic_data
    shutil.copytree(root / "MNIST", tmp_path / "data" / "MNIST")  # a data dir without a cached proxy
    overrides = [*data_overrides, f"data.data_dir={tmp_path / 'data'}"]
    overrides += ["experiment=affine_robustness", "debug=fast_dev_run", "logger=csv"]
    result = run_in_process("train", overrides, tmp_path)
    assert result.code == 0, result.output[-3000:]
    assert "affNIST proxy: 37 images generated" in result.output
    resolved = yaml.safe_load((tmp_path / "resolved_config.yaml").read_text())
    assert resolved["data"]["image_shape"] == resolved["model"]["net"]["image_shape"] == [1, 40, 40]


def test_multimnist_experiment_trains_and_shows_each_digit(tmp_path, tiny_overrides):
    result = run_in_process("train", [*tiny_overrides, *TWO_STEPS_CSV, "experiment=multimnist"], tmp_path)
    assert result.code == 0, result.output[-3000:]
    assert "MultiMNIST: train 160 / val 16 pairs" in result.output
    (grid,) = (tmp_path / "csv" / "media").glob("test_reconstructions_step*.png")
    with Image.open(grid) as picture:  # overlays, then digit A, then digit B: 3 rows of 36 + 2
        assert picture.size == (8 * 38 + 2, 3 * 38 + 2)


@pytest.mark.parametrize(("routing", "passes"), [("leaky", 3), ("self_attention", 1)])
def test_each_routing_trains_tests_and_shows_its_couplings(tmp_path, tiny_overrides, routing, passes):
    result = run_in_process("train", [*tiny_overrides, *TWO_STEPS_CSV, f"routing={routing}"], tmp_path)
    assert result.code == 0, result.output[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    entropies = sorted(name for name in metrics if name.startswith("test/routing_entropy_iter"))
    assert entropies == [f"test/routing_entropy_iter{r}" for r in range(1, passes + 1)]
    assert all(0 <= metrics[name] <= math.log(10) + 1e-6 for name in entropies)
    assert list((tmp_path / "csv" / "media").glob("test_final_couplings_step*.png"))
