"""Test helpers: a tiny synthetic MNIST-format dataset and a runner for the real entry points."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from capsnet.data.files import SPLITS, md5
from capsnet.data.idx import write_idx

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PROJECT_ROOT", str(ROOT))

FILE_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def write_synthetic_mnist(root: Path, train: int = 96, test: int = 37, seed: int = 0) -> dict[str, str]:
    """IDX files of 28x28 images whose label is the row of a bright bar; returns {split: md5}.

    The test set has an odd size on purpose, so that uneven last batches are exercised.
    """
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", train), ("test", test)):
        labels = rng.integers(0, 10, size=count).astype(np.uint8)
        images = rng.integers(0, 40, size=(count, 28, 28)).astype(np.uint8)
        for index, label in enumerate(labels):
            images[index, 4 + 2 * label : 6 + 2 * label, 4:24] = 255
        write_idx(raw / FILE_NAMES[f"{split}_images"], images)
        write_idx(raw / FILE_NAMES[f"{split}_labels"], labels)
    return {split: md5(raw / FILE_NAMES[split]) for split in SPLITS}


def run_entry(
    script: str, overrides: list[str], tmp_path: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``src/<script>`` (or ``scripts/<script>``) as a user would, outputs under ``tmp_path``.

    ``env`` replaces the inherited environment (PYTHONUNBUFFERED and COLUMNS are added).
    """
    folder = "scripts" if (ROOT / "scripts" / script).exists() else "src"
    command = [sys.executable, str(ROOT / folder / script), *overrides, f"hydra.run.dir={tmp_path}"]
    env = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    return subprocess.run(
        command, capture_output=True, text=True, timeout=600, env=env, stdin=subprocess.DEVNULL
    )
