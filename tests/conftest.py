"""Fixtures: the synthetic dataset, written once per session, and the overrides that select it."""

import os
from pathlib import Path

import pytest

# Tests never reach a W&B server, even on a machine with credentials.
os.environ["WANDB_MODE"] = "offline"

from .helpers import write_synthetic_mnist


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("synthetic_mnist")
    return root, write_synthetic_mnist(root)


@pytest.fixture(scope="session")
def data_overrides(synthetic_data) -> list[str]:
    """Hydra overrides that point the MNIST data module at the synthetic files, no fetching."""
    root, checksums = synthetic_data
    overrides = [f"data.data_dir={root}", "data.sources=[]", "data.val_size=16", "data.batch_size=8"]
    overrides += [f"data.files.{split}.md5={digest}" for split, digest in checksums.items()]
    return overrides
