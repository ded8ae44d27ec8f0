"""Test helpers: a tiny synthetic MNIST-format dataset, and the entry points run in a process of their
own (``run_entry``: exit codes, signals, Hydra's job files) or in this one (``run_in_process``: faster,
where the process is not what is tested)."""

import contextlib
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from capsnet.data.files import SPLITS, md5
from capsnet.data.idx import write_idx
from capsnet.models.classifier import ClassifierModule

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
os.environ.setdefault("PROJECT_ROOT", str(ROOT))

FILE_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def write_synthetic_mnist(root: Path, train: int = 96, test: int = 37, seed: int = 0) -> dict[str, str]:
    """IDX files of 28x28 images whose label is the row of a bright bar; returns {split: md5}.

    The test set has an odd size on purpose, so that uneven last batches are exercised.
    """
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", train), ("test", test)):
        labels = rng.integers(0, 10, size=count).astype(np.uint8)
        images = rng.integers(0, 40, size=(count, 28, 28)).astype(np.uint8)
        for index, label in enumerate(labels):
            images[index, 4 + 2 * label : 6 + 2 * label, 4:24] = 255
        write_idx(raw / FILE_NAMES[f"{split}_images"], images)
        write_idx(raw / FILE_NAMES[f"{split}_labels"], labels)
    return {split: md5(raw / FILE_NAMES[split]) for split in SPLITS}


def run_entry(
    script: str, overrides: list[str], tmp_path: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``src/<script>`` (or ``scripts/<script>``) as a user would, outputs under ``tmp_path``.

    ``env`` replaces the inherited environment (PYTHONUNBUFFERED and COLUMNS are added).
    """
    folder = "scripts" if (ROOT / "scripts" / script).exists() else "src"
    command = [sys.executable, str(ROOT / folder / script), *overrides, f"hydra.run.dir={tmp_path}"]
    env = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    return subprocess.run(
        command, capture_output=True, text=True, timeout=600, env=env, stdin=subprocess.DEVNULL
    )


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    """The config ``src/<name>.py`` would run with, every interpolation resolved."""
    import capsnet.ops.hydra_runtime  # noqa: F401 (registers ${run_suffix:}, as the entry points do)

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)  # so that ${hydra:...} resolves as in a real run
    with open_dict(cfg):
        del cfg.hydra
    OmegaConf.resolve(cfg)
    return cfg


# A training run of two steps: for the tests of what happens before and after training.
TWO_STEPS = ["trainer.max_epochs=1", "+trainer.limit_train_batches=2"]

TASKS = {
    name: f"capsnet.run.tasks.{task}"
    for name, task in {
        "train": "train",
        "eval": "evaluate",
        "visualize": "visualize",
        "predict": "predict",
        "explore": "explore",
    }.items()
}


def run_in_process(config_name: str, overrides: list[str], output_dir: Path) -> SimpleNamespace:
    """What ``src/<config_name>.py <overrides>`` does, in this process, writing into ``output_dir``.

    The same check, process settings and task (``capsnet.run.entry.run``). Returns ``code`` (the exit
    code: 0, or that of the ``SystemExit`` a failure ends with), ``value`` (what the task returned) and
    ``output`` (what it printed and logged). Not Hydra's job machinery: no ``<task>.log`` or ``job.json``.
    """
    from capsnet.run.entry import run

    cfg = compose_config(config_name, [*overrides, f"paths.output_dir={output_dir}"])
    printed = io.StringIO()
    handler = logging.StreamHandler(printed)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    result = SimpleNamespace(code=0, value=None, output="")
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            result.value = run(TASKS[config_name], cfg)
    except SystemExit as exit_:
        result.code = exit_.code
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        result.output = printed.getvalue()
    return result


def run_multirun(overrides: list[str], sweep_dir: Path) -> subprocess.CompletedProcess:
    """``src/train.py -m <overrides>`` in a process of its own (a Hydra multirun), into ``sweep_dir``."""
    command = [
        sys.executable,
        str(ROOT / "src" / "train.py"),
        "-m",
        *overrides,
        f"hydra.sweep.dir={sweep_dir}",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        command, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL, env=env
    )


def bar_digits(count: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 28x28 images of an off-centre bar with a seeded top (so that moves show), labels 0-9 cycling."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    images[:, 6:22, 12:16] = 255
    images[:, 6:9, 12:20] = rng.integers(100, 255, size=(count, 3, 8), dtype=np.uint8)
    return images, (np.arange(count) % 10).astype(np.uint8)


class Payload:
    """A pickle payload: unpickled without weights_only, it runs a shell command that leaves ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class SigtermWhileTesting(L.Callback):
    """Sends this process a SIGTERM at the first test batch, as a scheduler ending the job would."""

    def on_test_batch_start(self, *args, **kwargs) -> None:
        os.kill(os.getpid(), signal.SIGTERM)


class SigtermDuringValidation(L.Callback):
    """Sends this process a SIGTERM at the first validation batch after training epoch ``epoch``."""

    def __init__(self, epoch: int = 0):
        self.epoch = epoch

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking and trainer.current_epoch == self.epoch and batch_idx == 0:
            os.kill(os.getpid(), signal.SIGTERM)


def wandb_records(run_dir: Path) -> list[dict]:
    """The records of a W&B run folder's ``.wandb`` log, as ``wandb leet inspect --json`` prints them."""
    wandb_cli = Path(sys.executable).with_name("wandb")
    printed = subprocess.run(
        [str(wandb_cli), "leet", "inspect", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        stdin=subprocess.DEVNULL,
    ).stdout
    return [json.loads(line) for line in printed.splitlines() if line.strip()]


def read_wandb_run(run_dir: Path) -> SimpleNamespace:
    """A W&B run folder read back: ``run`` (its run record), ``config``, ``history`` (one dict a row,
    nested keys joined with ``.``), ``summary`` and ``artifacts``."""
    run = SimpleNamespace(run={}, config={}, history=[], summary={}, artifacts=[])
    for record in wandb_records(run_dir):
        kind = record["type"]
        if kind == "run":
            run.run = record["run"]
            run.config.update(record["run"].get("config", {}).get("update", {}))
        elif kind == "config":
            run.config.update(record["config"].get("update", {}))
        elif kind == "history":
            run.history.append(record["history"]["item"])
        elif kind == "summary":
            run.summary.update(record["summary"].get("update", {}))
        elif kind == "artifact":
            run.artifacts.append(record["artifact"])
    return run


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_binary(variable: str, default: Path) -> Path:
    """A tracking server's program, from ``$<variable>`` (set by the Makefile) or its default venv."""
    binary = Path(os.environ.get(variable, default))
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run these tests with `make test-tracking-servers`")
    return binary


@contextlib.contextmanager
def running_server(command: list[str], ready_url: str, timeout_s: float = 120):
    """Runs ``command`` until the block ends, once ``ready_url`` answers."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                urllib.request.urlopen(ready_url, timeout=5).close()
                break
            except urllib.error.HTTPError:
                break  # it answers
            except OSError:
                assert process.poll() is None, f"{command[0]} ended before it answered"
                assert time.monotonic() < deadline, f"{command[0]} did not answer within {timeout_s} s"
                time.sleep(0.3)
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


def run_if(min_gpus: int = 1):
    """Marks a test ``gpu`` and skips it where fewer than ``min_gpus`` CUDA devices are visible."""
    import torch

    found = torch.cuda.device_count()
    skip = pytest.mark.skipif(found < min_gpus, reason=f"needs {min_gpus} CUDA device(s), found {found}")
    return lambda test: pytest.mark.gpu(skip(test))


class SignalAtStep(L.Callback):
    """Sends this process ``signal`` in the middle of training step number ``step`` (after its backward
    pass; not again after a resume), as a scheduler's signal arrives: a run that finishes the step, then
    stops, has done ``step`` steps. With ``rank``, only the process of that global rank signals itself."""

    def __init__(self, step: int, signal: str = "SIGUSR2", rank: int | None = None):
        self.step, self.signal, self.rank = step, signal, rank

    def on_after_backward(self, trainer, pl_module) -> None:
        if trainer.global_step == self.step - 1 and self.rank in (None, trainer.global_rank):
            os.kill(os.getpid(), signal.Signals[self.signal])


def at_once(target, *argument_lists: tuple) -> list[int]:
    """Runs ``target(*arguments)`` in one forked process per argument list, all at once; their exit codes."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=target, args=arguments) for arguments in argument_lists]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    return [worker.exitcode for worker in workers]


class OwnClassifier(ClassifierModule):
    """A researcher's LightningModule: what the registration of module classes is tested with."""

    def __init__(self):
        super().__init__(num_classes=10, loss_terms=("total",))


class SignalDuringSanityCheck(L.Callback):
    """Sends this process ``signal`` when the sanity check's validation starts, before any training."""

    def __init__(self, signal: str = "SIGINT"):
        self.signal = signal

    def on_sanity_check_start(self, trainer, pl_module) -> None:
        os.kill(os.getpid(), signal.Signals[self.signal])
