"""What the entry points run on a validated config: build everything from it, then train or evaluate."""

import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf, open_dict

from capsnet.config_tree import print_config_tree
from capsnet.insights import CapsuleInsights
from capsnet.memory import set_mmap_threshold
from capsnet.tracking import finish_loggers

log = logging.getLogger(__name__)


def _instantiate_all(group: DictConfig | None) -> list:
    """Each entry of a group like ``callbacks`` or ``logger`` that has a ``_target_``."""
    return [hydra.utils.instantiate(c) for c in (group or {}).values() if c and "_target_" in c]


def _metrics(trainer: L.Trainer) -> dict[str, float]:
    return {key: float(value) for key, value in trainer.callback_metrics.items()}


def _start(cfg: DictConfig) -> None:
    print_config_tree(cfg, save_dir=cfg.paths.output_dir)
    set_mmap_threshold(cfg.get("malloc_mmap_threshold"))
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)


def _log_run(loggers: list[Logger], cfg: DictConfig, model: L.LightningModule) -> None:
    """The whole resolved config and the parameter counts, as every logger's hyperparameters."""
    config = OmegaConf.to_container(cfg, resolve=True)
    parameters = {
        "total": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
    for logger in loggers:
        logger.log_hyperparams({**config, "parameters": parameters})


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit (``train``), then test the best checkpoint (``test``); returns the final metrics."""
    _start(cfg)
    datamodule: L.LightningDataModule = hydra.utils.instantiate(cfg.data)
    model: L.LightningModule = hydra.utils.instantiate(cfg.model)
    callbacks: list[Callback] = _instantiate_all(cfg.get("callbacks"))
    loggers: list[Logger] = _instantiate_all(cfg.get("logger"))
    try:
        return _fit_and_test(cfg, datamodule, model, callbacks, loggers)
    finally:
        finish_loggers(loggers)


def _fit_and_test(cfg, datamodule, model, callbacks, loggers) -> dict[str, float]:
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    _log_run(loggers, cfg, model)
    if cfg.train:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = _metrics(trainer)
    if cfg.test:
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if not best:
            log.warning("No best checkpoint (fast_dev_run or no validation): testing the current weights")
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None)
        metrics.update(_metrics(trainer))
    return metrics


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test the checkpoint ``ckpt_path``; the network comes from the checkpoint's hyperparameters."""
    trainer, _ = _test_checkpoint(cfg)
    return _metrics(trainer)


def visualize(cfg: DictConfig) -> list[Path]:
    """Test ``ckpt_path`` and write the capsule insights as PNG files (``figures_dir``, by default a
    folder beside the checkpoint named after it); prints and returns their paths."""
    figures_dir = cfg.get("figures_dir") or Path(cfg.ckpt_path).with_name(
        f"{Path(cfg.ckpt_path).stem}_figures"
    )
    with open_dict(cfg):
        cfg.callbacks.capsule_insights.png_dir = str(figures_dir)
    _, callbacks = _test_checkpoint(cfg)
    written = [path for c in callbacks if isinstance(c, CapsuleInsights) for path in c.publish.written]
    for path in written:
        print(path)
    return written


def _test_checkpoint(cfg: DictConfig) -> tuple[L.Trainer, list[Callback]]:
    _start(cfg)
    datamodule: L.LightningDataModule = hydra.utils.instantiate(cfg.data)
    module_class = hydra.utils.get_class(cfg.model._target_)
    model = module_class.load_from_checkpoint(cfg.ckpt_path, map_location="cpu")
    callbacks: list[Callback] = _instantiate_all(cfg.get("callbacks"))
    loggers: list[Logger] = _instantiate_all(cfg.get("logger"))
    try:
        trainer: L.Trainer = hydra.utils.instantiate(
            cfg.trainer, callbacks=callbacks, logger=loggers or False
        )
        _log_run(loggers, cfg, model)
        trainer.test(model, datamodule=datamodule)
        return trainer, callbacks
    finally:
        finish_loggers(loggers)
