"""The scheduler's warning signal inside a SLURM job: stop with a checkpoint (a SIGTERM), then requeue
once, through submitit's handler where submitit launched the job."""

import os
import signal

import pytest

from capsnet.ops.requeue import RequeueOnSignal


@pytest.fixture
def sigterms(monkeypatch):
    """SIGTERMs this process sends itself, recorded instead of acted on."""
    received = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    yield received
    signal.signal(signal.SIGTERM, previous)


@pytest.fixture
def slurm_job(monkeypatch, tmp_path):
    """A SLURM job's environment with an ``scontrol`` that records what it is asked; returns the record."""
    for name in [k for k in os.environ if k.startswith("SLURM_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    scontrol = tmp_path / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "requests"}\n')
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    return tmp_path / "requests"


def test_outside_slurm_no_handler_is_installed(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    before = signal.getsignal(signal.SIGUSR2)
    with RequeueOnSignal(["SIGUSR1", "SIGUSR2"]):
        assert signal.getsignal(signal.SIGUSR2) is before


def test_the_signal_becomes_a_sigterm_then_submitits_handler_requeues(slurm_job, sigterms):
    submitit_calls = []

    def submitit_handler(signum, frame):
        submitit_calls.append(signum)

    signal.signal(signal.SIGUSR2, submitit_handler)
    try:
        with RequeueOnSignal(["SIGUSR1", "SIGUSR2"]) as requeue:
            os.kill(os.getpid(), signal.SIGUSR2)
            assert sigterms == [signal.SIGTERM] and submitit_calls == []
        assert requeue.received == signal.SIGUSR2
        assert signal.getsignal(signal.SIGUSR2) is submitit_handler  # restored
        requeue.requeue()
        assert submitit_calls == [signal.SIGUSR2]
        assert not slurm_job.exists()  # submitit requeues, not a second scontrol
    finally:
        signal.signal(signal.SIGUSR2, signal.SIG_DFL)


def test_without_submitit_rank_zero_asks_scontrol_for_its_array_task(slurm_job, sigterms, monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    for rank, expected in (("1", False), ("0", True)):
        monkeypatch.setenv("SLURM_PROCID", rank)
        with RequeueOnSignal(["SIGUSR1"]) as requeue:
            os.kill(os.getpid(), signal.SIGUSR1)
        requeue.requeue()
        assert slurm_job.exists() == expected
    assert slurm_job.read_text() == "requeue 77_3\n"


def test_a_signal_this_platform_lacks_is_skipped_with_one_line(caplog):
    # What Windows does with the default [SIGUSR1, SIGUSR2]; here a POSIX name Linux lacks stands in.
    with caplog.at_level("INFO"):
        requeue = RequeueOnSignal(["SIGUSR1", "SIGINFO"])
    assert requeue.signals == [signal.SIGUSR1]
    assert "SIGINFO do not exist on this platform; skipped" in caplog.text
