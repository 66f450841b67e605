"""A file job's timeline as a picture: what the engine heard, moment by moment, above the sound itself.

The per-second entries of a run's JSON report say what the readout showed once a second; the picture shows
the whole identification at :data:`PERIOD_S`: each class's probability over time (the classes the readout
ever named in colour, the others grey), the readout's decision as a coloured band with the spans where it named
nothing ("nothing confident": silence, tails, doubt) hatched, and the input's waveform (peak per period)
underneath, on one time axis.  Written beside the job's output (``OUT.png``), atomically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from engine.atomic import replacing
from engine.identify import Identification
from realtime.metering import PeriodicLog

#: Seconds of audio between two snapshots of the identification (and two waveform peaks).
PERIOD_S = 0.1
#: A decision span is named in the band when it is at least this long and this share of the whole file (shorter
#: names would not fit the picture; they are in the legend and the colours).
MIN_NAMED_SPAN_S = 0.6
MIN_NAMED_SHARE = 0.01
#: Points drawn per curve at most, about two per pixel of the picture's width: a longer run of periods is drawn as
#: the largest value of each stretch of them (:func:`decimated`), so an hour's picture costs what a minute's does
#: (drawn whole, an hour's 36000 periods per class took 150-290 MB more to render).
MAX_POINTS = 2200
#: Frames of the input file read at a time when its waveform is drawn (constant memory for any length).
READ_FRAMES = 1 << 16


class Timeline(PeriodicLog[tuple[np.ndarray, str | None]]):
    """Every class's probability and the readout's label every :data:`PERIOD_S` of processed audio, for
    :func:`draw_timeline` (a few numbers a period: an hour of audio keeps about 5 MB)."""

    def __init__(self, class_names: tuple[str, ...], sample_rate: int) -> None:
        super().__init__(max(1, round(PERIOD_S * sample_rate)), self._row)
        self.class_names = class_names

    def _row(self, _period: int, snapshot: Identification) -> tuple[np.ndarray, str | None]:
        return np.array([snapshot.probabilities.get(name, 0.0) for name in self.class_names]), snapshot.label

    @property
    def probabilities(self) -> list[np.ndarray]:
        return [row for row, _ in self.entries]

    @property
    def labels(self) -> list[str | None]:
        return [label for _, label in self.entries]


def waveform_peaks(path: Path, period_s: float = PERIOD_S) -> tuple[np.ndarray, float]:
    """The largest absolute sample (all channels) in each period of the file, and the period in seconds as
    read (a whole number of the file's samples), read in chunks."""
    peaks = []
    with sf.SoundFile(str(path)) as file:
        period = max(1, round(period_s * file.samplerate))
        carry = np.zeros(0, dtype=np.float32)
        for chunk in file.blocks(blocksize=READ_FRAMES, dtype="float32", always_2d=True):
            samples = np.concatenate([carry, np.abs(chunk).max(axis=1)])
            whole = len(samples) // period * period
            peaks.append(samples[:whole].reshape(-1, period).max(axis=1))
            carry = samples[whole:]
        if len(carry):
            peaks.append(carry.max(keepdims=True))
        return (np.concatenate(peaks) if peaks else np.zeros(0)), period / file.samplerate


def decimated(times: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most :data:`MAX_POINTS` points along the first axis: each stretch of consecutive ones drawn as its
    largest value (a short peak stays visible) at its mean time."""
    step = -(-len(times) // MAX_POINTS)
    if step <= 1:
        return times, values
    starts = np.arange(0, len(times), step)
    counts = np.diff(np.append(starts, len(times)))
    return np.add.reduceat(times, starts) / counts, np.maximum.reduceat(values, starts, axis=0)


def decision_spans(labels: list[str | None]) -> list[tuple[int, int, str | None]]:
    """Runs of the same decision: ``(first period, end period, label or None)``."""
    spans: list[tuple[int, int, str | None]] = []
    for index, label in enumerate(labels):
        if spans and spans[-1][2] == label:
            spans[-1] = (spans[-1][0], index + 1, label)
        else:
            spans.append((index, index + 1, label))
    return spans


def draw_timeline(timeline: Timeline, input_path: Path, path: Path, title: str) -> Path:
    """The picture (see the module's docstring) as a PNG at ``path``."""
    import matplotlib  # only a file job that writes a picture pays for matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probabilities = np.array(timeline.probabilities).reshape(-1, len(timeline.class_names))
    times, probabilities = decimated((np.arange(len(probabilities)) + 1) * PERIOD_S, probabilities)
    leaders = sorted({timeline.class_names.index(label) for label in timeline.labels if label is not None})
    colours = {index: plt.get_cmap("tab10")(n % 10) for n, index in enumerate(leaders)}
    figure, (top, band, bottom) = plt.subplots(3, 1, sharex=True, figsize=(11, 5.5),
                                               gridspec_kw={"height_ratios": [3, 0.5, 1.5]})
    for index in range(len(timeline.class_names)):
        if index not in colours:
            top.plot(times, probabilities[:, index], color="0.8", linewidth=0.8)
    for index in leaders:
        top.plot(times, probabilities[:, index], color=colours[index], linewidth=1.6,
                 label=timeline.class_names[index])
    top.set_ylim(0.0, 1.0)
    top.set_ylabel("probability")
    top.set_title(title, fontsize=10)
    if leaders:
        top.legend(loc="upper right", fontsize=8, ncol=min(len(leaders), 4))
    spans = decision_spans(timeline.labels)
    ranges: dict[str | None, list[tuple[float, float]]] = {}
    for start, end, label in spans:
        ranges.setdefault(label, []).append((start * PERIOD_S, (end - start) * PERIOD_S))
    for label, bars in ranges.items():  # one collection per label: an hour of short notes stays a few artists
        if label is None:
            band.broken_barh(bars, (0, 1), facecolors="white", edgecolors="0.6", hatch="///")
        else:
            band.broken_barh(bars, (0, 1), facecolors=colours[timeline.class_names.index(label)])
    shortest_named = max(MIN_NAMED_SPAN_S, MIN_NAMED_SHARE * len(timeline.labels) * PERIOD_S)
    for label, bars in ranges.items():
        for left, width in bars:
            if label is not None and width >= shortest_named:
                band.text(left + width / 2, 0.5, label, ha="center", va="center", fontsize=8)
    band.set_yticks([])
    band.set_ylabel("heard", rotation=0, ha="right", va="center")
    peaks, period_s = waveform_peaks(input_path)
    end_s = max(len(timeline.labels) * PERIOD_S, len(peaks) * period_s, PERIOD_S)
    peak_times, peaks = decimated((np.arange(len(peaks)) + 0.5) * period_s, peaks)
    bottom.fill_between(peak_times, -peaks, peaks, color="0.35", linewidth=0)
    bottom.set_ylim(-1.0, 1.0)
    bottom.set_ylabel("input")
    bottom.set_xlabel("time (s); hatched: nothing confident")
    bottom.set_xlim(0.0, end_s)
    figure.tight_layout()
    with replacing(path) as temporary:
        figure.savefig(temporary, dpi=100, format="png")
    plt.close(figure)
    return path
