"""Which checkpoint a run resumes (``ckpt_path``), and the W&B and MLflow runs that checkpoint belongs to."""

import logging
from pathlib import Path

import lightning as L
from omegaconf import DictConfig, OmegaConf, open_dict

from capsnet.callbacks.mlflow_run_in_checkpoint import MLFLOW_RUN_ID_KEY
from capsnet.callbacks.wandb_run_in_checkpoint import WANDB_RUN_ID_KEY
from capsnet.errors import ConfigError
from capsnet.models.classifier import MODULE_CLASS_KEY
from capsnet.models.loading import module_class_of, read_checkpoint
from capsnet.ops.hydra_runtime import in_multirun

log = logging.getLogger(__name__)


def checkpoint_to_resume(cfg: DictConfig, model: L.LightningModule) -> tuple[str, dict] | None:
    """The checkpoint this run continues, and its contents, checked to be ``model``'s; or None.

    ``ckpt_path`` is a file, or:
    - ``auto`` (the default): this run's own ``<output_dir>/checkpoints/last.ckpt`` if there is one, so
      that a job a cluster requeues into the same folder continues itself; else a fresh start;
    - ``last``: in a multirun, the same (each job stays inside its own folder); in a single run, the
      newest ``last.ckpt`` of this task's earlier runs whose model and settings are this run's (when
      none is, the newest one's differences are named).
    """
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is None:
        return None
    own = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    if ckpt_path == "auto" or (ckpt_path == "last" and in_multirun()):
        if not own.is_file():
            return None
        log.info("ckpt_path=%s: continuing this job's own %s", ckpt_path, own)
        return _continued(str(own), model)
    if ckpt_path != "last":
        return _continued(ckpt_path, model)
    runs = Path(cfg.paths.log_dir) / cfg.task_name
    candidates = {p for p in runs.glob("*/*/checkpoints/last.ckpt") if own.parent.parent not in p.parents}
    candidates |= set(runs.glob("multiruns/*/*/checkpoints/last.ckpt"))
    if not candidates:
        raise ConfigError(
            f"ckpt_path=last: no last.ckpt under {runs}/*/*/checkpoints; give a checkpoint's path"
        )
    newest_first = sorted(candidates, key=lambda p: p.stat().st_mtime, reverse=True)
    for candidate in newest_first:
        try:
            resumed = _checked(str(candidate), model)
        except ConfigError:
            continue  # another model's, or other settings: not this run's to continue
        log.info("ckpt_path=last: resuming from %s", candidate)
        remove_unfinished_checkpoints(candidate.parent)
        return resumed
    _checked(str(newest_first[0]), model)  # raises, naming what differs
    return None


def _continued(ckpt_path: str, model: L.LightningModule) -> tuple[str, dict]:
    """The checkpoint chosen, checked; what a kill while saving left beside it is removed."""
    remove_unfinished_checkpoints(Path(ckpt_path).parent)
    return _checked(ckpt_path, model)


def _checked(ckpt_path: str, model: L.LightningModule) -> tuple[str, dict]:
    """Only read and checked: the candidates of ``last`` may be other runs', still saving."""
    checkpoint = read_checkpoint(ckpt_path)
    check_resumable(checkpoint, ckpt_path, model)
    return ckpt_path, checkpoint


def remove_unfinished_checkpoints(folder: Path) -> None:
    """Delete the temporary files a process killed while saving left behind (``.<name>.<random>.tmp``,
    from ``AtomicCheckpointIO``), saying which: the checkpoints beside them are whole."""
    for leftover in sorted(Path(folder).glob(".*.ckpt.*.tmp")):
        log.warning("Removing %s, a checkpoint whose saving was interrupted", leftover)
        leftover.unlink(missing_ok=True)


def check_resumable(checkpoint: dict, ckpt_path: str, model: L.LightningModule) -> None:
    """Refuse to resume, by name, a checkpoint of another model class or other hyperparameters.

    Lightning would load a checkpoint of another class until a state-dict key fails, and one of the
    same network with other hyperparameters (``routing.iterations=1`` resumed with 3) silently, with
    the run recording the new values. ``compile`` may differ: it changes how, not what, is computed.
    """
    if module_class_of(checkpoint, ckpt_path) is not type(model):
        raise ConfigError(
            f"ckpt_path={ckpt_path} holds a {checkpoint[MODULE_CLASS_KEY].rsplit('.', 1)[-1]}, "
            f"this run trains a {type(model).__name__}: choose its model= or another checkpoint"
        )
    saved = {**model.ADDED_HYPERPARAMETERS, **_flat(checkpoint.get("hyper_parameters", {}))}
    wanted = _flat(dict(model.hparams))
    differ = [
        f"{key}: {saved.get(key)!r} in the checkpoint, {wanted.get(key)!r} now"
        for key in sorted(set(saved) | set(wanted))
        if saved.get(key) != wanted.get(key) and key != "compile"
    ]
    if differ:
        raise ConfigError(
            f"ckpt_path={ckpt_path} was trained with other settings ({'; '.join(differ)}): resume with "
            "the settings it was trained with, or start a new run"
        )


def _flat(tree: dict, prefix: str = "") -> dict:
    """{"routing": {"iterations": 3}} -> {"routing.iterations": 3}; lists become tuples."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
    return flat


def continue_tracking_runs(cfg: DictConfig, checkpoint: dict) -> None:
    """Resuming a run that logged to W&B or MLflow continues the same W&B or MLflow run (unless
    ``logger.wandb.id`` or ``logger.mlflow.run_id`` names one)."""
    for logger, key, stored in (("wandb", "id", WANDB_RUN_ID_KEY), ("mlflow", "run_id", MLFLOW_RUN_ID_KEY)):
        settings = OmegaConf.select(cfg, f"logger.{logger}")
        if settings is not None and not settings.get(key) and checkpoint.get(stored):
            with open_dict(cfg):
                settings[key] = checkpoint[stored]
