"""Which checkpoint a run resumes (``ckpt_path``), and the W&B run that checkpoint belongs to."""

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from capsnet.callbacks.wandb_run_id import WANDB_RUN_ID_KEY
from capsnet.errors import ConfigError

log = logging.getLogger(__name__)


def checkpoint_to_resume(cfg: DictConfig) -> str | None:
    """``ckpt_path``, with ``last`` meaning the newest ``last.ckpt`` of this task's earlier runs."""
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path != "last":
        return ckpt_path
    runs = Path(cfg.paths.log_dir) / cfg.task_name
    candidates = [
        p for p in runs.glob("*/*/checkpoints/last.ckpt") if Path(cfg.paths.output_dir) not in p.parents
    ]
    candidates += [p for p in runs.glob("multiruns/*/*/checkpoints/last.ckpt")]
    if not candidates:
        raise ConfigError(
            f"ckpt_path=last: no last.ckpt under {runs}/*/*/checkpoints; give a checkpoint's path"
        )
    newest = max(set(candidates), key=lambda p: p.stat().st_mtime)
    log.info("ckpt_path=last: resuming from %s", newest)
    return str(newest)


def continue_wandb_run(cfg: DictConfig, ckpt_path: str | None) -> None:
    """Resuming a run that logged to W&B continues the same W&B run (unless ``logger.wandb.id`` is set)."""
    if not ckpt_path or OmegaConf.select(cfg, "logger.wandb") is None or cfg.logger.wandb.get("id"):
        return
    run_id = torch.load(ckpt_path, map_location="cpu", weights_only=True).get(WANDB_RUN_ID_KEY)
    if run_id:
        with open_dict(cfg):
            cfg.logger.wandb.id = run_id
