"""Process-wide memory settings, applied by the entry points before the model is built.

1. Huge pages (``huge_pages``, default true): PyTorch's CPU allocator puts large tensors on
   transparent huge pages (its ``THP_MEM_ALLOC_ENABLE=1``): fewer page faults and TLB misses, at the
   same peak memory (docs/speed.md). Needs the kernel's THP in ``madvise`` or ``always`` mode
   (``/sys/kernel/mm/transparent_hugepage/enabled``); harmless otherwise.

2. A fixed mmap threshold (``malloc_mmap_threshold``): which freed buffers go back to the OS.

glibc's malloc serves a request above its mmap threshold with ``mmap`` and unmaps it on ``free``;
smaller ones come from the heap, which only shrinks from its top. The threshold starts at 128 KiB
but rises to the size of every large block freed (up to 32 MiB on 64-bit), so after the first
training step most activations (5-50 MB each at batch 128) are carved from the heap, which
fragments, and the resident size creeps up step by step. A fixed threshold
(``mallopt(M_MMAP_THRESHOLD)``, which also turns the adaptation off) keeps it steady, and the same
value as the trim threshold keeps that much free memory at the heap's top between steps:
- 1 MiB (the default): every large tensor is a fresh mapping, returned on free: the lowest peak
  memory, at the cost of zeroing fresh pages for each one (cheap with huge pages, not free);
- 1 GiB (``experiment=fast_cpu``, ``paper_short``): every tensor is carved from the heap, and a step
  reuses the previous step's memory as it is: faster, at a higher peak (docs/speed.md).

3. No Triton without a GPU (``skip_triton_on_cpu``, default true). The index's torch is a CUDA build,
   and importing torchvision (which Lightning's torchmetrics does) imports ``torch._dynamo``, which
   loads Triton, the GPU kernel compiler: ~90 MB resident (libtriton.so and its data) that a process
   without an accelerator never uses; ``torch.compile`` on the CPU generates C++, not Triton. With no
   accelerator present, Triton is marked unavailable before it loads.

Set with the top-level config key ``malloc_mmap_threshold`` (bytes; ``null`` keeps glibc's own
policy). A ``MALLOC_MMAP_THRESHOLD_`` environment variable, glibc's own switch, wins over it.
"""

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


def set_mmap_threshold(threshold: int | None) -> bool:
    """Fix glibc's mmap and trim thresholds at ``threshold`` bytes; True if they were set."""
    if threshold is None or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    libc_path = ctypes.util.find_library("c")
    libc = ctypes.CDLL(libc_path) if libc_path else None
    if libc is None or not hasattr(libc, "mallopt"):  # not glibc (macOS, musl): nothing to tune
        return False
    if not (
        libc.mallopt(M_MMAP_THRESHOLD, int(threshold)) and libc.mallopt(M_TRIM_THRESHOLD, int(threshold))
    ):
        log.warning("malloc_mmap_threshold=%s was refused by glibc; keeping its default", threshold)
        return False
    return True


def enable_huge_pages(enabled: bool | None) -> bool:
    """Ask PyTorch's CPU allocator for transparent huge pages; True if this call turned it on.

    PyTorch reads ``THP_MEM_ALLOC_ENABLE`` once, at its first allocation: call this before torch is
    imported. An explicit ``THP_MEM_ALLOC_ENABLE`` in the environment wins.
    """
    if not enabled or "THP_MEM_ALLOC_ENABLE" in os.environ:
        return False
    if "torch" in sys.modules:
        log.warning("huge_pages=true came after torch was imported; it may not take effect")
    os.environ["THP_MEM_ALLOC_ENABLE"] = "1"
    return True


def skip_triton_on_cpu(enabled: bool | None) -> bool:
    """Keep Triton out of a process that has no accelerator; True if this call did.

    Call after huge pages are set (this imports torch) and before torchvision or Lightning load.
    """
    if not enabled or "triton" in sys.modules:
        return False
    import torch

    if torch.accelerator.is_available():
        return False
    sys.modules["triton"] = None  # `import triton` now raises ImportError: torch's "not installed" path
    # torch's FLOP counter warns once that it cannot count Triton kernels: there are none to count.
    logging.getLogger("torch.utils.flop_counter").addFilter(
        lambda record: not record.getMessage().startswith("triton not found")
    )
    return True
