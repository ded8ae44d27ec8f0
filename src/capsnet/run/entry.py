"""Shared by every entry point (``src/train.py``, ``eval.py``, ``predict.py``, ``src/visualize.py``):
check the config, apply the process settings, then run the task.

The check comes before torch and Lightning are imported, so a bad value fails in about a second; bad
configs, missing data, non-finite losses, a full disk and interruptions end the process with one line
and an exit code (``capsnet.errors``) instead of a traceback, and a single run records how it ended in
``job.json`` (a multirun's jobs are recorded by Hydra's callback, ``capsnet.ops.job_record``).
"""

import contextlib
import importlib
import signal
import sys
import threading
from pathlib import Path

from omegaconf import DictConfig

from capsnet.errors import EXIT_INTERRUPTED, FAILURES, Interrupted
from capsnet.ops.hydra_runtime import hydra_config, in_multirun
from capsnet.ops.job_record import write_job_record
from capsnet.ops.process import enable_huge_pages, set_mmap_threshold, skip_triton_on_cpu
from capsnet.ops.requeue import RequeueOnSignal
from capsnet.run.checks import check_config


def _interrupted(signum, frame) -> None:
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    raise Interrupted(f"{name} before the work was done; nothing was written half")


TASKS_MODULE = "capsnet.run.tasks"


def run(task: str, cfg: DictConfig):
    """Run the task function ``task`` names (``capsnet.run.tasks.train``, ``.evaluate``, ``.visualize``,
    ``.predict``) on a checked config. A name, not the function: the module imports torch, which must
    load after the process settings.

    In a multirun the error is raised instead of exiting, so Hydra records this job as failed and
    runs the others.
    """
    previous, requeue = {}, None
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C or SIGTERM before training (data preparation, the sanity check), while testing, or in
        # any other task: one line, exit 143 and job.json. During training CheckpointOnInterrupt's
        # handlers take their place: they finish the step and save.
        previous = {signum: signal.signal(signum, _interrupted) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        check_config(cfg)
        enable_huge_pages(cfg.get("huge_pages"))  # before torch is imported (by the tasks)
        set_mmap_threshold(cfg.get("malloc_mmap_threshold"))
        skip_triton_on_cpu(cfg.get("skip_triton_on_cpu"))
        module, _, name = task.rpartition(".")
        if module != TASKS_MODULE:
            raise ValueError(f"task {task!r}: a function of {TASKS_MODULE}")
        task_function = getattr(importlib.import_module(module), name)
        requeue = RequeueOnSignal(list(cfg.get("requeue_signals") or []) if name == "train" else [])
        with requeue:
            return task_function(cfg)
    except SystemExit as exit_:
        if _is_lightnings_sigterm(exit_):  # SIGTERM while Lightning tests: its exit carries no code
            return _end(cfg, "Interrupted", EXIT_INTERRUPTED, Interrupted("SIGTERM while testing"))
        if exit_.code == EXIT_INTERRUPTED:  # training saved its state first
            _training_interrupted(cfg, requeue)
        raise
    except tuple(FAILURES) as error:
        kind, code = next(outcome for kind, outcome in FAILURES.items() if isinstance(error, kind))
        return _end(cfg, kind, code, error)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _end(cfg: DictConfig, kind: str, code: int, error: Exception):
    print(f"{kind}: {error}", file=sys.stderr)
    if in_multirun():
        raise error
    _record(cfg, "interrupted" if code == EXIT_INTERRUPTED else "failed", code, f"{kind}: {error}")
    sys.exit(code)


def _training_interrupted(cfg: DictConfig, requeue: RequeueOnSignal | None) -> None:
    """job.json for training stopped with a checkpoint (a multirun's job too: Hydra records no job that
    exits); then, if the scheduler's warning signal stopped it, the job asks to be requeued."""
    if requeue is None or requeue.received is None:
        _record(cfg, "interrupted", EXIT_INTERRUPTED, "SIGTERM or Ctrl-C while training")
        return
    reason = f"{requeue.received.name} from the scheduler: saved last.ckpt, asked to be requeued"
    _record(cfg, "requeued", EXIT_INTERRUPTED, reason)
    requeue.requeue()  # through submitit's handler, which exits


def _record(cfg: DictConfig, status: str, code: int, error: str) -> None:
    """job.json for a run that ends with an exit code of its own."""
    output_dir = cfg.get("paths", {}).get("output_dir")
    if not output_dir:
        return
    hydra_cfg = hydra_config()
    overrides = list(hydra_cfg.overrides.task) if hydra_cfg is not None else []
    record = {"status": status, "exit_code": code, "error": error, "overrides": overrides}
    with contextlib.suppress(OSError):  # a full disk, say: the line printed already tells what happened
        write_job_record(Path(output_dir), record)


def _is_lightnings_sigterm(exit_: SystemExit) -> bool:
    if "lightning" not in sys.modules:
        return False
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    return isinstance(exit_, SIGTERMException)
