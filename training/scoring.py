"""Scoring a prototype model on labelled clips the way the engine decides: clip-level and streaming.

The decisions come from the engine's own :class:`engine.identify.StreamingIdentifier` fed with the batch
model's errors, so the accuracy reported here is the accuracy of what a live user sees.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from engine.frontend import frame_level_db
from engine.identify import DEFAULT_MIN_CONFIDENCE, ClassMap, StreamingIdentifier
from engine.modelfile import LoadedModel

STREAMING_CHECKPOINTS_S = (0.25, 1.0)


def clip_decisions(model: LoadedModel, clips: list[np.ndarray], gate_db: float,
                   min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> dict[str, np.ndarray]:
    """Per clip: the clip decision and the live decision after 0.25 s and 1 s of sound (class indices).

    A clip with no frame above the gate gets -1 (counted as wrong).  A clip shorter than a checkpoint is
    scored with its last live decision.  ``min_confidence`` is the readout's (the clip decision has none).
    """
    metadata = model.metadata
    analysis = metadata.analysis
    class_map = ClassMap(metadata.class_names, metadata.prototype_classes)
    with torch.no_grad():
        temperature = float(model.module.temperature())
    checkpoints = {f"after_{s:g}s": math.ceil(s * analysis.frame_rate) for s in STREAMING_CHECKPOINTS_S}
    results = {"clip": [], **{name: [] for name in checkpoints}}
    names = {name: index for index, name in enumerate(metadata.class_names)}
    for clip in clips:
        with torch.no_grad():
            _, errors = model.module(torch.from_numpy(clip).to(model.device)[None])
        levels = frame_level_db(clip, analysis)
        identifier = StreamingIdentifier(class_map, temperature, analysis.frame_rate, gate_db=gate_db,
                                         min_confidence=min_confidence)
        live = identifier.update(errors[0].cpu().numpy(), levels)
        label = identifier.clip_label()
        results["clip"].append(-1 if label is None else names[label])
        active = np.cumsum(levels >= gate_db)
        for name, frames in checkpoints.items():
            reached = np.flatnonzero(active >= frames)
            results[name].append(int(live[reached[0]] if len(reached) else live[-1]))
    return {name: np.asarray(values) for name, values in results.items()}
