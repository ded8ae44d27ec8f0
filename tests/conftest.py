"""Fixtures: the synthetic dataset, written once per session, and the overrides that select it."""

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

# Tests never reach a W&B server, even on a machine with credentials.
os.environ["WANDB_MODE"] = "offline"
# One compute thread for each test worker and the processes it starts (set before torch loads): the
# tests' tensors are tiny, and `make test` runs one worker per core here, so a second thread would wait.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from tests.helpers import run_entry, write_synthetic_mnist


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


# What most tests need of the paper's CapsNet is its code path, not its size: 32 conv channels and 4
# primary capsule types (144 primary capsules instead of 1,152) make a training step ten times cheaper.
SMALL_CAPSNET = ["model.net.conv_channels=32", "model.net.primary_types=4"]


@pytest.fixture(scope="session")
def tiny_overrides(data_overrides) -> list[str]:
    """The synthetic data and a small CapsNet: what tests of everything around training run with."""
    return [*data_overrides, *SMALL_CAPSNET]


def no_wandb_credentials(home: Path) -> dict[str, str]:
    """The environment of a user who never logged in to W&B: no key, an empty home, no mode set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    return {**env, "HOME": str(home)}


@pytest.fixture(scope="session")
def trained_capsnet(tmp_path_factory, tiny_overrides) -> SimpleNamespace:
    """One short training run of the small CapsNet that the tests needing a trained model share:
    `src/train.py` as a user without W&B credentials runs it, with W&B (offline) and CSV logging,
    2 routing iterations.

    ``out``: its run folder; ``best`` and ``last``: its checkpoints; ``output``: what it printed.
    """
    out = tmp_path_factory.mktemp("trained_capsnet")
    overrides = [*tiny_overrides, "logger=many", "trainer.max_epochs=2", "trainer.log_every_n_steps=1"]
    overrides += ["routing.iterations=2", "logger.wandb.log_model=true"]
    result = run_entry("train.py", overrides, out, env=no_wandb_credentials(out / "home"))
    assert result.returncode == 0, result.stderr[-3000:]
    (best,) = (out / "checkpoints").glob("epoch_*.ckpt")  # top-1 by val/acc, as train tested
    return SimpleNamespace(
        out=out, best=best, last=out / "checkpoints" / "last.ckpt", output=result.stdout + result.stderr
    )
