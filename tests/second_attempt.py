"""One loud second attempt for tests that depend on the machine behaving, not only on the code.

The CI machines are shared.  A stall of a few milliseconds of the whole VM makes the JACK server xrun
for every client, however little the engine does (CI once saw one xrun with the engine's callback at
0.1 ms of a 5.3 ms period), and a process can die from a signal that none of its code sent.  A test
whose claim is "a clean run is possible" (a chirp through the server unharmed, DDP trains) therefore
gets another attempt when one was disturbed.  The disturbance is never hidden: it is emitted as a
warning, so pytest's summary and the CI log carry it.  The last attempt is judged like any other
result, so a defect that disturbs every run still fails.  The machine stops in bursts, so a new attempt
waits until a witness of its stalls sees it calm (:func:`benchmarks.jackrig.stallwitness.wait_for_calm`,
60 s at most).

Where the machine stalls more often than once per attempt (the CI kind did, from late 2026: a bare
jackd xruns every few seconds there), an xrun is checked against a witness of the machine's stalls
instead of counted: :func:`assert_xruns_are_the_machines`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TypeVar

from benchmarks.jackrig.stallwitness import StallWitness, unexplained_xruns, wait_for_calm

Result = TypeVar("Result")


def retry_if_disturbed(attempt: Callable[[], Result], disturbance: Callable[[Result], str | None],
                       attempts: int = 2, settle: Callable[[], float] = wait_for_calm) -> Result:
    """Run ``attempt`` up to ``attempts`` times while ``disturbance(result)`` names a disturbance,
    warning with each one; before each new attempt ``settle()`` waits for the machine to calm down and
    returns how long it waited.

    Returns the last attempt's result; the caller asserts on it as usual.
    """
    for number in range(1, attempts + 1):
        result = attempt()
        reason = disturbance(result)
        if not reason or number == attempts:
            return result
        waited_s = settle()
        warnings.warn(f"attempt {number} of {attempts} disturbed, trying again after {waited_s:.1f} s for the "
                      f"machine to calm down: {reason}", stacklevel=2)
    raise ValueError(f"attempts must be at least 1, got {attempts}")


def assert_xruns_are_the_machines(xrun_clock_s: list[float], witness: StallWitness, period_s: float,
                                  context: str) -> None:
    """Every xrun (``time.monotonic()`` times) came right after a stall of the machine itself.

    A stall that high-priority sleepers on the CPUs saw cannot be the stream's doing (see
    benchmarks/jackrig/stallwitness.py); any other xrun fails the test.  Accepted xruns are reported in a warning
    that carries them, so the CI log shows every one.
    """
    unexplained = unexplained_xruns(xrun_clock_s, witness.stalls, period_s)
    stalls = [(round(s.start_s, 3), round(1e3 * s.length_s, 1)) for s in witness.stalls]
    assert not unexplained, (f"{len(unexplained)} of {len(xrun_clock_s)} xruns at {[round(t, 3) for t in unexplained]} "
                             f"with no stall of the machine to explain them; stalls (start s, ms): {stalls}; "
                             f"witness available: {witness.available}\n{context}")
    if xrun_clock_s:
        warnings.warn(f"{len(xrun_clock_s)} xruns, each right after a stall of the machine (start s, ms: "
                      f"{stalls}); accepted\n{context}", stacklevel=2)
