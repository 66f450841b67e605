"""What the performer sees, measured where the audio is: block cost, levels, identification per second.

:class:`MeteredProcessor` wraps the engine so that live mode (inside the audio callback) and file mode
(in a plain loop) measure exactly the same thing.  Inside ``process`` it only does arithmetic on
preallocated storage and plain attributes; the main thread reads those values, so the callback never
waits on a reader.  A reader may miss one block's update to a peak (benign for a meter).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from engine.identify import Identification
from engine.processor import Processor

Entry = TypeVar("Entry")

SILENCE_DB = -120.0
WARM_UP_S = 0.5


def to_db(peak: float) -> float:
    """Peak amplitude → dB full scale, floored at :data:`SILENCE_DB`."""
    return 20.0 * math.log10(peak) if peak > 10.0 ** (SILENCE_DB / 20.0) else SILENCE_DB


@dataclass(frozen=True)
class Levels:
    """Peak levels and DSP load since the previous reading."""

    input_db: float
    output_db: float
    dsp_load: float  # processing time / audio time; above 1.0 the engine cannot keep up


def timing_summary(seconds: np.ndarray, block_s: float) -> dict[str, float]:
    """p50/p99/max processing time per block (ms) and the same as a fraction of the block's duration."""
    if seconds.size == 0:
        return {"p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "load_p50": 0.0, "load_p99": 0.0, "load_max": 0.0}
    p50, p99, peak = (float(v) for v in (*np.percentile(seconds, [50, 99]), seconds.max()))
    return {
        "p50_ms": 1e3 * p50, "p99_ms": 1e3 * p99, "max_ms": 1e3 * peak,
        "load_p50": p50 / block_s, "load_p99": p99 / block_s, "load_max": peak / block_s,
    }


class MeteredProcessor:
    """The engine's ``prepare``/``process``, plus per-block time, peak levels and an output tap.

    ``on_output(block)`` (optional) sees every output block; in live mode it must be real-time safe
    (e.g. :meth:`realtime.recorder.Recorder.push`).  Timing keeps the last ``capacity`` blocks.
    """

    def __init__(self, processor: Processor, capacity: int = 1 << 16,
                 on_output: Callable[[np.ndarray], None] | None = None) -> None:
        self.processor = processor
        self.on_output = on_output
        self.block_s = 0.0
        self.blocks = 0
        self.deadline_misses = 0
        self._times = np.zeros(capacity, dtype=np.float64)
        self._input_peak = self._output_peak = self._busy_s = self._audio_s = 0.0

    def prepare(self, sample_rate: int, block_size: int) -> None:
        """Prepare the engine, then warm it up and reset it, before any deadline counts.

        The first blocks with sound are slow (measured: ~40 ms for a 5 ms block): TorchScript optimises
        its graph during the first calls and the renderer allocates on first use.  Paid here, before the
        stream opens, instead of as xruns at the performer's first note.
        """
        self.processor.prepare(sample_rate, block_size)
        noise = np.random.default_rng(0).normal(0.0, 0.1, int(WARM_UP_S * sample_rate)).astype(np.float32)
        self.processor.process(noise)
        self.processor.reset()
        self.block_s = block_size / sample_rate
        self.blocks = self.deadline_misses = 0
        self._input_peak = self._output_peak = self._busy_s = self._audio_s = 0.0

    def process(self, block: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        out = self.processor.process(block)
        elapsed = time.perf_counter() - started
        k = self.blocks
        self._times[k % self._times.size] = elapsed
        self.deadline_misses += elapsed > self.block_s
        self._busy_s += elapsed
        self._audio_s += self.block_s
        self._input_peak = max(self._input_peak, float(block.max()), -float(block.min()))
        self._output_peak = max(self._output_peak, float(out.max()), -float(out.min()))
        if self.on_output is not None:
            self.on_output(out)
        self.blocks = k + 1
        return out

    def take_levels(self) -> Levels:
        """Levels and load since the last call (main thread), then start a new interval."""
        audio_s = self._audio_s
        levels = Levels(to_db(self._input_peak), to_db(self._output_peak), self._busy_s / audio_s if audio_s else 0.0)
        self._input_peak = self._output_peak = self._busy_s = self._audio_s = 0.0
        return levels

    def timing(self) -> dict[str, float]:
        """Processing-time distribution over the kept blocks (see :func:`timing_summary`)."""
        return timing_summary(self._times[: min(self.blocks, self._times.size)].copy(), self.block_s)


def identification_record(second: int, snapshot: Identification, top: int = 5) -> dict:
    """One JSON-ready identification entry: label, most probable classes, frames heard."""
    return {
        "second": second,
        "label": snapshot.label,
        "reason": snapshot.reason,
        "probabilities": {name: round(p, 4) for name, p in snapshot.top(top)},
        "active_frames": snapshot.frames_seen,
    }


class PeriodicLog(Generic[Entry]):
    """What ``keep(period number, snapshot)`` makes of the identification each time another ``period`` samples
    of audio have been processed."""

    def __init__(self, period: int, keep: Callable[[int, Identification], Entry]) -> None:
        self.period = period
        self._keep = keep
        self.entries: list[Entry] = []

    def observe(self, samples_done: int, snapshot: Callable[[], Identification]) -> None:
        """One entry per period boundary crossed since the last call (the snapshot taken once)."""
        due = samples_done // self.period
        if due > len(self.entries):
            current = snapshot()
            self.entries += [self._keep(index, current) for index in range(len(self.entries) + 1, due + 1)]


class SecondLog(PeriodicLog[dict]):
    """JSON-ready identification entries (:func:`identification_record`), one per second of audio processed."""

    def __init__(self, sample_rate: int) -> None:
        super().__init__(sample_rate, identification_record)
