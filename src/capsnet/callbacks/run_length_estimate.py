"""How long a run will take, said once its first steps are timed, with a faster way where there is one.

A newcomer's ``make train`` on a laptop runs the default 10 fp32 epochs: hours on a CPU. One line tells
them the device, the precision, the run's length in steps and, from the first steps, in time; on a CPU
it names ``experiment=fast_cpu``, which trains the same model to 99% test accuracy in minutes (in float32
where the CPU's bfloat16 is slow: faster there than bf16's products in float32).

Eager bf16 autocast on a CPU that emulates bfloat16 (``capsnet.nn.bfloat16_speed``) is the one setting
that makes a run many times slower than the default: a warning says so before the first step and names
the ways out, ``model.compile=true`` (whose graphs compute bf16's matmuls in float32 there:
``capsnet.nn.bf16_in_float32``) and ``trainer.precision=32``. A compiled bf16 run there is told, once,
that its matmuls run in float32.
"""

import logging
import time

import lightning as L
from lightning.pytorch.utilities import rank_zero_info

from capsnet.nn.bfloat16_speed import slow_bfloat16

log = logging.getLogger(__name__)


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{max(minutes, 1)} min"


class RunLengthEstimate(L.Callback):
    def __init__(self, timed_steps: int = 5, suggest_fast_cpu: bool = True):
        self.timed_steps = timed_steps
        self.suggest_fast_cpu = suggest_fast_cpu  # experiment=fast_cpu turns it off: it is that recipe
        self._started: float | None = None
        self._first_step: int | None = None
        self._slow_bf16: tuple[float, float] | None = None  # measured on a CPU's global rank 0

    def on_fit_start(self, trainer: L.Trainer, pl_module) -> None:
        if trainer.strategy.root_device.type != "cpu" or not trainer.is_global_zero:
            return
        self._slow_bf16 = slow_bfloat16()
        if "bf16" not in str(trainer.precision) or self._slow_bf16 is None:
            return
        if getattr(pl_module, "bf16_products_in_float32", False):  # compiled: near float32's speed
            log.info(
                "trainer.precision=%s on a CPU without fast bfloat16 (no AVX-512 BF16 or AMX): the "
                "compiled graphs compute its matmuls and convolutions in float32, rounded to bf16",
                trainer.precision,
            )
            return
        # A module that computes bf16's products in float32 when compiled (CapsNetModule) names that too.
        can_compile = hasattr(pl_module, "bf16_products_in_float32")
        compiling = "model.compile=true (its matmuls then run in float32) or " if can_compile else ""
        log.warning(
            "trainer.precision=%s on a CPU without fast bfloat16 (no AVX-512 BF16 or AMX): its bf16 "
            "matmuls run at %.1f GFLOP/s, float32 at %.1f, so this run trains many times slower than in "
            "float32; for speed add %strainer.precision=32",
            trainer.precision,
            *self._slow_bf16,
            compiling,
        )

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
        if device.type == "cpu" and self.suggest_fast_cpu:
            line += "; for a fast result on a CPU: python src/train.py experiment=fast_cpu"
            line += " trainer.precision=32" if self._slow_bf16 else ""  # beats bf16's float32 products there
        rank_zero_info(line)
        self._started = None
