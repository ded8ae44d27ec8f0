"""The MultiMNIST module: an example counts as right only when both labels are."""

import pytest
import torch


def test_both_labels_must_be_right(monkeypatch):
    from capsnet.nn.capsnet import CapsNetOutput
    from capsnet.run.tasks import build_model
    from tests.helpers import compose_config

    model = build_model(compose_config("train", ["experiment=multimnist"]))
    lengths = torch.tensor([[0.9, 0.8, 0.1], [0.9, 0.1, 0.8], [0.2, 0.9, 0.95]])
    monkeypatch.setattr(model, "_step", lambda batch, stage: (None, CapsNetOutput(lengths, None, None, ())))
    model._scored_step((None, torch.tensor([[1, 0], [0, 1], [2, 1]]), None), "val")
    assert model.accuracy["val_acc"].compute().item() == pytest.approx(2 / 3)  # the 2nd predicts {0, 2}
