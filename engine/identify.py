"""From per-prototype reconstruction errors to a class decision, live and per clip.

A class's frame error is the minimum over its prototypes.  Silent frames carry no timbre, so a level gate
keeps them out of both decisions:

- live: an exponential moving average of class errors over active frames, shown as a posterior
  ``softmax(-tau * e)`` with the model's learned temperature;
- clip: the mean class error over all active frames, lowest wins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_GATE_DB = -50.0
DEFAULT_TIME_CONSTANT_S = 0.25


@dataclass(frozen=True)
class Identification:
    """A snapshot of what the engine hears.  ``label`` is ``None`` until a frame passed the level gate."""

    label: str | None
    probabilities: dict[str, float]
    frames_seen: int

    def top(self, n: int = 3) -> list[tuple[str, float]]:
        """The ``n`` most probable classes, most probable first."""
        return sorted(self.probabilities.items(), key=lambda item: -item[1])[:n]


class ClassMap:
    """Which prototypes belong to which class; reduces prototype errors to class errors."""

    def __init__(self, class_names: tuple[str, ...], prototype_classes: tuple[int, ...]) -> None:
        self.class_names = tuple(class_names)
        self.prototype_classes = np.asarray(prototype_classes, dtype=np.int64)
        members = np.zeros((len(class_names), len(prototype_classes)), dtype=bool)
        members[self.prototype_classes, np.arange(len(prototype_classes))] = True
        self._not_member = ~members
        #: Classes with at least one prototype.  A clustering model's majority mapping can leave a class
        #: without any: its error is always infinite, and it can never be the decision.
        self.has_prototypes = members.any(axis=1)

    def class_errors(self, prototype_errors: np.ndarray) -> np.ndarray:
        """``(n, K)`` prototype errors → ``(n, C)`` class errors (min over each class's prototypes)."""
        expanded = np.broadcast_to(prototype_errors[:, None, :], (len(prototype_errors), *self._not_member.shape))
        return np.where(self._not_member, np.inf, expanded).min(axis=-1)


class StreamingIdentifier:
    """Running identification over a stream of frames (chunked or whole: same result)."""

    def __init__(
        self,
        class_map: ClassMap,
        temperature: float,
        frame_rate: float,
        time_constant_s: float = DEFAULT_TIME_CONSTANT_S,
        gate_db: float = DEFAULT_GATE_DB,
    ) -> None:
        if time_constant_s <= 0:
            raise ValueError(f"time_constant_s must be positive, got {time_constant_s}")
        self.class_map = class_map
        self.temperature = float(temperature)
        self.gate_db = float(gate_db)
        self.smoothing = 1.0 - math.exp(-1.0 / (frame_rate * time_constant_s))
        n_classes = len(class_map.class_names)
        self._usable = class_map.has_prototypes
        self._running = np.zeros(n_classes)
        self._total = np.zeros(n_classes)
        self.reset()

    def reset(self) -> None:
        self._running[:] = np.where(self._usable, 0.0, np.inf)
        self._total[:] = self._running
        self.frames_seen = 0

    def update(self, prototype_errors: np.ndarray, levels_db: np.ndarray) -> np.ndarray:
        """Feed ``n`` frames; return the live decision (class index, -1 before any sound) after each."""
        class_errors = self.class_map.class_errors(np.asarray(prototype_errors, dtype=np.float64))[:, self._usable]
        decisions = np.empty(len(class_errors), dtype=np.int64)
        usable = self._usable
        for index, (errors, level) in enumerate(zip(class_errors, levels_db)):
            if level >= self.gate_db and np.isfinite(errors).all():
                if self.frames_seen == 0:
                    self._running[usable] = errors
                else:
                    self._running[usable] += self.smoothing * (errors - self._running[usable])
                self._total[usable] += errors
                self.frames_seen += 1
            decisions[index] = int(np.argmin(self._running)) if self.frames_seen else -1
        return decisions

    def clip_label(self) -> str | None:
        """Clip-level decision so far: lowest mean class error over active frames."""
        if not self.frames_seen:
            return None
        return self.class_map.class_names[int(np.argmin(self._total))]

    def snapshot(self) -> Identification:
        """The live decision with its posterior ``softmax(-tau * running error)``."""
        names = self.class_map.class_names
        if not self.frames_seen:
            uniform = 1.0 / len(names)
            return Identification(None, {name: uniform for name in names}, 0)
        logits = -self.temperature * self._running
        weights = np.exp(logits - logits.max())
        weights /= weights.sum()
        label = names[int(np.argmin(self._running))]
        return Identification(label, dict(zip(names, weights.tolist())), self.frames_seen)
