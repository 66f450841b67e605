"""A low-delay pitch shifter for the filter route: two read heads sweeping a short delay line.

The filter route (:mod:`engine.filterroute`) keeps every analysis window off the audio path, so an STFT
transposition (the input carrier's) would bring the window back.  The oldest harmonizer design needs none:
a read head that moves through a delay line at ``ratio`` times the write speed plays everything ``ratio``
times higher.  It must jump back (or forward) by ``window`` once the delay runs out; two heads half a window
apart, each faded by ``sin^2`` of its place in the sweep, hide the jumps: each jumps while silent, and the two
fades sum to one.  The heads' delay sweeps ``MIN_DELAY .. MIN_DELAY + window``, so the shifted sound comes
on average ``MIN_DELAY + window / 2`` samples late; the window trades that delay against roughness (a sweep
shorter than two periods of the note splices inside a period).  Every state is per sample, so the output
does not depend on the host's block size.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: The delay line's sweep in seconds: two periods of a cello's low C (65 Hz), about 15 ms of mean delay.
WINDOW_S = 0.03
#: How far a head may land short of the sweep's far end so that it starts in step with the other head
#: (the longest period it aligns), and how much of the past the alignment compares.
SEARCH_S = 0.0075
COMPARE_S = 0.005
#: The shortest delay a head reads at (linear interpolation needs the sample after it written).
MIN_DELAY = 1.0


@njit(cache=True)
def _read(line: np.ndarray, position: float) -> float:
    """``line`` at a fractional ``position`` (linear interpolation, indices wrapped)."""
    mask = len(line) - 1
    below = math.floor(position)
    fraction = position - below
    first = line[int(below) & mask]
    return first + fraction * (line[(int(below) + 1) & mask] - first)


@njit(cache=True)
def _restart_delay(line: np.ndarray, write: int, other: float, far: float, towards: float, search: int,
                   compare: int) -> float:
    """Where a head that ran out of delay starts again: at ``far`` (the other end of the sweep) moved up to
    ``search`` samples ``towards`` the middle, at the offset whose past ``compare`` samples best match those
    behind the ``other`` head, so the two heads play in phase while they crossfade."""
    mask = len(line) - 1
    best, best_score = far, -np.inf
    for offset in range(search):
        candidate = far + towards * offset
        score = 0.0
        energy = 1e-12
        for k in range(compare):
            a = line[int(write - candidate - k) & mask]
            score += a * line[int(write - other - k) & mask]
            energy += a * a
        score /= math.sqrt(energy)
        if score > best_score:
            best, best_score = candidate, score
    return best


@njit(cache=True)
def _shift(block: np.ndarray, out: np.ndarray, line: np.ndarray, heads: np.ndarray, state: np.ndarray,
           ratio: float, window: float, search: int, compare: int, shifting: bool) -> None:
    """``out`` = ``block`` shifted by ``ratio`` (only the delay line is filled unless ``shifting``).  ``line``
    (a power of two long), ``heads`` (per head: delay, and the span ``lo .. hi`` of its current sweep) and
    ``state`` (the write index) carry over between blocks."""
    mask = len(line) - 1
    write = int(state[0])
    far_low, far_high = MIN_DELAY, MIN_DELAY + window
    for i in range(len(block)):
        line[write] = block[i]
        write = (write + 1) & mask
        if not shifting:
            continue
        total = 0.0
        weights = 0.0
        for head in range(2):
            delay, lo, hi = heads[head, 0], heads[head, 1], heads[head, 2]
            weight = math.sin(math.pi * (delay - lo) / (hi - lo)) ** 2
            total += weight * _read(line, write - 1 - delay)
            weights += weight
        out[i] = total / weights if weights > 1e-3 else 0.0
        for head in range(2):
            delay = heads[head, 0] + 1.0 - ratio
            if heads[head, 1] <= delay <= heads[head, 2]:
                heads[head, 0] = delay
                continue
            other = heads[1 - head, 0]
            if ratio > 1.0:  # the delay shrank to nothing: start again from the longest
                delay = _restart_delay(line, write, other, far_high, -1.0, search, compare)
                heads[head, 0], heads[head, 1], heads[head, 2] = delay, far_low, delay
            else:
                delay = _restart_delay(line, write, other, far_low, 1.0, search, compare)
                heads[head, 0], heads[head, 1], heads[head, 2] = delay, delay, far_high
    state[0] = write


class DelayLineShifter:
    """Audio blocks shifted by ``semitones`` (0 passes them through untouched, with no delay)."""

    def __init__(self, sample_rate: int, window_s: float = WINDOW_S) -> None:
        self.window = window_s * sample_rate
        self._search = round(SEARCH_S * sample_rate)
        self._compare = round(COMPARE_S * sample_rate)
        self._line = np.zeros(1 << math.ceil(math.log2(self.window + MIN_DELAY + self._compare + 2)))
        self._heads = np.zeros((2, 3))
        self._state = np.zeros(1)
        self.semitones = 0.0
        self.process(np.zeros(1))  # compile (or load the cache) now, not in the first audio callback
        self.reset()

    @property
    def mean_delay_samples(self) -> float:
        """How late the shifted sound comes on average (0 when not shifting)."""
        return MIN_DELAY + self.window / 2.0 if self.semitones else 0.0

    def reset(self) -> None:
        self._line[:] = 0.0
        self._state[:] = 0.0
        low, high = MIN_DELAY, MIN_DELAY + self.window
        # one head in the sweep's middle (full weight), the other silent at its end, from where it starts in
        # step with the first
        self._heads[:] = [[low + 0.5 * self.window, low, high], [high, low, high]]

    def process(self, block: np.ndarray) -> np.ndarray:
        """``block`` (float64) shifted; the delay line keeps filling while not shifting, so a shift switched on
        mid-stream starts from the sound before it."""
        out = np.empty(len(block)) if self.semitones else block
        _shift(block, out, self._line, self._heads, self._state, 2.0 ** (self.semitones / 12.0), self.window,
               self._search, self._compare, bool(self.semitones))
        return out
