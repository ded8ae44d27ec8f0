"""What the entry points run on a validated config: build everything from it, then train or evaluate."""

import csv
import json
import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import rich
import rich.table
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf, open_dict

from capsnet.classifier import load_classifier
from capsnet.config_tree import print_config_tree
from capsnet.entry import in_multirun
from capsnet.insights import CapsuleInsights
from capsnet.tracking import WANDB_RUN_ID_KEY, finish_loggers
from capsnet.validation import ConfigError

log = logging.getLogger(__name__)


def _instantiate_all(group: DictConfig | None) -> list:
    """Each entry of a group like ``callbacks`` or ``logger`` that has a ``_target_``."""
    return [hydra.utils.instantiate(c) for c in (group or {}).values() if c and "_target_" in c]


def _metrics(trainer: L.Trainer) -> dict[str, float]:
    return {key: float(value) for key, value in trainer.callback_metrics.items()}


def _start(cfg: DictConfig) -> None:
    print_config_tree(cfg, save_dir=cfg.paths.output_dir)
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


def objective(metrics: dict[str, float], cfg: DictConfig) -> float | None:
    """The value of ``optimized_metric`` (what sweepers optimize), or None when it is not set."""
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name not in metrics:
        raise ConfigError(f"optimized_metric={name!r} was not logged; logged: {', '.join(sorted(metrics))}")
    return metrics[name]


def _save_metrics(trainer: L.Trainer, metrics: dict[str, float], output_dir: str) -> None:
    if trainer.is_global_zero:
        Path(output_dir, "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")


EXIT_INTERRUPTED = 143  # 128 + SIGTERM, as a shell reports a process ended by it


def resolve_checkpoint(cfg: DictConfig) -> str | None:
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


def _resume_wandb_run(cfg: DictConfig, ckpt_path: str | None) -> None:
    """Resuming a run that logged to W&B continues the same W&B run (unless ``logger.wandb.id`` is set)."""
    if not ckpt_path or OmegaConf.select(cfg, "logger.wandb") is None or cfg.logger.wandb.get("id"):
        return
    import torch

    run_id = torch.load(ckpt_path, map_location="cpu", weights_only=True).get(WANDB_RUN_ID_KEY)
    if run_id:
        with open_dict(cfg):
            cfg.logger.wandb.id = run_id


def train(cfg: DictConfig) -> float | None:
    """Fit (``train``), then test the best checkpoint (``test``). The final metrics go to
    ``<output_dir>/metrics.json``; returns the ``optimized_metric``'s value, for sweepers."""
    _start(cfg)
    ckpt_path = resolve_checkpoint(cfg)
    _resume_wandb_run(cfg, ckpt_path)
    datamodule: L.LightningDataModule = hydra.utils.instantiate(cfg.data)
    model: L.LightningModule = hydra.utils.instantiate(cfg.model)
    callbacks: list[Callback] = _instantiate_all(cfg.get("callbacks"))
    loggers: list[Logger] = _instantiate_all(cfg.get("logger"))
    try:
        return objective(_fit_and_test(cfg, datamodule, model, callbacks, loggers, ckpt_path), cfg)
    except SIGTERMException:
        log.warning("Training interrupted; resume with ckpt_path=last (or the checkpoint's path)")
        raise SystemExit(EXIT_INTERRUPTED) from None
    finally:
        finish_loggers(loggers)


def _strategy(cfg: DictConfig) -> dict[str, str]:
    """``ddp`` in a local Hydra multirun becomes ``ddp_spawn``.

    Lightning's ``ddp`` starts the other ranks by running the script again with the same command
    line (plus ``hydra.run.dir``): inside a multirun, that command is the whole sweep (``-m ...``),
    so every rank would start a sweep of its own in new output folders. ``ddp_spawn`` starts the
    ranks from inside the job instead. Under SLURM or torchrun the ranks already exist and ``ddp``
    starts nothing, so it is kept.
    """
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    launched_outside = SLURMEnvironment.detect() or TorchElasticEnvironment.detect()
    if in_multirun() and cfg.trainer.get("strategy") == "ddp" and not launched_outside:
        log.info("trainer.strategy=ddp in a multirun: using ddp_spawn (see capsnet.pipeline._strategy)")
        return {"strategy": "ddp_spawn"}
    return {}


def _share_csv_header(loggers: list[Logger]) -> None:
    """Tell a CSV logger which columns its metrics file already has.

    Under ``ddp_spawn`` the file was written by a spawned process, so this process's writer does not
    know its columns; when the test metrics add new ones, Lightning rewrites the file with only the
    columns it knows, and fails on the rows written before (``dict contains fields not in fieldnames``).
    """
    for logger in loggers:
        if isinstance(logger, CSVLogger) and Path(logger.experiment.metrics_file_path).is_file():
            with open(logger.experiment.metrics_file_path, newline="") as file:
                header = next(csv.reader(file), [])
            known = logger.experiment.metrics_keys
            known.extend(key for key in header if key not in known)
            known.sort()


def _fit_and_test(cfg, datamodule, model, callbacks, loggers, ckpt_path) -> dict[str, float]:
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, **_strategy(cfg)
    )
    _log_run(loggers, cfg, model)
    if cfg.train:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    metrics = _metrics(trainer)
    if cfg.test:
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if not best:
            log.warning("No best checkpoint (fast_dev_run or no validation): testing the current weights")
        if trainer.is_global_zero:  # other ranks' loggers are placeholders
            _share_csv_header(loggers)
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
        metrics.update(_metrics(trainer))
    _save_metrics(trainer, metrics, cfg.paths.output_dir)
    return metrics


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test the checkpoint ``ckpt_path``; the network comes from the checkpoint's hyperparameters."""
    trainer, _ = _test_checkpoint(cfg)
    metrics = _metrics(trainer)
    _save_metrics(trainer, metrics, cfg.paths.output_dir)
    return metrics


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
    model = load_classifier(cfg.ckpt_path, default_class=cfg.model._target_)
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


def predict(cfg: DictConfig) -> list:
    """Classify ``input`` (an image file or a folder of them) with ``ckpt_path``; prints a table."""
    from capsnet.prediction import input_files
    from capsnet.prediction import predict as classify

    files = input_files(cfg.input)
    model = load_classifier(cfg.ckpt_path, default_class=cfg.model._target_)
    results = classify(model, files, Path(cfg.paths.output_dir), invert=str(cfg.invert).lower())
    table = rich.table.Table("file", "class", "scores (0-9)", "reconstruction", "notes")
    for result in results:
        if result.notes:
            log.info("%s: %s", result.path, "; ".join(result.notes))
        table.add_row(
            str(result.path),
            str(result.label),
            " ".join(f"{s:.2f}" for s in result.scores),
            str(result.reconstruction or ""),
            "; ".join(result.notes),
        )
    rich.print(table)
    return results
