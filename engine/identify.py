"""From per-prototype reconstruction errors to a class decision, live and per clip.

A class's frame error is the minimum over its prototypes.  Only *sounding* frames carry an instrument's
timbre (:class:`SoundingGate`): frames above an absolute level gate and within ``tail_db`` of the running
peak, so silence, release tails and decays are left out of both decisions:

- clip: the mean class error over the sounding frames, lowest wins;
- live: an exponential moving average of class errors over the sounding frames of the current passage,
  shown as a posterior ``softmax(-tau * e)`` with the model's learned temperature.  The readout does
  not guess (docs/design.md section 6): it names no class (``label`` None, with a ``reason``) in silence and
  tails once ``hold_s`` has passed without a sounding frame, and while the leading class's posterior is
  below ``min_confidence``.  A new passage after such a pause starts from fresh evidence.  Hysteresis
  keeps it from flickering: another class replaces the one shown only after leading for ``switch_s`` and
  only with at least ``switch_ratio`` times its posterior.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

DEFAULT_GATE_DB = -50.0
DEFAULT_TIME_CONSTANT_S = 0.25
DEFAULT_TAIL_DB = 20.0
#: The running peak falls this fast, so a diminuendo (about 15 dB/s in the rendered data) keeps counting
#: while a release tail (40-60 dB/s) drops out of it.
PEAK_RELEASE_DB_PER_S = 10.0
DEFAULT_HOLD_S = 0.3
DEFAULT_SWITCH_S = 0.1
#: A challenger must also reach this many times the shown class's posterior to replace it: near-ties between two
#: similar instruments (viola and cello) then keep the class shown instead of flickering between them.  Chosen
#: on the training libraries' phrases, with the shipped model (``python -m benchmarks.readout``): see README, "The
#: readout through a phrase".
DEFAULT_SWITCH_RATIO = 1.5
DEFAULT_MIN_CONFIDENCE = 0.3
#: A class on show stays on show down to this share of ``min_confidence`` (hysteresis on confidence).
CONFIDENCE_RELEASE = 0.75

#: Why a readout names no class.
NOT_YET = "no sound yet"
SILENCE = "silence"
TAIL = "tail"
UNCERTAIN = "uncertain"


@dataclass(frozen=True)
class Identification:
    """A snapshot of what the engine hears.

    ``label`` is ``None`` when nothing is confident, and ``reason`` then says why (``no sound yet``,
    ``silence``, ``tail`` or ``uncertain``); ``held`` marks a label kept through a short pause in the
    sound.  ``probabilities`` are those of the latest evidence, also while no class is named.
    """

    label: str | None
    probabilities: dict[str, float]
    frames_seen: int
    reason: str = ""
    held: bool = False

    def top(self, n: int = 3) -> list[tuple[str, float]]:
        """The ``n`` most probable classes, most probable first."""
        return sorted(self.probabilities.items(), key=lambda item: -item[1])[:n]


class SoundingGate:
    """Marks the frames that carry timbre: level at least ``gate_db`` and at most ``tail_db`` below the
    running peak (instant attack, falling :data:`PEAK_RELEASE_DB_PER_S`).  Stateful across calls, so a
    stream cut into chunks is gated exactly as the whole clip; ``shape`` gates several streams at once.
    """

    def __init__(self, frame_rate: float, gate_db: float = DEFAULT_GATE_DB, tail_db: float = DEFAULT_TAIL_DB,
                 shape: tuple[int, ...] = ()) -> None:
        if not math.isfinite(gate_db):
            raise ValueError(f"gate_db must be a finite level in dB, got {gate_db}")
        if not tail_db > 0:
            raise ValueError(f"tail_db must be positive, got {tail_db}")
        self.gate_db = float(gate_db)
        self.tail_db = float(tail_db)
        self.release_db = PEAK_RELEASE_DB_PER_S / frame_rate
        self.shape = shape
        self.reset()
        _gate(np.zeros((1, 1)), np.zeros(1), 0.0, 0.0, 1.0, np.empty((1, 1), dtype=bool))  # compile now

    def reset(self) -> None:
        self._peak = np.full(math.prod(self.shape), -np.inf)  # one per stream, flat

    def __call__(self, levels_db: np.ndarray) -> np.ndarray:
        """``(*shape, n)`` frame levels → ``(*shape, n)`` booleans."""
        levels_db = np.asarray(levels_db, dtype=np.float64)
        sounding = np.empty(levels_db.shape, dtype=bool)
        streams = (len(self._peak), levels_db.shape[-1])
        _gate(np.ascontiguousarray(levels_db).reshape(streams), self._peak, self.release_db, self.gate_db,
              self.tail_db, sounding.reshape(streams))
        return sounding


@njit(cache=True)
def _gate(levels_db: np.ndarray, peak: np.ndarray, release_db: float, gate_db: float, tail_db: float,
          sounding: np.ndarray) -> None:
    """:class:`SoundingGate` on ``(streams, n)`` levels, each stream's running ``peak`` updated in place."""
    for stream in range(levels_db.shape[0]):
        for t in range(levels_db.shape[1]):
            level = levels_db[stream, t]
            peak[stream] = max(level, peak[stream] - release_db)
            sounding[stream, t] = level >= gate_db and level >= peak[stream] - tail_db


@njit(cache=True)
def _class_minima(errors: np.ndarray, order: np.ndarray, starts: np.ndarray, out: np.ndarray) -> None:
    """``out[t, c]``: the lowest of ``errors[t, order[starts[c]:starts[c + 1]]]`` (inf for a class without
    prototypes, NaN where one of its prototypes' errors is NaN)."""
    for t in range(errors.shape[0]):
        for c in range(len(starts) - 1):
            lowest = np.inf
            for i in range(starts[c], starts[c + 1]):
                error = errors[t, order[i]]
                if math.isnan(error):
                    lowest = error
                    break
                lowest = min(lowest, error)
            out[t, c] = lowest


@njit(cache=True)
def _posterior(running: np.ndarray, temperature: float, out: np.ndarray) -> int:
    """``out``: ``softmax(-temperature * running)``, anchored at the lowest running error (an infinite one, a
    class without prototypes, gets 0); returns that class, the leader."""
    leader = int(np.argmin(running))
    total = 0.0
    for index in range(len(running)):
        out[index] = math.exp(-temperature * (running[index] - running[leader]))
        total += out[index]
    for index in range(len(running)):
        out[index] /= total
    return leader


class ClassMap:
    """Which prototypes belong to which class; reduces prototype errors to class errors."""

    def __init__(self, class_names: tuple[str, ...], prototype_classes: tuple[int, ...]) -> None:
        self.class_names = tuple(class_names)
        self.prototype_classes = np.asarray(prototype_classes, dtype=np.int64)
        self._order = np.argsort(self.prototype_classes, kind="stable")  # each class's prototypes together
        self._starts = np.searchsorted(self.prototype_classes[self._order], np.arange(len(class_names) + 1))
        #: Classes with at least one prototype.  A clustering model's majority mapping can leave a class
        #: without any: its error is always infinite, and it can never be the decision.
        self.has_prototypes = np.diff(self._starts) > 0
        self.class_errors(np.zeros((1, len(self.prototype_classes))))  # compile now, not in an audio callback

    def class_errors(self, prototype_errors: np.ndarray) -> np.ndarray:
        """``(n, K)`` prototype errors → ``(n, C)`` class errors (min over each class's prototypes)."""
        errors = np.ascontiguousarray(prototype_errors, dtype=np.float64)
        out = np.empty((len(errors), len(self.class_names)))
        _class_minima(errors, self._order, self._starts, out)
        return out


class StreamingIdentifier:
    """Running identification over a stream of frames (chunked or whole: same result)."""

    def __init__(
        self,
        class_map: ClassMap,
        temperature: float,
        frame_rate: float,
        time_constant_s: float = DEFAULT_TIME_CONSTANT_S,
        gate_db: float = DEFAULT_GATE_DB,
        tail_db: float = DEFAULT_TAIL_DB,
        hold_s: float = DEFAULT_HOLD_S,
        switch_s: float = DEFAULT_SWITCH_S,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        switch_ratio: float = DEFAULT_SWITCH_RATIO,
    ) -> None:
        if time_constant_s <= 0:
            raise ValueError(f"time_constant_s must be positive, got {time_constant_s}")
        if hold_s < 0 or switch_s < 0:
            raise ValueError(f"hold_s and switch_s must be >= 0, got {hold_s} and {switch_s}")
        if not 0.0 <= min_confidence < 1.0:
            raise ValueError(f"min_confidence must be at least 0 and below 1, got {min_confidence}")
        if not switch_ratio >= 1.0:
            raise ValueError(f"switch_ratio must be at least 1, got {switch_ratio}")
        self.class_map = class_map
        self.temperature = float(temperature)
        self.gate = SoundingGate(frame_rate, gate_db, tail_db)
        self.smoothing = 1.0 - math.exp(-1.0 / (frame_rate * time_constant_s))
        self.hold_frames = max(1, round(hold_s * frame_rate))
        self.switch_frames = round(switch_s * frame_rate)
        self.min_confidence = float(min_confidence)
        self.switch_ratio = float(switch_ratio)
        n_classes = len(class_map.class_names)
        # the classes with prototypes; all of them (a plain slice, no copies per frame) in a supervised model
        self._usable: slice | np.ndarray = (slice(None) if class_map.has_prototypes.all()
                                            else class_map.has_prototypes)
        self._running = np.zeros(n_classes)
        self._total = np.zeros(n_classes)
        self._probabilities = np.zeros(n_classes)  # the posterior of the latest frame heard
        _posterior(self._running, self.temperature, self._probabilities)  # compile now, not in an audio callback
        self.reset()

    @property
    def gate_db(self) -> float:
        return self.gate.gate_db

    def reset(self) -> None:
        self.gate.reset()
        self._running[:] = np.where(self.class_map.has_prototypes, 0.0, np.inf)
        self._total[:] = self._running
        self.frames_seen = 0
        self._quiet_frames = 0
        self._fresh = True  # the next sounding frame starts new evidence
        self._shown = -1
        self._reason = NOT_YET
        self._challenger, self._challenger_frames = -1, 0

    def update(self, prototype_errors: np.ndarray, levels_db: np.ndarray) -> np.ndarray:
        """Feed ``n`` frames; return the readout after each: a class index, or -1 while none is named."""
        class_errors = self.class_map.class_errors(prototype_errors)[:, self._usable]
        sounding = self.gate(levels_db)
        decisions = np.empty(len(class_errors), dtype=np.int64)
        for index, (errors, level) in enumerate(zip(class_errors, levels_db, strict=True)):
            if sounding[index] and np.isfinite(errors).all():
                self._hear(errors)
            else:
                self._pause(level)
            decisions[index] = self._shown
        return decisions

    def _hear(self, errors: np.ndarray) -> None:
        usable = self._usable
        if self._fresh:
            self._running[usable] = errors
            self._fresh = False
        else:
            self._running[usable] += self.smoothing * (errors - self._running[usable])
        self._total[usable] += errors
        self.frames_seen += 1
        self._quiet_frames = 0
        leader = _posterior(self._running, self.temperature, self._probabilities)
        needed = self.min_confidence * (CONFIDENCE_RELEASE if self._shown >= 0 else 1.0)
        if self._probabilities[leader] < needed:
            self._shown, self._reason = -1, UNCERTAIN
            self._challenger, self._challenger_frames = -1, 0
        elif self._shown < 0 or leader == self._shown:
            self._shown, self._reason = leader, ""
            self._challenger, self._challenger_frames = -1, 0
        else:
            self._challenger_frames = self._challenger_frames + 1 if leader == self._challenger else 1
            self._challenger = leader
            posteriors = self._probabilities
            if (self._challenger_frames > self.switch_frames
                    and posteriors[leader] >= self.switch_ratio * posteriors[self._shown]):
                self._shown = leader
                self._challenger, self._challenger_frames = -1, 0

    def _pause(self, level_db: float) -> None:
        self._quiet_frames += 1
        if self._quiet_frames >= self.hold_frames and self.frames_seen:
            self._shown, self._fresh = -1, True
            self._reason = SILENCE if level_db < self.gate_db else TAIL

    def clip_label(self) -> str | None:
        """Clip-level decision so far: lowest mean class error over the sounding frames."""
        if not self.frames_seen:
            return None
        return self.class_map.class_names[int(np.argmin(self._total))]

    def snapshot(self) -> Identification:
        """The readout with the posterior ``softmax(-tau * running error)`` of the latest evidence."""
        names = self.class_map.class_names
        if not self.frames_seen:
            uniform = 1.0 / len(names)
            return Identification(None, dict.fromkeys(names, uniform), 0, NOT_YET)
        label = names[self._shown] if self._shown >= 0 else None
        held = label is not None and self._quiet_frames > 0
        return Identification(label, dict(zip(names, self._probabilities.tolist(), strict=True)), self.frames_seen,
                              "" if label is not None else self._reason, held)
