"""A checkpoint is a pickle: loading one must never run the code a crafted file carries."""

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
