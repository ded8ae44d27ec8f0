"""The tasks the entry points run on a checked config, each in the order it happens: data, model,
callbacks, loggers, trainer, then fit and test (or only test, or only predict).

Workarounds for Lightning inside Hydra are in ``capsnet.run.workarounds``, named after what they work
around; which checkpoint to resume, in ``capsnet.run.checkpoints``.
"""

import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf, open_dict

from capsnet.callbacks.capsule_insights import CapsuleInsights
from capsnet.errors import EXIT_INTERRUPTED, ConfigError, DataError, InputError, Interrupted
from capsnet.models.loading import load_classifier
from capsnet.ops.hydra_runtime import in_multirun
from capsnet.ops.job_record import already_completed
from capsnet.ops.result_files import write_text_atomically
from capsnet.run.checkpoints import checkpoint_to_resume, continue_tracking_runs
from capsnet.run.checks import validates
from capsnet.run.config_tree import print_config_tree
from capsnet.run.loggers import finish_loggers, log_mlflow_hyperparameters
from capsnet.run.workarounds import (
    csv_header_written_by_a_spawned_process,
    csv_metrics_deleted_by_a_resumed_run,
    ddp_relaunching_the_whole_sweep,
    lightning_messages_printed_twice,
    notices_nobody_can_act_on,
)

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> float | None:
    """Fit (``train``), then test the best checkpoint (``test``). The final metrics go to
    ``<output_dir>/metrics.json``; returns the ``optimized_metric``'s value, for sweepers.

    With ``ckpt_path=auto``, a job that already completed in its folder with the same overrides (a
    killed sweep run again into its folder) is not run again: its recorded metrics stand."""
    if (done := already_completed(cfg)) is not None:
        return objective(done, cfg)
    start(cfg)
    datamodule: L.LightningDataModule = hydra.utils.instantiate(cfg.data)
    model = build_model(cfg)
    ckpt_path, checkpoint = checkpoint_to_resume(cfg, model) or (None, None)  # checked to be this model's
    if checkpoint:
        continue_tracking_runs(cfg, checkpoint)  # its W&B or MLflow run continues
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    try:
        trainer: L.Trainer = hydra.utils.instantiate(
            cfg.trainer, callbacks=callbacks, logger=loggers or False, **ddp_relaunching_the_whole_sweep(cfg)
        )
        csv_metrics_deleted_by_a_resumed_run(trainer, loggers, ckpt_path, checkpoint)
        log_hyperparameters(loggers, cfg, model)
        if cfg.train:
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        metrics = current_metrics(trainer)
        if cfg.test:
            csv_header_written_by_a_spawned_process(trainer, loggers)
            trainer.test(model, datamodule=datamodule, ckpt_path=best_checkpoint(trainer), weights_only=True)
            metrics.update(current_metrics(trainer))
            save_test_predictions(trainer, model, cfg.paths.output_dir)
        save_metrics(trainer, metrics, cfg.paths.output_dir)
        return objective(metrics, cfg)
    except SIGTERMException:
        log.warning("Training interrupted; resume with ckpt_path=last (or the checkpoint's path)")
        raise SystemExit(EXIT_INTERRUPTED) from None
    finally:
        finish_loggers(loggers)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test the checkpoint ``ckpt_path``; the network comes from the checkpoint's hyperparameters."""
    trainer, _ = tested_checkpoint(cfg)
    metrics = current_metrics(trainer)
    save_metrics(trainer, metrics, cfg.paths.output_dir)
    save_test_predictions(trainer, trainer.lightning_module, cfg.paths.output_dir)
    return metrics


def visualize(cfg: DictConfig) -> list[Path]:
    """Test ``ckpt_path`` and write the capsule insights as PNG files (``figures_dir``, by default a
    folder beside the checkpoint named after it); prints and returns their paths."""
    checkpoint = Path(cfg.ckpt_path)
    figures_dir = Path(cfg.get("figures_dir") or checkpoint.with_name(f"{checkpoint.stem}_figures"))
    try:  # before testing anything: a folder that cannot be written would waste the whole test
        figures_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=figures_dir).close()
    except OSError as error:
        reason = error.strerror or str(error)
        raise ConfigError(
            f"figures_dir={figures_dir}: cannot write there ({reason}); give figures_dir="
        ) from None
    with open_dict(cfg):
        cfg.callbacks.capsule_insights.png_dir = str(figures_dir)
    _, callbacks = tested_checkpoint(cfg)
    written = [path for c in callbacks if isinstance(c, CapsuleInsights) for path in c.publish.written]
    for path in written:
        print(path)
    return written


def tested_checkpoint(cfg: DictConfig) -> tuple[L.Trainer, list[L.Callback]]:
    start(cfg)
    datamodule: L.LightningDataModule = hydra.utils.instantiate(cfg.data)
    model = load_classifier(cfg.ckpt_path)
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    try:
        trainer: L.Trainer = hydra.utils.instantiate(
            cfg.trainer, callbacks=callbacks, logger=loggers or False
        )
        log_hyperparameters(loggers, cfg, model)
        trainer.test(model, datamodule=datamodule)
        return trainer, callbacks
    finally:
        finish_loggers(loggers)


def predict(cfg: DictConfig) -> list:
    """Classify ``input`` (an image file or a folder of them) with ``ckpt_path``: every result in
    ``predictions.csv`` and ``.json`` in the run folder, a table on the terminal. Files that could not
    be read are reported one a line and end the run with exit code 2, after the others are classified."""
    from capsnet.data.image_files import input_files
    from capsnet.run.prediction import predict as classify
    from capsnet.run.prediction import resolve_device, save_predictions, show_predictions

    files, skipped = input_files(cfg.input)
    for path in skipped:
        log.warning("%s: not a regular file, skipped", path)
    device = resolve_device(cfg.get("device", "auto"))
    model = load_classifier(cfg.ckpt_path).to(device)
    log.info("Classifying on %s", device)
    output_dir = Path(cfg.paths.output_dir)
    results = classify(
        model,
        files,
        output_dir,
        invert=str(cfg.invert).lower(),
        center=str(cfg.get("center", "auto")).lower(),
        batch_size=cfg.batch_size,
    )
    csv_path, _ = save_predictions(results, output_dir)
    show_predictions(results)
    failed = [r for r in results if r.error]
    print(f"{len(results) - len(failed)} classified, {len(failed)} failed: {csv_path}")
    if failed:
        for result in failed:
            print(result.error, file=sys.stderr)
        raise InputError(
            f"{len(failed)} of {len(results)} files could not be classified (listed in {csv_path})"
        )
    return results


def explore(cfg: DictConfig) -> None:
    """Serve the capsule explorer for ``ckpt_path`` on 127.0.0.1:``port`` until Ctrl-C (or SIGTERM)."""
    try:
        from capsnet.explore.page import ExplorerPage, launch
    except ImportError as error:
        raise ConfigError(
            f"the explorer needs the explore extra ({error.name} is missing): pip install -e '.[explore]'"
        ) from None
    from capsnet.explore.inspection import CapsuleInspector

    inspector = CapsuleInspector(load_classifier(cfg.ckpt_path), cfg.ckpt_path)
    test_images, test_labels, problem = explorer_test_set(cfg, inspector.image_shape)
    if problem:
        log.warning("The MNIST test set tab is off: %s", problem)
    page = ExplorerPage(
        inspector,
        test_images,
        test_labels,
        pose_range=cfg.pose_range,
        title=f"`{cfg.ckpt_path}`",
        data_problem=problem,
    ).build()
    # bytes: Gradio's "<n>mb" takes whole numbers only
    launch(page, cfg.port, max_upload_bytes=round(cfg.max_upload_mb * 2**20))
    print(f"The capsule explorer is on http://127.0.0.1:{cfg.port} (Ctrl-C stops it)", flush=True)
    try:
        while True:
            time.sleep(1)
    except Interrupted:
        print("The explorer stopped.")
    finally:
        page.close()


def explorer_test_set(cfg: DictConfig, image_shape: tuple) -> tuple[Any, Any, str]:
    """The test images [N, C, H, W] (uint8) and labels of ``data`` for the explorer's test tab, or
    (None, None, why not): the page works without them (drawings and uploads need no data)."""
    try:
        datamodule = hydra.utils.instantiate(cfg.data)
        datamodule.prepare_data()
        datamodule.setup("test")
    except (DataError, ConfigError) as error:
        return None, None, str(error)
    images, labels = datamodule.test_set.images, datamodule.test_set.all_labels
    if tuple(images.shape[1:]) != tuple(image_shape):
        shown = "x".join(map(str, images.shape[1:]))
        wanted = "x".join(map(str, image_shape))
        return None, None, f"the test images of data are {shown}; this checkpoint's network takes {wanted}"
    return images, labels, ""


def start(cfg: DictConfig) -> None:
    """Print Lightning's messages once, and none that nobody can act on; show and save the resolved config;
    seed every generator."""
    lightning_messages_printed_twice()
    notices_nobody_can_act_on()
    print_config_tree(cfg, save_dir=cfg.paths.output_dir)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)


def build_model(cfg: DictConfig) -> L.LightningModule:
    """``model``, given the config groups its class names in ``CONFIG_GROUPS``: ``routing.iterations``
    reaches the CapsNet as ``routing["iterations"]``, and the resolved config holds it once."""
    model_class = hydra.utils.get_class(cfg.model._target_)
    groups = {name: cfg[name] for name in getattr(model_class, "CONFIG_GROUPS", ())}
    return hydra.utils.instantiate(cfg.model, **groups)


def instantiate_group(group: DictConfig | None) -> list:
    """Each entry of a group like ``callbacks`` or ``logger`` that has a ``_target_``."""
    return [hydra.utils.instantiate(c) for c in (group or {}).values() if c and "_target_" in c]


def log_hyperparameters(loggers: list, cfg: DictConfig, model: L.LightningModule) -> None:
    """The whole resolved config and the parameter counts, as every logger's hyperparameters."""
    config = OmegaConf.to_container(cfg, resolve=True)
    parameters = {
        "total": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
    for logger in loggers:
        if isinstance(logger, MLFlowLogger):
            log_mlflow_hyperparameters(logger, {**config, "parameters": parameters})
        else:
            logger.log_hyperparams({**config, "parameters": parameters})


def best_checkpoint(trainer: L.Trainer) -> str | None:
    """The best checkpoint by held-out validation accuracy, or None: then the last weights are tested."""
    ranking = trainer.checkpoint_callback
    if ranking is None or ranking.monitor is None:  # val_size=0 (the paper's protocol), or no ranking
        log.info("Nothing ranks the checkpoints (no held-out validation): testing the last weights")
        return None
    if not ranking.best_model_path:
        log.warning("No best checkpoint (fast_dev_run or no validation yet): testing the last weights")
    return ranking.best_model_path or None


def current_metrics(trainer: L.Trainer) -> dict[str, float]:
    return {key: float(value) for key, value in trainer.callback_metrics.items()}


def save_metrics(trainer: L.Trainer, metrics: dict[str, float], output_dir: str) -> None:
    if trainer.is_global_zero:
        write_text_atomically(
            Path(output_dir, "metrics.json"), json.dumps(metrics, indent=2, sort_keys=True) + "\n"
        )


def save_test_predictions(trainer: L.Trainer, model: L.LightningModule, output_dir: str) -> None:
    """``test_predictions.csv``: each test image's index, label and predicted class (what
    ``scripts/compare_runs.py`` pairs); nothing for models without single-label predictions."""
    rows = getattr(model, "test_predictions", None)
    if rows is None or not trainer.is_global_zero:
        return
    lines = ["index,label,predicted"] + [
        f"{i},{label},{predicted}" for i, (label, predicted) in enumerate(rows.tolist())
    ]
    write_text_atomically(Path(output_dir, "test_predictions.csv"), "\n".join(lines) + "\n")


def objective(metrics: dict[str, float], cfg: DictConfig) -> float | None:
    """The value of ``optimized_metric`` (what sweepers optimize), or None when it is not set.

    A sweep needs the value, so a job without it fails; a single run only warns, since nothing reads
    the value there and a run shorter than its first validation (``trainer.max_steps=100``) is fine."""
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name not in metrics:
        missing = f"optimized_metric={name!r} was not logged; logged: {', '.join(sorted(metrics))}"
        if in_multirun():
            raise ConfigError(missing)
        if validates(cfg):  # (without validation, the paper's protocol, there is nothing to say)
            log.warning(f"{missing} (did the run end before its first validation?)")
        return None
    return metrics[name]
