"""Scoring a prototype model on labelled clips the way the engine decides: clip-level and streaming.

The decisions come from the engine's own :class:`engine.identify.StreamingIdentifier` fed with the batch
model's errors, so the accuracy reported here is the accuracy of what a live user sees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from engine.frontend import frame_level_db
from engine.identify import DEFAULT_MIN_CONFIDENCE, ClassMap, StreamingIdentifier
from engine.modelfile import LoadedModel

STREAMING_CHECKPOINTS_S = (0.25, 1.0)


@dataclass(frozen=True)
class ClipReadout:
    """What the engine decides on one clip: the live readout after each frame (class index, -1 while it names
    nothing), the clip decision (None without a sounding frame) and each frame's level (dB)."""

    live: np.ndarray
    clip: str | None
    levels_db: np.ndarray


class ClipReader:
    """Runs a model's batch forward on whole clips and feeds the errors to the engine's own
    :class:`engine.identify.StreamingIdentifier`, built afresh per clip with the given readout settings."""

    def __init__(self, model: LoadedModel, gate_db: float, **readout: float) -> None:
        self.model = model
        metadata = model.metadata
        self.analysis = metadata.analysis
        self.class_map = ClassMap(metadata.class_names, metadata.prototype_classes)
        with torch.no_grad():
            self.temperature = float(model.module.temperature())
        self.gate_db = gate_db
        self.readout = readout

    def errors(self, clip: np.ndarray) -> np.ndarray:
        """Every prototype's error at every frame of ``clip (T, n_mels)``: ``(T, K)``."""
        with torch.no_grad():
            _, errors = self.model.module(torch.from_numpy(clip).to(self.model.device)[None])
        return errors[0].cpu().numpy()

    def read(self, clip: np.ndarray, errors: np.ndarray | None = None, **readout: float) -> ClipReadout:
        """The readout of ``clip`` (its ``errors`` when already computed); ``readout`` overrides settings."""
        levels = frame_level_db(clip, self.analysis)
        identifier = StreamingIdentifier(self.class_map, self.temperature, self.analysis.frame_rate,
                                         gate_db=self.gate_db, **(self.readout | readout))
        live = identifier.update(self.errors(clip) if errors is None else errors, levels)
        return ClipReadout(live, identifier.clip_label(), levels)


def clip_decisions(model: LoadedModel, clips: list[np.ndarray], gate_db: float,
                   min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> dict[str, np.ndarray]:
    """Per clip: the clip decision and the live decision after 0.25 s and 1 s of sound (class indices).

    A clip with no frame above the gate gets -1 (counted as wrong).  A clip shorter than a checkpoint is
    scored with its last live decision.  ``min_confidence`` is the readout's (the clip decision has none).
    """
    reader = ClipReader(model, gate_db, min_confidence=min_confidence)
    checkpoints = {f"after_{s:g}s": math.ceil(s * reader.analysis.frame_rate) for s in STREAMING_CHECKPOINTS_S}
    results: dict[str, list[int]] = {"clip": [], **{name: [] for name in checkpoints}}
    names = {name: index for index, name in enumerate(model.metadata.class_names)}
    for clip in clips:
        readout = reader.read(clip)
        results["clip"].append(-1 if readout.clip is None else names[readout.clip])
        for name, frames in checkpoints.items():
            results[name].append(live_after(readout, frames, gate_db))
    return {name: np.asarray(values) for name, values in results.items()}


def live_after(readout: ClipReadout, frames: int, gate_db: float) -> int:
    """The live readout once ``frames`` frames above ``gate_db`` have been heard (its last, in a shorter clip)."""
    active = np.cumsum(readout.levels_db >= gate_db)
    reached = np.flatnonzero(active >= frames)
    return int(readout.live[reached[0]] if len(reached) else readout.live[-1])
