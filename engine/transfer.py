"""Timbre transfer: the target class's prototype rendered along the input's trajectory, frame by frame.

Two ways to choose the parameters of the target prototype (docs/design.md section 2, both kept to be measured):

- ``"winner"`` (default): gain and shelves of the prototype that reconstructs the input best, and a
  pitch that puts the target prototype's reference pitch on the input's absolute pitch (the winner's
  reference pitch plus its predicted shift).  Among the target's prototypes the one whose reference
  pitch is nearest the input's is used.  This keeps the performer's melody even when the target's
  prototypes sit at other pitches.  A prototype that won no training clip has no reference pitch; a frame
  won by one (rare: it won no clip) renders the target's first prototype with the winner's own shift, and
  target prototypes without one are never chosen.  Decided per frame, not per model: every shipped model has a
  few such prototypes, and a model-wide fallback rendered the target's first prototype up to 20 semitones
  away from where the input's pitch puts it.  In a model with a fitted gain a prototype's own level means nothing
  (the fit absorbs it), so the winner's gain would put the target anywhere: the target is moved to the
  winner's rendered level, which is the frame's (its own fitted gain).
- ``"target"``: the parameters the predictor output for the target's own best-fitting prototype.

``transpose`` (semitones) is added to the pitch in both.  Frames below the level gate render as silence.

Where the rendering is heard directly (the ``prototype`` carrier) the pitch is the melody, and both candidates
place it as above.  Where it only lends its spectral envelope to the input's own partials (the ``input`` and
``filter`` carriers, ``pitched=False``), the winner candidate renders the target's first prototype at its own
register, unshifted, with the winner's gain and shelves: a fixed body whose resonances stay put whatever note
is played, as an instrument's do.  Measured by the honest judge (README, "Timbre transfer heard by an honest
judge"): on one rotation model's TimGM6mb phrases the envelope slid to the input's pitch was heard as the
target in 9 of 65 transfers, the winner's own shift (a fallback every model took) in 29, the fixed body in 41;
on FluidR3 phrases the fixed body 37 of 65 against 28 (two seeds' mean).
"""

from __future__ import annotations

import math

import numpy as np

from engine.fusedmodel import PrototypeRenderer
from engine.modelfile import LoadedModel
from engine.parameters import CANDIDATES

LOG2_PER_SEMITONE = math.log(2.0) / 12.0


class TransferRenderer:
    """Rendered target mel frames ``(m, n_mels)`` from the model's ``params (m, K, 6)`` and ``errors (m, K)``.

    Only the chosen prototype is rendered per frame (:class:`engine.fusedmodel.PrototypeRenderer`).
    """

    def __init__(self, model: LoadedModel, target: str, candidate: str = "winner", transpose: float = 0.0,
                 pitched: bool = True) -> None:
        metadata = model.metadata
        if target not in metadata.class_names:
            raise ValueError(f"unknown target {target!r}; this model knows: {', '.join(metadata.class_names)}")
        if candidate not in CANDIDATES:
            raise ValueError(f"candidate must be one of {', '.join(CANDIDATES)}, got {candidate!r}")
        if model.weights is None:
            raise ValueError("this model file's prototypes cannot be read for transfer; export it again from training")
        self._prototypes = PrototypeRenderer(model.weights)
        self.candidate = candidate
        self.transpose = float(transpose)
        self.pitched = pitched
        target_index = metadata.class_names.index(target)
        self._target_prototypes = np.flatnonzero(np.asarray(metadata.prototype_classes) == target_index)
        if not len(self._target_prototypes):
            raise ValueError(f"class {target!r} has no prototype in this model, so it cannot be a transfer target")
        self._reference = np.array([np.nan if p is None else float(p) for p in metadata.reference_pitch])
        self._placed_targets = self._target_prototypes[np.isfinite(self._reference[self._target_prototypes])]

    def render(self, params: np.ndarray, errors: np.ndarray) -> np.ndarray:
        """Mel frames (x units) of the target along the input trajectory, one per decided frame."""
        frames = np.arange(params.shape[0])
        if self.candidate == "winner":
            winner = errors.argmin(axis=1)
            chosen = params[frames, winner].copy()
            if self.pitched:
                input_pitch = self._reference[winner] + chosen[:, 0] / LOG2_PER_SEMITONE  # NaN: winner unplaced
                prototype = self._nearest_target_prototype(input_pitch)
                placed = np.isfinite(input_pitch) & np.isfinite(self._reference[prototype])
                chosen[placed, 0] = (input_pitch[placed] - self._reference[prototype[placed]]) * LOG2_PER_SEMITONE
            else:  # a fixed body: the target's first prototype at its own register
                prototype = np.full(len(frames), self._target_prototypes[0])
                chosen[:, 0] = 0.0
        else:
            local = errors[:, self._target_prototypes].argmin(axis=1)
            prototype = self._target_prototypes[local]
            chosen = params[frames, prototype].copy()
        chosen[:, 0] += self.transpose * LOG2_PER_SEMITONE
        rendered = self._prototypes.render(prototype, chosen)
        if self.candidate == "winner" and self._prototypes.fitted_gain:  # the target at the frame's level
            winner_level = self._prototypes.render(winner, params[frames, winner]).mean(axis=1)
            rendered += (winner_level - rendered.mean(axis=1))[:, None]
        return rendered

    def _nearest_target_prototype(self, input_pitch: np.ndarray) -> np.ndarray:
        """Per frame, the target prototype whose reference pitch is nearest ``input_pitch`` (MIDI); the target's
        first prototype where the input's pitch is unknown (NaN) or no target prototype has a reference."""
        chosen = np.full(len(input_pitch), self._target_prototypes[0])
        known = np.isfinite(input_pitch)
        if len(self._placed_targets) and known.any():
            distance = np.abs(self._reference[self._placed_targets][None, :] - input_pitch[known, None])
            chosen[known] = self._placed_targets[distance.argmin(axis=1)]
        return chosen
