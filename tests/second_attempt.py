"""One loud second attempt for tests that depend on the machine behaving, not only on the code.

The CI machines are shared.  A stall of a few milliseconds of the whole VM makes the JACK server xrun
for every client, however little the engine does (CI once saw one xrun with the engine's callback at
0.1 ms of a 5.3 ms period), and a process can die from a signal that none of its code sent.  A test
whose claim is "a clean run is possible" (no xruns over 20 s, DDP trains) therefore gets a second
attempt when the first one was disturbed.  The disturbance is never hidden: it is emitted as a
warning, so pytest's summary and the CI log carry it.  A second disturbed attempt is judged like any
other result, so a defect that disturbs every run still fails.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TypeVar

Result = TypeVar("Result")


def retry_once_if_disturbed(attempt: Callable[[], Result], disturbance: Callable[[Result], str | None]) -> Result:
    """Run ``attempt``; when ``disturbance(result)`` names a disturbance, warn with it and run once more.

    Returns the last attempt's result; the caller asserts on it as usual.
    """
    result = attempt()
    reason = disturbance(result)
    if reason:
        warnings.warn(f"first attempt disturbed, retrying once: {reason}", stacklevel=2)
        result = attempt()
    return result
