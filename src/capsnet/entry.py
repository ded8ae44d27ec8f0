"""Shared by every entry point (``src/train.py``, ``eval.py``, ``predict.py``, ``scripts/visualize.py``):
validate the config, then run the task.

Validation comes before torch and Lightning are imported, so a bad value fails in about a second;
bad configs and missing data end the process with one clear line and a non-zero exit code
instead of a traceback.
"""

import sys

from omegaconf import DictConfig

from capsnet.data.files import DataError
from capsnet.errors import InputError, NonFiniteLossError
from capsnet.memory import enable_huge_pages, set_mmap_threshold, skip_triton_on_cpu
from capsnet.validation import ConfigError, validate_config

EXIT_BAD_CONFIG = 2
EXIT_NO_DATA = 3
EXIT_NON_FINITE_LOSS = 4
FAILURES = {
    ConfigError: ("Invalid config", EXIT_BAD_CONFIG),
    DataError: ("Data error", EXIT_NO_DATA),
    NonFiniteLossError: ("Training failed", EXIT_NON_FINITE_LOSS),
    InputError: ("Invalid input", EXIT_BAD_CONFIG),
}


def in_multirun() -> bool:
    """Whether this process runs a job of a Hydra multirun (``-m``)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run(task: str, cfg: DictConfig):
    """Run ``capsnet.pipeline.<task>`` (train, evaluate, visualize, predict) on a validated config.

    A bad config or input, missing data or a non-finite loss ends a single run with one line and
    exit code 2, 3 or 4 (``FAILURES``). In a
    multirun the error is raised instead, so Hydra records this job as failed and runs the others.
    """
    try:
        validate_config(cfg)
        enable_huge_pages(cfg.get("huge_pages"))  # before torch is imported (by the pipeline)
        set_mmap_threshold(cfg.get("malloc_mmap_threshold"))
        skip_triton_on_cpu(cfg.get("skip_triton_on_cpu"))
        from capsnet import pipeline

        return getattr(pipeline, task)(cfg)
    except tuple(FAILURES) as error:
        kind, code = FAILURES[type(error)]
        print(f"{kind}: {error}", file=sys.stderr)
        if in_multirun():
            raise
        sys.exit(code)
