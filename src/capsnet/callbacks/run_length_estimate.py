"""How long a run will take, said once its first steps are timed, with a faster way where there is one.

A newcomer's ``make train`` on a laptop runs the default 10 fp32 epochs: hours on a CPU. One line tells
them the device, the precision, the run's length in steps and, from the first steps, in time; on a CPU
it names ``experiment=fast_cpu``, which trains the same model to 99% test accuracy in minutes.
"""

import logging
import time

import lightning as L
from lightning.pytorch.utilities import rank_zero_info

log = logging.getLogger(__name__)


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{max(minutes, 1)} min"


class RunLengthEstimate(L.Callback):
    def __init__(self, timed_steps: int = 5):
        self.timed_steps = timed_steps
        self._started: float | None = None
        self._first_step: int | None = None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module, batch, batch_idx: int) -> None:
        # Step one (and a resumed run's first) is not timed: it pays for warm-up and compilation.
        if self._first_step is None:
            self._first_step = trainer.global_step + 1
        elif trainer.global_step == self._first_step:
            self._started = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self._started is None or trainer.global_step != self._first_step + self.timed_steps:
            return
        seconds_per_step = (time.perf_counter() - self._started) / self.timed_steps
        remaining = max(int(trainer.estimated_stepping_batches) - trainer.global_step, 0)
        device = trainer.strategy.root_device
        where = f"{device.type}" + (f" ({trainer.world_size} processes)" if trainer.world_size > 1 else "")
        line = (
            f"Training on {where}, precision {trainer.precision}: {remaining:,} steps left at "
            f"{seconds_per_step:.2f} s/step, about {_duration(remaining * seconds_per_step)} more"
        )
        if device.type == "cpu":
            line += "; for a fast result on a CPU: python src/train.py experiment=fast_cpu"
        rank_zero_info(line)
        self._started = None
