"""How long a run will take, said once its first steps are timed, with a faster way where there is one.

A newcomer's ``make train`` on a laptop runs the default 10 fp32 epochs: hours on a CPU. One line tells
them the device, the precision, the run's length in steps and, from the first steps, in time; on a CPU
it names ``experiment=fast_cpu``, which trains the same model to 99% test accuracy in minutes (in float32
where the CPU's bfloat16 is slow).

bf16 autocast on a CPU that emulates bfloat16 is the one setting that makes a run many times slower than
the default. CPUs with bfloat16 instructions (AVX-512 BF16, AMX; Arm's BF16) multiply bf16 several times
faster than float32; one without them (an AVX2-only x86 CPU) converts every element and is many times
slower. A short matmul of each type tells, on any CPU, without a list of instruction sets; a warning
then says so before the first step (which compiles for minutes) and names ``trainer.precision=32``.
"""

import functools
import logging
import time

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info

log = logging.getLogger(__name__)

# Below this fraction of the float32 rate, bf16 is emulated: native bf16 runs at or above float32's rate.
SLOW_BF16_FRACTION = 0.5


def matmul_gflops(dtype: torch.dtype, size: int = 256, repeats: int = 3) -> float:
    """The best of ``repeats`` ``size``^3 matmuls on the CPU, in GFLOP/s (after one untimed)."""
    generator = torch.Generator().manual_seed(0)  # never the global one: a resumed run restored it
    a, b = (torch.randn(size, size, dtype=dtype, generator=generator) for _ in range(2))
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


@functools.cache  # once a process: a sweep or a test session fits many times on the same CPU
def slow_bfloat16() -> tuple[float, float] | None:
    """(bf16, float32) matmul GFLOP/s where this CPU's bf16 is emulated; None where it is fast enough."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one core's rates: steady on a busy machine, where a team of threads is not
    try:
        bf16, fp32 = matmul_gflops(torch.bfloat16), matmul_gflops(torch.float32)
    finally:
        torch.set_num_threads(threads)
    return (bf16, fp32) if bf16 < SLOW_BF16_FRACTION * fp32 else None


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
        if "bf16" in str(trainer.precision) and self._slow_bf16 is not None:
            log.warning(
                "trainer.precision=%s on a CPU without fast bfloat16 (no AVX-512 BF16 or AMX): its bf16 "
                "matmuls run at %.1f GFLOP/s, float32 at %.1f, so this run trains many times slower than "
                "in float32; for speed add trainer.precision=32",
                trainer.precision,
                *self._slow_bf16,
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
            line += " trainer.precision=32" if self._slow_bf16 else ""  # fast_cpu's bf16 is emulated here
        rank_zero_info(line)
        self._started = None
