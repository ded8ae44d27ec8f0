"""Checkpoints carry their W&B run id, and a resumed run continues that W&B run."""

import lightning as L
import torch


def test_resuming_continues_the_checkpoints_wandb_run(tmp_path):
    from omegaconf import OmegaConf

    from capsnet.callbacks.wandb_run_id import WANDB_RUN_ID_KEY, WandbRunInCheckpoint
    from capsnet.models.loading import read_checkpoint
    from capsnet.run.checkpoints import continue_wandb_run

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
    continue_wandb_run(cfg, read_checkpoint(tmp_path / "last.ckpt"))
    assert cfg.logger.wandb.id == "run-abc123"
    cfg = OmegaConf.create({"logger": {"wandb": {"id": "chosen"}}})
    continue_wandb_run(cfg, str(tmp_path / "last.ckpt"))
    assert cfg.logger.wandb.id == "chosen"  # an explicit id wins
