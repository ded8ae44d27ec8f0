"""Experiment loggers that never block a run: W&B online with credentials, offline otherwise.

``make_wandb_logger`` (``conf/logger/wandb.yaml``) decides the W&B mode before ``wandb.init`` can
prompt or wait on the network:
- ``mode=auto`` (the default): online only when credentials exist (``WANDB_API_KEY``, or a key that
  ``wandb login`` stored in ~/.netrc) and the W&B server answers an HTTP request within 3 s;
  otherwise offline, with one warning. A ``WANDB_MODE`` environment variable wins over ``auto``.
- ``online`` / ``offline`` / ``disabled``: as W&B defines them.
Offline runs print the exact ``wandb sync <dir>`` command at the end (``finish_loggers``); a multirun
prints one command for all its jobs at its end (``capsnet.ops.sweep_upload``).

Run names default to the command-line overrides (``routing.iterations=1,decoder.alpha=0``); every
job of one Hydra multirun, and every run of one W&B sweep, joins one W&B group named after the sweep.
A run a W&B agent starts takes the run id the agent gives it (``WANDB_RUN_ID``), as ``wandb.init`` does.
"""

import logging
import netrc
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from lightning.fabric.utilities.logger import _flatten_dict  # the parameter names MLFlowLogger gives
from lightning.pytorch.loggers import Logger, MLFlowLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from capsnet.errors import ConfigError
from capsnet.ops.hydra_runtime import hydra_config, in_multirun

log = logging.getLogger(__name__)

MODES = ("auto", "online", "offline", "disabled")
DEFAULT_HOST = "https://api.wandb.ai"
# Overrides that say where or how a run is logged, not what it trains: left out of run names.
NOT_IN_NAMES = (
    "hydra.",
    "paths.",
    "logger",
    "data.data_dir",
    "data.sources",
    "data.files",
    "trainer.accelerator",
)
MLFLOW_PARAM_LENGTH = 250  # Lightning's MLFlowLogger cuts parameter values there


def _has_credentials(host: str) -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(urlparse(host).hostname or host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def _answers(host: str, timeout_s: float = 3.0) -> bool:
    """Whether the server at ``host`` answers an HTTP request within ``timeout_s`` (any status will do).

    A TCP connection alone is not enough: a server (or a proxy) that accepts it and never replies would
    hold ``wandb.init`` for minutes.
    """
    parsed = urlparse(host)  # credentials in the URL are W&B's business, not this probe's
    netloc = f"{parsed.hostname}:{parsed.port}" if parsed.port else str(parsed.hostname)
    url = parsed._replace(netloc=netloc, path=parsed.path.rstrip("/") + "/healthz").geturl()
    request = urllib.request.Request(url, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            return True
    except urllib.error.HTTPError:
        return True  # it answered, if not with 200
    except (OSError, ValueError):  # refused, unreachable, timed out, not a URL
        return False


def without_credentials(url: str) -> str:
    """``url`` with any ``user:password@`` taken out: for messages and logs."""
    parsed = urlparse(url)
    if not (parsed.username or parsed.password):
        return url
    host = parsed.hostname + (f":{parsed.port}" if parsed.port else "")
    return parsed._replace(netloc=f"***@{host}").geturl()


def resolve_mode(mode: str) -> str:
    """The W&B mode to run in: ``auto`` becomes online or offline (see the module docstring)."""
    if mode not in MODES:
        raise ValueError(f"logger.wandb.mode={mode!r}; allowed: {', '.join(MODES)}")
    if mode != "auto":
        return mode
    if "WANDB_MODE" in os.environ and not os.environ["WANDB_MODE"].strip():
        del os.environ["WANDB_MODE"]  # an empty WANDB_MODE= is no choice (and W&B would refuse it)
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    host = os.environ.get("WANDB_BASE_URL", DEFAULT_HOST)
    if not _has_credentials(host):
        log.info("W&B: no credentials (WANDB_API_KEY or `wandb login`): logging offline")
        return "offline"
    if not _answers(host):
        log.warning("W&B: %s does not answer: logging offline", without_credentials(host))
        return "offline"
    return "online"


def run_name_from_overrides(default: str) -> str:
    """``key=value`` overrides of this job, comma-joined (``default`` when there are none)."""
    hydra_cfg = hydra_config()
    if hydra_cfg is None:
        return default
    kept = [o for o in hydra_cfg.overrides.task if not o.lstrip("+~").startswith(NOT_IN_NAMES)]
    return ",".join(kept) or default


def sweep_group() -> str | None:
    """``sweep-<id>`` for a run started by a W&B agent (``wandb agent``), ``<task>-<sweep folder>`` for a
    job of a Hydra multirun; None for a single run."""
    if os.environ.get("WANDB_SWEEP_ID"):
        return f"sweep-{os.environ['WANDB_SWEEP_ID']}"
    if not in_multirun():
        return None
    hydra_cfg = hydra_config()
    return f"{hydra_cfg.job.name}-{Path(hydra_cfg.sweep.dir).name}"


def make_wandb_logger(
    project: str,
    save_dir: str,
    mode: str = "auto",
    entity: str | None = None,
    name: str | None = None,
    group: str | None = None,
    tags: list[str] | None = None,
    notes: str | None = None,
    job_type: str | None = None,
    log_model: bool | str = False,
    id: str | None = None,
    **kwargs,
) -> WandbLogger:
    """Lightning's WandbLogger with the mode resolved, a name and a group (see the module docstring).

    ``id``: resume into that W&B run (with ``resume="allow"``: it is created if it does not exist).
    Any other argument of ``WandbLogger`` or ``wandb.init`` passes through: ``+logger.wandb.save_code=true``.
    ``save_dir`` is checked to be writable now, not when the run ends and W&B writes its files.
    """
    resolved = resolve_mode(mode)
    try:
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=save_dir).close()
    except OSError as error:
        raise ConfigError(
            f"logger.wandb.save_dir={save_dir}: W&B cannot write there ({error.strerror or error}); "
            "give a writable folder"
        ) from None
    arguments = dict(
        kwargs,
        project=project,
        entity=entity,
        name=name or run_name_from_overrides(default=job_type or "run"),
        group=group or sweep_group(),
        tags=list(tags or []),
        notes=notes,
        job_type=job_type,
        save_dir=save_dir,
        log_model=log_model,
        id=id,
        resume="allow" if id else None,
    )
    logger = WandbLogger(**arguments, mode=resolved)
    if mode == "auto" and resolved == "online":
        try:  # started now, so that a server that answers but refuses (a rejected key, not W&B) is met here
            logger.experiment  # noqa: B018
        except Exception as error:
            reason = " ".join(str(error).split())[:200] or type(error).__name__
            log.warning("W&B: could not start online (%s): logging offline", reason)
            logger = WandbLogger(**arguments, mode="offline")
    return logger


def make_mlflow_logger(run_name: str | None = None, **kwargs) -> Logger:
    """Lightning's MLFlowLogger (``conf/logger/mlflow.yaml``), the run named as W&B's is; with
    ``run_id``, it continues that run."""
    return MLFlowLogger(run_name=run_name or run_name_from_overrides(default="train"), **kwargs)


@rank_zero_only
def log_mlflow_hyperparameters(logger: MLFlowLogger, hyperparameters: dict) -> None:
    """The hyperparameters as MLflow parameters (``routing/iterations``), as Lightning logs them, in a run
    that may be a continued one.

    MLflow keeps a run's parameters as first logged and refuses to change one (the whole run would fail),
    while a resumed part may run with other settings than the first: a later ``trainer.max_epochs``, an
    explicit ``ckpt_path``. So only the parameters the run lacks are logged; a value the resumed part
    changed goes into the tag ``resumed/<name>``.
    """
    flat = {key: str(value)[:MLFLOW_PARAM_LENGTH] for key, value in _flatten_dict(hyperparameters).items()}
    logged = logger.experiment.get_run(logger.run_id).data.params
    logger.log_hyperparams({key: value for key, value in flat.items() if key not in logged})
    changed = {key: value for key, value in flat.items() if key in logged and logged[key] != value}
    for key, value in changed.items():
        logger.experiment.set_tag(logger.run_id, f"resumed/{key}", value)
    if changed:
        log.info(
            "MLflow: this part of run %s changed %s: tags resumed/<name>", logger.run_id, ", ".join(changed)
        )


def finish_loggers(loggers: list[Logger]) -> None:
    """Close W&B runs (so the next job of a multirun starts its own) and say how to sync offline ones."""
    for logger in loggers:
        if not isinstance(logger, WandbLogger) or logger._experiment is None:
            continue
        import wandb

        run = logger.experiment
        offline = getattr(run.settings, "mode", None) == "offline" or getattr(run.settings, "_offline", False)
        run_dir = Path(run.dir).parent if run.dir else None
        wandb.finish()
        if offline and run_dir is not None and not in_multirun():  # a sweep says it once (sweep_upload)
            print(f"W&B run saved offline; to upload it: wandb sync {run_dir}", flush=True)
            print(f"To browse it in the terminal: wandb leet {run_dir}", flush=True)
