"""A witness of the machine's own stalls, to tell an xrun the engine caused from one the machine caused.

On a shared virtual machine the whole machine stops now and then for 5-30 ms.  Measured on this
project's CI kind (2 vCPUs): a bare ``jackd`` (dummy backend, real time) with one pass-through client
xruns about every 4 s, and every one of those xruns came 0-3 ms after a stop that sleepers on *both*
CPUs saw at the same moment.  JACK cannot tell such an xrun from one a slow client caused.

The witness can.  It runs one sleeper per CPU, pinned there, at the highest real-time priority
(SCHED_FIFO 99, above jackd and every audio thread).  Nothing this project runs can delay such a
sleeper, so a wake-up that comes late is the machine's doing (the hypervisor, the kernel).  An xrun
is *explained* when the machine lost a good part of a period to such stalls just before it
(:func:`unexplained_xruns`).  The JACK tests use it to keep their claim ("the stream causes no xrun")
while reporting the machine's interruptions, loudly, for what they are.

Needs permission for real-time scheduling (root, or an rtprio limit); without it the witness sees
nothing (``available`` is False), and every xrun counts as unexplained.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from benchmarks.jackrig.server import realtime_permitted

#: The sleepers' nap.  Measured on the CI kind over 20 s runs of a bare jackd: 0.5 ms naps disturb the
#: machine (10 xruns without the witness, 40 with it); 2 ms naps do not (3-5, against 10-13 without).
SLEEP_S = 0.002
WITNESS_PRIORITY = 99  # SCHED_FIFO's highest: nothing else on the machine outranks the sleepers
#: How long after a stall the xrun it caused may be reported, in periods: the server notices at the end
#: of the late cycle; PortAudio flags its callback one or two periods after that (measured: 0-3 ms
#: for the server's own notification at 5.3 ms periods).
REPORT_DELAY_PERIODS = 6
#: The share of a period the machine must have lost for an xrun to be its doing (see unexplained_xruns).
LOST_PERIOD_FRACTION = 0.25


@dataclass(frozen=True)
class Stall:
    """A stretch of ``time.monotonic()`` during which a sleeper at top priority could not run: from when
    it should have woken to when it did."""

    start_s: float
    end_s: float

    @property
    def length_s(self) -> float:
        return self.end_s - self.start_s


class StallWitness:
    """Sleepers on every CPU, recording late wake-ups from ``start()`` (or ``with``) until ``stop()``.

    ``late_after_s``: a wake-up later than the nap plus this is recorded as a stall.
    """

    def __init__(self, late_after_s: float = 0.001) -> None:
        self.late_after_s = late_after_s
        self.available = realtime_permitted(WITNESS_PRIORITY)
        self.stalls: list[Stall] = []
        self._sleepers: list[subprocess.Popen] = []

    def start(self) -> Self:
        if self.available:
            self._sleepers = [
                subprocess.Popen([sys.executable, "-m", __name__, str(cpu), str(self.late_after_s), str(SLEEP_S)],
                                 stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
                for cpu in sorted(os.sched_getaffinity(0))
            ]
            for sleeper in self._sleepers:  # watching starts when every sleeper says so, not at its launch
                sleeper.stdout.readline()
        return self

    def stop(self) -> list[Stall]:
        """End the sleepers and collect their stalls, every CPU's, sorted by start; idempotent."""
        sleepers, self._sleepers = self._sleepers, []
        found: list[Stall] = []
        for sleeper in sleepers:
            sleeper.send_signal(signal.SIGTERM)
        for sleeper in sleepers:
            out, _ = sleeper.communicate(timeout=10)
            found += [Stall(start, end) for start, end in json.loads(out or b"[]")]
        self.stalls = sorted(self.stalls + found, key=lambda s: s.start_s)
        return self.stalls

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


def unexplained_xruns(xrun_clock_s: list[float] | tuple[float, ...], stalls: list[Stall],
                      period_s: float) -> list[float]:
    """The xrun times (``time.monotonic()``) that no stall of the machine explains.

    An xrun is explained when the machine lost at least ``LOST_PERIOD_FRACTION`` of a period to stalls
    in the ``REPORT_DELAY_PERIODS`` periods before it.  Counting lost time rather than single stalls
    matters when the machine is slow rather than stopped: measured on the CI kind, runs of 2-4 ms
    stalls a few tens of milliseconds apart, during which an engine that needs 40 % of its period
    xruns, although no single stall was long enough.  An engine that is itself too slow still fails:
    its xruns come every few periods, the machine's stalls do not.
    """
    window_s = REPORT_DELAY_PERIODS * period_s
    needed_s = LOST_PERIOD_FRACTION * period_s

    merged = _union(stalls)  # a stop of the whole machine shows on every CPU's sleeper: count it once

    return [t for t in xrun_clock_s if _lost_s(merged, t - window_s, t) < needed_s]


def lost_share(stalls: list[Stall], start_s: float, end_s: float) -> float:
    """The share of ``start_s``..``end_s`` that the machine lost to ``stalls`` (each CPU's counted once)."""
    return _lost_s(_union(stalls), start_s, end_s) / (end_s - start_s)


#: A machine is calm again when a watched window lost less than this share of its time to stalls (a bare
#: jackd at 5.3 ms periods xruns about every 4 s on the CI kind at its usual 0.1-0.3 %).
CALM_SHARE = 0.01


def wait_for_calm(window_s: float = 2.0, deadline_s: float = 60.0) -> float:
    """Watch the machine ``window_s`` at a time until a window in which it lost less than :data:`CALM_SHARE`
    of its time to stalls, or until ``deadline_s`` has passed; returns how long it watched.

    A shared machine stops in bursts (a clean-clone CI run once saw 20-50 JACK xruns in each of four
    4-second attempts in a row, and the same tests passed a minute later): another attempt right away
    meets the same burst.  Without real-time permission the witness sees nothing and this returns at once.
    """
    started = time.monotonic()
    while True:
        witness = StallWitness()
        if not witness.available:
            return 0.0
        with witness:
            opened = time.monotonic()
            time.sleep(window_s)  # the window being watched
            closed = time.monotonic()
        if lost_share(witness.stalls, opened, closed) < CALM_SHARE or closed - started >= deadline_s:
            return closed - started


def _lost_s(merged: list[Stall], start_s: float, end_s: float) -> float:
    """Seconds of ``start_s``..``end_s`` inside the (non-overlapping) ``merged`` stalls."""
    return sum(max(0.0, min(s.end_s, end_s) - max(s.start_s, start_s)) for s in merged)


def _union(stalls: list[Stall]) -> list[Stall]:
    merged: list[Stall] = []
    for stall in sorted(stalls, key=lambda s: s.start_s):
        if merged and stall.start_s <= merged[-1].end_s:
            merged[-1] = Stall(merged[-1].start_s, max(merged[-1].end_s, stall.end_s))
        else:
            merged.append(stall)
    return merged


def _watch(cpu: int, late_after_s: float, nap_s: float) -> None:
    """One sleeper: pinned to ``cpu`` at top priority, napping until SIGTERM, then printing its stalls
    as JSON pairs of monotonic times."""
    os.sched_setaffinity(0, {cpu})
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(WITNESS_PRIORITY))
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    stalls: list[tuple[float, float]] = []
    print("watching", flush=True)
    before = time.monotonic()
    while not stopping:
        time.sleep(nap_s)
        now = time.monotonic()
        if now - before > nap_s + late_after_s:
            stalls.append((before + nap_s, now))
        before = now
    print(json.dumps(stalls), flush=True)


if __name__ == "__main__":
    _watch(int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]))
