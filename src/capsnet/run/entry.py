"""Shared by every entry point (``src/train.py``, ``eval.py``, ``predict.py``, ``scripts/visualize.py``):
check the config, apply the process settings, then run the task.

The check comes before torch and Lightning are imported, so a bad value fails in about a second; bad
configs, missing data and non-finite losses end the process with one line and an exit code
(``capsnet.errors``) instead of a traceback.
"""

import sys

from omegaconf import DictConfig

from capsnet.errors import FAILURES
from capsnet.run.checks import check_config
from capsnet.run.hydra_runtime import in_multirun
from capsnet.run.process import enable_huge_pages, set_mmap_threshold, skip_triton_on_cpu


def run(task: str, cfg: DictConfig):
    """Run ``capsnet.run.tasks.<task>`` (train, evaluate, visualize, predict) on a checked config.

    In a multirun the error is raised instead of exiting, so Hydra records this job as failed and
    runs the others.
    """
    try:
        check_config(cfg)
        enable_huge_pages(cfg.get("huge_pages"))  # before torch is imported (by the tasks)
        set_mmap_threshold(cfg.get("malloc_mmap_threshold"))
        skip_triton_on_cpu(cfg.get("skip_triton_on_cpu"))
        from capsnet.run import tasks

        return getattr(tasks, task)(cfg)
    except tuple(FAILURES) as error:
        kind, code = next(outcome for kind, outcome in FAILURES.items() if isinstance(error, kind))
        print(f"{kind}: {error}", file=sys.stderr)
        if in_multirun():
            raise
        sys.exit(code)
