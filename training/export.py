"""From a trained model to an engine model file: class map, reference pitches, metadata.

Per training clip we find the winning prototype (lowest mean error over frames above the level gate)
and the pitch shift it needed.  That gives:

- each prototype's reference pitch (MIDI): the median over the clips it wins of ``note - shift`` — the
  pitch it sounds at with no transposition, which timbre transfer needs to keep the melody;
- in clustering mode, each prototype's class: the majority label of the training clips it wins
  (docs/design.md section 1: the map is learned on the training split, then used unchanged on the test split).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.config import AnalysisConfig
from engine.frontend import frame_level_db
from engine.identify import DEFAULT_GATE_DB
from engine.model import PrototypeModel, semitones
from engine.modelfile import ModelMetadata, save_model
from training.baselines import majority_mapping


@dataclass(frozen=True)
class ClipWins:
    """Winning prototype of each clip, and the mean pitch shift (semitones) it was rendered with."""

    winners: np.ndarray
    shifts: np.ndarray


def clip_wins(model: PrototypeModel, clips: list[np.ndarray], analysis: AnalysisConfig,
              gate_db: float = DEFAULT_GATE_DB) -> ClipWins:
    model.eval()
    winners, shifts = np.zeros(len(clips), dtype=np.int64), np.zeros(len(clips))
    with torch.no_grad():
        for index, clip in enumerate(clips):
            params, errors = model(torch.from_numpy(clip)[None])
            active = frame_level_db(clip, analysis) >= gate_db
            if not active.any():
                active[:] = True
            winner = int(errors[0, active].mean(dim=0).argmin())
            winners[index] = winner
            shifts[index] = float(semitones(params[0, active, winner, 0].mean()))
    return ClipWins(winners, shifts)


def reference_pitches(wins: ClipWins, notes: list[int | None], n_prototypes: int) -> tuple[float | None, ...]:
    """Median ``note - shift`` over the labelled clips each prototype wins; ``None`` where it wins none."""
    pitches: list[float | None] = []
    for prototype in range(n_prototypes):
        values = [note - shift for winner, shift, note in zip(wins.winners, wins.shifts, notes, strict=True)
                  if winner == prototype and note is not None]
        pitches.append(float(np.median(values)) if values else None)
    return tuple(pitches)


def export_model(model: PrototypeModel, analysis: AnalysisConfig, class_names: list[str],
                 prototype_classes: np.ndarray | None, clips: list[np.ndarray], labels: np.ndarray,
                 notes: list[int | None], path: Path, extra: dict) -> ModelMetadata:
    """Write the engine model file.  ``prototype_classes=None`` (clustering) maps prototypes by majority."""
    wins = clip_wins(model, clips, analysis)
    if prototype_classes is None:
        prototype_classes = majority_mapping(wins.winners, labels, model.n_prototypes)
    metadata = ModelMetadata(
        sample_rate=analysis.sample_rate, n_fft=analysis.n_fft, hop=analysis.hop, n_mels=analysis.n_mels,
        class_names=tuple(class_names), prototype_classes=tuple(int(c) for c in prototype_classes),
        reference_pitch=reference_pitches(wins, notes, model.n_prototypes), lookahead=model.lookahead,
        pitch_mode="linear" if model.linear_pitch else "hz", f_min=analysis.f_min, f_max=analysis.f_max,
        extra=extra,
    )
    save_model(model, metadata, path)
    return metadata
