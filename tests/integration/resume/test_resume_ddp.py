"""Exact resume under DDP: a 2-process run stopped by SIGTERM in the middle of an epoch and resumed
ends with the weights and optimizer state of the same run never interrupted. The SIGTERM comes from
outside, at whatever point the ranks are (the paper's network, so that an epoch lasts seconds), or to
one process only, at a chosen step."""

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import run_entry
from tests.integration.resume.test_resume import (
    _load,
    _output,
    _signal_at,
    _start,
    assert_same_training_state,
)

STEPS_PER_EPOCH = 5  # 80 synthetic training images, batches of 8 on each of 2 processes
EPOCHS = 3


def _overrides(data_overrides, log_dir):
    return [
        *data_overrides,
        "trainer=ddp_cpu",
        f"trainer.max_epochs={EPOCHS}",
        "trainer.deterministic=true",
        "logger=csv",
        "test=false",
        f"paths.log_dir={log_dir}",
    ]


def _interrupt_during_epoch_1(process: subprocess.Popen, run_dir: Path, signum: int) -> str:
    """Wait for the first epoch's checkpoint, then signal the process a little later, mid-training."""
    deadline = time.monotonic() + 300
    while not (run_dir / "checkpoints" / "epoch_000.ckpt").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"training ended or hung before epoch 1:\n{process.communicate()[0][-3000:]}")
        time.sleep(0.1)
    time.sleep(0.8)
    process.send_signal(signum)
    return _output(process)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_overrides) -> Path:
    """The last checkpoint of the same 2-process run, never interrupted."""
    root = tmp_path_factory.mktemp("uninterrupted_ddp")
    reference = run_entry("train.py", _overrides(data_overrides, root / "logs"), root / "run")
    assert reference.returncode == 0, reference.stderr[-3000:]
    return root / "run" / "checkpoints" / "last.ckpt"


def _resume_and_compare(overrides: list[str], run_dir: Path, uninterrupted: Path) -> None:
    resumed = run_entry("train.py", [*overrides, "ckpt_path=last"], run_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected, actual = _load(uninterrupted), _load(run_dir / "checkpoints" / "last.ckpt")
    assert actual["global_step"] == expected["global_step"] == EPOCHS * STEPS_PER_EPOCH
    assert_same_training_state(expected, actual)
    # Each epoch's train/acc over both processes, the epoch the run was resumed in included
    epoch_accuracy, resumed_accuracy = (
        _train_accuracy_by_epoch(run) for run in (uninterrupted.parents[1], run_dir)
    )
    assert resumed_accuracy == pytest.approx({e: epoch_accuracy[e] for e in resumed_accuracy}, abs=1e-6)
    assert resumed_accuracy  # from the epoch it was resumed in (in the middle) on


def _train_accuracy_by_epoch(run_dir: Path) -> dict[int, float]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as file:
        return {
            int(row["epoch"]): float(row["train/acc"]) for row in csv.DictReader(file) if row["train/acc"]
        }


@pytest.mark.slow  # three 2-process runs
def test_a_ddp_run_stopped_mid_epoch_resumes_exactly(tmp_path, data_overrides, uninterrupted):
    logs = tmp_path / "logs"
    first = logs / "train" / "runs" / "first"
    process = _start(_overrides(data_overrides, logs), first)
    output = _interrupt_during_epoch_1(process, first, signal.SIGTERM)
    assert process.returncode == 143, output[-3000:]
    saved = _load(first / "checkpoints" / "last.ckpt")
    assert STEPS_PER_EPOCH <= saved["global_step"] < EPOCHS * STEPS_PER_EPOCH
    assert json.loads((first / "job.json").read_text())["status"] == "interrupted"

    _resume_and_compare(_overrides(data_overrides, logs), tmp_path / "resumed", uninterrupted)


@pytest.mark.slow  # two more 2-process runs
def test_a_signal_that_reaches_one_process_stops_both_after_the_same_step(
    tmp_path, data_overrides, uninterrupted
):
    """SIGTERM to the second process only (a scheduler's signals reach the processes one by one): the
    processes agree after the step, both stop and save, and the resumed run ends identical. Each process
    stopping on its own flag, the signalled one waited in the checkpoint's barrier while the other went
    on to the next step's broadcast, and both hung."""
    logs = tmp_path / "logs"
    first = logs / "train" / "runs" / "first"
    step = STEPS_PER_EPOCH + 2
    process = _start([*_overrides(data_overrides, logs), *_signal_at(step, signal.SIGTERM, rank=1)], first)
    output = _output(process)
    assert process.returncode == 143, output[-3000:]
    assert "Interrupted after step" in output
    assert _load(first / "checkpoints" / "last.ckpt")["global_step"] == step  # that step finished
    _resume_and_compare(_overrides(data_overrides, logs), tmp_path / "resumed", uninterrupted)
