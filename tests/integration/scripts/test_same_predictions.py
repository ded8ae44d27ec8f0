"""scripts/same_predictions.py: two forms of one trained network on every test image, and their agreement."""

import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT

SCRIPT = str(ROOT / "scripts" / "same_predictions.py")


@pytest.mark.parametrize(
    "compare, forms",
    [
        ("routing", ("float32 routing", "bf16 routing")),
        ("primary_caps", ("PrimaryCaps direct", "PrimaryCaps Fourier")),
    ],
)
def test_both_forms_score_every_test_image_and_their_agreement_is_counted(
    compare, forms, trained_capsnet, data_overrides
):
    command = [sys.executable, SCRIPT, str(trained_capsnet.last), "--compare", compare, *data_overrides]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    for form in forms:  # the synthetic test split: 37 images
        assert re.search(rf"^{form} +test error \d+\.\d\d% \(\d+ of 37\)$", result.stdout, re.MULTILINE)
    same = re.search(r"^same prediction: (\d+) of 37 \(", result.stdout, re.MULTILINE)
    assert same and int(same[1]) >= 35  # a weak model's close calls may differ, not most predictions
    assert re.search(r"^capsule lengths: largest difference \S+, mean \S+$", result.stdout, re.MULTILINE)


def test_an_unknown_comparison_is_refused_with_the_choices(trained_capsnet):
    command = [sys.executable, SCRIPT, str(trained_capsnet.last), "--compare", "conv1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2 and "choose from 'primary_caps', 'routing'" in result.stderr


def test_a_missing_checkpoint_is_refused_in_one_line(tmp_path):
    command = [sys.executable, SCRIPT, str(tmp_path / "none.ckpt"), "--compare", "routing"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"Invalid input: ckpt_path={tmp_path / 'none.ckpt'}: not a readable")
