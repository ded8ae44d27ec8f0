"""Give large freed buffers straight back to the OS, so peak memory does not creep up step by step.

glibc's malloc serves a request above its mmap threshold with ``mmap`` and unmaps it on ``free``;
smaller ones come from the heap, which only shrinks from its top. The threshold starts at 128 KiB
but rises to the size of every large block freed (up to 32 MiB on 64-bit), so after the first
training step most activations (5-50 MB each at batch 128) are carved from the heap, which
fragments: the resident size between steps grew 831 -> 1117 MB over four steps of
``scripts/benchmark.py``. A fixed threshold (``mallopt(M_MMAP_THRESHOLD)``, which also turns the
adaptation off) keeps it flat; the cost, fresh zeroed pages for each large tensor, did not show in
the benchmark's step time.

Set with the top-level config key ``malloc_mmap_threshold`` (bytes; ``null`` keeps glibc's own
policy). A ``MALLOC_MMAP_THRESHOLD_`` environment variable, glibc's own switch, wins over it.
"""

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's malloc.h


def set_mmap_threshold(threshold: int | None) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes; True if it was set."""
    if threshold is None or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    libc_path = ctypes.util.find_library("c")
    libc = ctypes.CDLL(libc_path) if libc_path else None
    if libc is None or not hasattr(libc, "mallopt"):  # not glibc (macOS, musl): nothing to tune
        return False
    if not libc.mallopt(M_MMAP_THRESHOLD, int(threshold)):
        log.warning("malloc_mmap_threshold=%s was refused by glibc; keeping its default", threshold)
        return False
    return True
