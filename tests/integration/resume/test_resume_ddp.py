"""Exact resume under DDP: a 2-process run stopped by SIGTERM in the middle of an epoch and resumed
ends with the weights and optimizer state of the same run never interrupted. The SIGTERM comes from
outside, at whatever point the ranks are: the paper's network, so that an epoch lasts seconds."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import run_entry
from tests.integration.resume.test_resume import _load, _output, _start, assert_same_training_state

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


@pytest.mark.slow  # three 2-process runs
def test_a_ddp_run_stopped_mid_epoch_resumes_exactly(tmp_path, data_overrides):
    reference_dir = tmp_path / "reference"
    reference = run_entry("train.py", _overrides(data_overrides, tmp_path / "ref_logs"), reference_dir)
    assert reference.returncode == 0, reference.stderr[-3000:]

    logs = tmp_path / "logs"
    first = logs / "train" / "runs" / "first"
    process = _start(_overrides(data_overrides, logs), first)
    output = _interrupt_during_epoch_1(process, first, signal.SIGTERM)
    assert process.returncode == 143, output[-3000:]
    saved = _load(first / "checkpoints" / "last.ckpt")
    assert STEPS_PER_EPOCH <= saved["global_step"] < EPOCHS * STEPS_PER_EPOCH
    assert json.loads((first / "job.json").read_text())["status"] == "interrupted"

    overrides = [*_overrides(data_overrides, logs), "ckpt_path=last"]
    resumed = run_entry("train.py", overrides, tmp_path / "resumed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = _load(reference_dir / "checkpoints" / "last.ckpt")
    actual = _load(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert actual["global_step"] == expected["global_step"] == EPOCHS * STEPS_PER_EPOCH
    assert_same_training_state(expected, actual)
