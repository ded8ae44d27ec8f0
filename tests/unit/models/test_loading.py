"""A checkpoint is a pickle: loading one must never run the code a crafted file carries."""

import os
import pickle

import pytest
import torch
from omegaconf import OmegaConf

from capsnet.errors import ConfigError
from capsnet.models.loading import load_classifier
from capsnet.run.checkpoints import continue_wandb_run


class _Payload:
    """Unpickled without weights_only, this runs a shell command that leaves a file behind."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def crafted_checkpoint(tmp_path):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "crafted.ckpt"
    checkpoint = {
        "state_dict": {},
        "module_class": "capsnet.models.capsnet.CapsNetModule",
        "x": _Payload(marker),
    }
    torch.save(checkpoint, path)
    return path, marker


def test_loading_a_crafted_checkpoint_runs_nothing(crafted_checkpoint):
    path, marker = crafted_checkpoint
    with pytest.raises(ConfigError, match="refused, it holds more than weights"):
        load_classifier(str(path))
    assert not marker.exists()


def test_reading_the_wandb_run_of_a_crafted_checkpoint_runs_nothing(crafted_checkpoint):
    path, marker = crafted_checkpoint
    cfg = OmegaConf.create({"logger": {"wandb": {"id": None}}})
    with pytest.raises(pickle.UnpicklingError):
        continue_wandb_run(cfg, str(path))
    assert not marker.exists()
