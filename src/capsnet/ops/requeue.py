"""A scheduler's warning signal: finish the training step, save, then requeue this job (SLURM).

SLURM warns a job before pre-empting it or at its time limit with the signal the job asked for:
hydra-submitit-launcher asks for SIGUSR2 (``--signal=USR2@<signal_delay_s>``), a hand-written
``#SBATCH --signal=USR1@90`` for SIGUSR1. Both are handled alike (``requeue_signals``): the signal is
turned into a SIGTERM, on which training finishes its step and saves ``last.ckpt``
(``CheckpointOnInterrupt``); then the job asks to be requeued, through submitit's own handler when
submitit launched it (it counts timeouts and pickles the job again), else with ``scontrol requeue``.
Requeued, the same command starts again in the same folder, where ``ckpt_path=auto`` continues the
job's own ``last.ckpt``.

Lightning's own SLURM requeue (on SIGUSR1) saves inside the signal handler, possibly in the middle of a
step; it leaves a handler that is already in place alone, so installing these first keeps it out.
"""

import logging
import os
import signal
import subprocess
import threading

log = logging.getLogger(__name__)


def slurm_job_id() -> str | None:
    """The id ``scontrol requeue`` takes: ``<array job>_<task>`` for a job array's task."""
    if "SLURM_ARRAY_JOB_ID" in os.environ and "SLURM_ARRAY_TASK_ID" in os.environ:
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


class RequeueOnSignal:
    """While in effect (a ``with`` block around training, in a SLURM or submitit job), each of ``signals``
    stops training at the end of its step with a checkpoint; ``requeue()`` then puts the job back."""

    def __init__(self, signals: list[str]):
        missing = [name for name in signals if name not in signal.Signals.__members__]
        if missing:  # Windows has no SIGUSR1 or SIGUSR2 (and no SLURM)
            log.info("requeue_signals: %s do not exist on this platform; skipped", ", ".join(missing))
        self.signals = [signal.Signals[name] for name in signals if name not in missing]
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, object] = {}

    def __enter__(self) -> "RequeueOnSignal":
        launched = slurm_job_id() is not None or "SUBMITIT_FOLDER" in os.environ  # submitit_local too
        if launched and threading.current_thread() is threading.main_thread():
            for signum in self.signals:
                self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame) -> None:
        self.received = signal.Signals(signum)
        name = self.received.name
        log.warning("%s: the job is about to be stopped; saving after this step, then requeueing", name)
        os.kill(os.getpid(), signal.SIGTERM)  # Lightning's stop at the end of the step, then the checkpoint

    def requeue(self) -> None:
        """Put this job back in the queue: once, from global rank 0."""
        previous = self._previous.get(self.received)
        if callable(previous):  # submitit's handler: requeues the job it pickled, then exits
            previous(self.received, None)
            return
        if int(os.environ.get("SLURM_PROCID", "0")) != 0:
            return
        job = slurm_job_id()
        try:
            subprocess.run(["scontrol", "requeue", job], check=True, timeout=60, capture_output=True)
        except (OSError, subprocess.SubprocessError) as error:
            log.error(
                "scontrol requeue %s failed (%s): submit the same command again to continue", job, error
            )
            return
        log.warning("Requeued SLURM job %s: it continues from its own last.ckpt", job)
