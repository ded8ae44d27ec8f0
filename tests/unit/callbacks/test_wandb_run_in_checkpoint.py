"""Checkpoints carry their W&B run and its next history row; a resumed run continues that W&B run
after the rows it has."""

from types import SimpleNamespace

import lightning as L
import torch
from omegaconf import OmegaConf

from capsnet.callbacks.wandb_run_in_checkpoint import WANDB_RUN_ID_KEY, WANDB_STEP_KEY, WandbRunInCheckpoint
from capsnet.models.loading import read_checkpoint
from capsnet.run.checkpoints import continue_tracking_runs


class FakeRun:
    """A started W&B run at history row ``step`` that records what is logged."""

    def __init__(self, step: int):
        self.id, self.step, self.logged = "run-abc123", step, []

    def log(self, data, step=None, commit=None):
        self.logged.append((data, step, commit))


class FakeWandb(L.pytorch.loggers.WandbLogger):
    def __init__(self, run: FakeRun):
        self._experiment = run


def _trainer(run: FakeRun, global_step: int = 0):
    return SimpleNamespace(loggers=[FakeWandb(run)], global_step=global_step)


def test_resuming_continues_the_checkpoints_wandb_run(tmp_path):
    checkpoint = {}
    WandbRunInCheckpoint().on_save_checkpoint(_trainer(FakeRun(step=17)), None, checkpoint)
    assert (checkpoint[WANDB_RUN_ID_KEY], checkpoint[WANDB_STEP_KEY]) == ("run-abc123", 17)

    torch.save({**checkpoint, "state_dict": {}}, tmp_path / "last.ckpt")
    cfg = OmegaConf.create({"logger": {"wandb": {"id": None}}})
    continue_tracking_runs(cfg, read_checkpoint(tmp_path / "last.ckpt"))
    assert cfg.logger.wandb.id == "run-abc123"
    cfg = OmegaConf.create({"logger": {"wandb": {"id": "chosen"}}})
    continue_tracking_runs(cfg, read_checkpoint(tmp_path / "last.ckpt"))
    assert cfg.logger.wandb.id == "chosen"  # an explicit id wins


def test_the_resumed_run_moves_on_to_the_recorded_row_never_back():
    for started_at, expected in ((0, [({"trainer/global_step": 30}, 17, False)]), (25, [])):
        callback, run = WandbRunInCheckpoint(), FakeRun(step=started_at)
        callback.on_load_checkpoint(None, None, {WANDB_STEP_KEY: 17})
        callback.on_train_start(_trainer(run, global_step=30), None)
        assert run.logged == expected
