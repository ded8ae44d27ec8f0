"""scripts/error_by_epoch.py on the shared training run: each epoch checkpoint tested once."""

import csv
import importlib.util
import json
import subprocess

import pytest
import torch

from tests.helpers import ROOT


def _script():
    spec = importlib.util.spec_from_file_location("by_epoch", ROOT / "scripts" / "error_by_epoch.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_each_epoch_checkpoint_is_tested_once_and_tabled(
    trained_capsnet, data_overrides, tmp_path, monkeypatch
):
    script, out = _script(), tmp_path / "by_epoch"
    script.main([str(trained_capsnet.out), "--out", str(out), *data_overrides])
    epoch = torch.load(trained_capsnet.best, map_location="cpu", weights_only=True)["epoch"]
    tested = json.loads((out / f"epoch_{epoch:03d}" / "metrics.json").read_text())
    with open(out / "test_error_by_epoch.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(int(r["epoch"]), float(r["test_error_percent"])) for r in rows] == [
        (epoch, pytest.approx(100 * tested["test/error"], abs=0.005))
    ]
    assert "Paper: 0.25%" in (out / "test_error_by_epoch.md").read_text()
    assert (out / "test_error_by_epoch.png").stat().st_size > 0

    def no_second_test(*args, **kwargs):
        raise AssertionError("a checkpoint was tested twice")

    monkeypatch.setattr(subprocess, "run", no_second_test)
    script.main([str(trained_capsnet.out), "--out", str(out), *data_overrides])  # stopped and run again


def test_a_damaged_checkpoint_is_named_and_the_others_still_tabled(trained_capsnet, data_overrides, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_capsnet.out / "checkpoints", run / "checkpoints")
    (run / "checkpoints" / "epoch_099.ckpt").write_bytes(b"cut short")
    script, out = _script(), tmp_path / "by_epoch"
    with pytest.raises(SystemExit, match=r"left out:\n.*epoch_099\.ckpt: not a readable checkpoint"):
        script.main([str(run), "--out", str(out), *data_overrides])
    assert "epoch_099.ckpt: not a readable checkpoint" in (out / "test_error_by_epoch.md").read_text()
    with open(out / "test_error_by_epoch.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 1  # the good checkpoint, tested
