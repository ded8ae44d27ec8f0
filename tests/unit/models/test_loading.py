"""A checkpoint is a pickle: loading one must never run the code a crafted file carries."""

import re

import pytest
import torch

from capsnet.errors import ConfigError
from capsnet.models.loading import load_classifier, read_checkpoint
from tests.helpers import Payload


@pytest.fixture
def crafted_checkpoint(tmp_path):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "crafted.ckpt"
    checkpoint = {
        "state_dict": {},
        "module_class": "capsnet.models.capsnet.CapsNetModule",
        "x": Payload(marker),
    }
    torch.save(checkpoint, path)
    return path, marker


def test_loading_a_crafted_checkpoint_runs_nothing(crafted_checkpoint):
    path, marker = crafted_checkpoint
    with pytest.raises(ConfigError, match="refused, it is not weights and values only"):
        load_classifier(str(path))
    assert not marker.exists()


def test_reading_a_crafted_checkpoint_names_what_it_asks_for(crafted_checkpoint):
    path, marker = crafted_checkpoint
    with pytest.raises(ConfigError, match=r"refused, it is not weights and values only \(it asks to import"):
        read_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["empty", "truncated", "text"])
def test_a_damaged_checkpoint_is_named(tmp_path, damage):
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1000)}}, good)
    path = tmp_path / "bad.ckpt"
    data = {"empty": b"", "truncated": good.read_bytes()[:2000], "text": b"not a checkpoint"}[damage]
    path.write_bytes(data)
    with pytest.raises(ConfigError, match=rf"ckpt_path={path}: not a readable checkpoint"):
        read_checkpoint(path)


def test_a_checkpoint_naming_a_foreign_class_is_refused(tmp_path):
    torch.save({"state_dict": {}, "module_class": "os.system"}, tmp_path / "x.ckpt")
    with pytest.raises(ConfigError, match=r"names module class 'os\.system', not one of this project's"):
        load_classifier(tmp_path / "x.ckpt")


def test_a_module_class_of_ones_own_loads_once_registered(tmp_path, monkeypatch):
    from capsnet.models import loading

    own = "tests.helpers.OwnClassifier"
    torch.save({"state_dict": {}, "module_class": own, "hyper_parameters": {}}, tmp_path / "own.ckpt")
    with pytest.raises(ConfigError, match=r"a class of your own is registered in capsnet\.models\.loading"):
        load_classifier(tmp_path / "own.ckpt")
    monkeypatch.setattr(loading, "REGISTERED_MODULES", (*loading.REGISTERED_MODULES, own))
    assert type(load_classifier(tmp_path / "own.ckpt")).__name__ == "OwnClassifier"


def _small_checkpoint() -> dict:
    from capsnet.run.tasks import build_model
    from tests.conftest import SMALL_CAPSNET
    from tests.helpers import compose_config

    module = build_model(compose_config("train", SMALL_CAPSNET))
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    module.on_save_checkpoint(checkpoint)
    return checkpoint


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda c: c["hyper_parameters"]["net"].update(conv_channels=10**7),
            "conv_channels=10000000: an integer from 1 to 4096",
        ),
        (
            lambda c: c["hyper_parameters"]["net"].update(primary_types=-4),
            "primary_types=-4: an integer from 1 to 1024",
        ),
        (
            lambda c: c["hyper_parameters"]["routing"].update(iterations=10**9),
            "routing.iterations=1000000000: an integer from 1 to 100",
        ),
        (
            lambda c: c["hyper_parameters"]["net"].update(image_shape=[1, 4096, 4096]),
            "parameters; at most 500,000,000",
        ),
        (
            lambda c: c["hyper_parameters"]["net"].update(from_a_newer_version=1),
            "model.net.from_a_newer_version: no such key",
        ),
        (
            lambda c: c["state_dict"].update({"net.conv.bias": torch.zeros(7)}),
            "its weights do not fit the network",
        ),
        (lambda c: c["state_dict"].pop("net.digits.weight"), "its weights do not fit the network"),
    ],
)
def test_a_checkpoints_contents_pass_the_command_lines_rules(tmp_path, damage, message):
    """Hyperparameters and tensors from a file are checked before anything is built from them: one line
    naming the file and the key, never a traceback, a hang or memory exhausted."""
    checkpoint = _small_checkpoint()
    path = tmp_path / "damaged.ckpt"
    damage(checkpoint)
    torch.save(checkpoint, path)
    with pytest.raises(ConfigError, match=rf"ckpt_path={path}: .*{re.escape(message)}"):
        load_classifier(path)
