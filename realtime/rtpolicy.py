"""Keep everything the audio callback waits for on the callback's own thread while audio runs.

Under JACK with real-time scheduling the callback thread runs at SCHED_FIFO, so other programs cannot
delay it, but two things inside this process still can:

* thread pools: torch and BLAS split work across helper threads of ordinary priority, which wait behind
  any other load on the machine (measured: 5-13 ms stalls of a 5 ms block on a loaded 2-core box);
* the GIL: a busy Python thread hands it over only every ``sys.getswitchinterval()`` (5 ms by default,
  a whole 256-sample block at 48 kHz), and the callback needs it to run at all.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import threadpool_limits

#: GIL hand-over interval while audio runs; short enough to cost the callback a few percent of a block.
GIL_SWITCH_S = 0.0002


@contextmanager
def audio_thread_policy() -> Iterator[None]:
    """Single-threaded torch (where a model runs its TorchScript: torch is not imported otherwise) and BLAS, and a
    short GIL switch interval; restored on exit."""
    torch = sys.modules.get("torch")
    threads, switch = torch.get_num_threads() if torch else 0, sys.getswitchinterval()
    if torch:
        torch.set_num_threads(1)
    sys.setswitchinterval(GIL_SWITCH_S)
    try:
        with threadpool_limits(1):
            yield
    finally:
        if torch:
            torch.set_num_threads(threads)
        sys.setswitchinterval(switch)
