"""A sample FIFO that keeps its timeline: the glue between frame-rate processing and host blocks."""

from __future__ import annotations

import numpy as np


class SampleFifo:
    """First-in first-out samples in a preallocated ring, with a fixed starting delay.

    Reading more than is available returns zeros for the missing part and remembers the shortfall; the
    same number of samples is dropped from the next writes, so every later sample still comes out exactly
    ``prefill`` samples after it went in (a glitch, never a drift).  Shortfalls are counted.
    """

    def __init__(self, capacity: int, prefill: int = 0) -> None:
        self._ring = np.zeros(max(capacity, prefill + 1), dtype=np.float32)
        self._prefill = prefill
        self.underrun_samples = 0
        self.reset()

    def reset(self) -> None:
        self._ring[:] = 0.0
        self._read = 0
        self._write = self._prefill
        self._debt = 0

    @property
    def available(self) -> int:
        return self._write - self._read

    def write(self, samples: np.ndarray) -> None:
        dropped = min(self._debt, len(samples))
        self._debt -= dropped
        samples = samples[dropped:]
        if self.available + len(samples) > len(self._ring):
            self._grow(self.available + len(samples))
        self._copy_in(samples)

    def read(self, n: int) -> np.ndarray:
        out = np.zeros(n, dtype=np.float32)
        take = min(n, self.available)
        size = len(self._ring)
        start = self._read % size
        first = min(take, size - start)
        out[:first] = self._ring[start : start + first]
        out[first:take] = self._ring[: take - first]
        self._read += take
        if take < n:
            self._debt += n - take
            self.underrun_samples += n - take
        return out

    def _copy_in(self, samples: np.ndarray) -> None:
        size = len(self._ring)
        start = self._write % size
        first = min(len(samples), size - start)
        self._ring[start : start + first] = samples[:first]
        self._ring[: len(samples) - first] = samples[first:]
        self._write += len(samples)

    def _grow(self, needed: int) -> None:
        """Rare: a block larger than planned.  Re-lay the ring in order, twice as large as needed."""
        pending = self.read(self.available)
        self._ring = np.zeros(2 * needed, dtype=np.float32)
        self._read = 0
        self._write = 0
        self._copy_in(pending)
