"""scripts/affine_comparison.py trains both models to one clean accuracy, then tests clean and proxy."""

import json
import subprocess
import sys

import pytest

from capsnet.nn.baseline_cnn import BaselineCNN
from tests.helpers import ROOT


@pytest.mark.slow  # trains both models (the baseline has 69.7M parameters on 40x40) in 4 processes
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
