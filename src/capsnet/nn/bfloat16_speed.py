"""Whether this CPU's bfloat16 is slow: a short matmul of each type tells, on any CPU, without a list of
instruction sets.

CPUs with bfloat16 instructions (AVX-512 BF16, AMX; Arm's BF16) multiply bf16 several times faster than
float32; one without them (an AVX2-only x86 CPU) converts every element in oneDNN's kernels and is many
times slower.
"""

import functools
import time

import torch

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
