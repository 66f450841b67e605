"""Timbre transfer: the target class's prototype rendered along the input's trajectory, frame by frame.

Two ways to choose the parameters of the target prototype (docs/design.md section 2, both kept to be measured):

- ``"winner"`` (default): gain and shelves of the prototype that reconstructs the input best, and a
  pitch that puts the target prototype's reference pitch on the input's absolute pitch (the winner's
  reference pitch plus its predicted shift).  Among the target's prototypes the one whose reference
  pitch is nearest the input's is used.  This keeps the performer's melody even when the target's
  prototypes sit at other pitches.  In a model with a fitted gain a prototype's own level means nothing
  (the fit absorbs it), so the winner's gain would put the target anywhere: the target is moved to the
  winner's rendered level, which is the frame's (its own fitted gain).
- ``"target"``: the parameters the predictor output for the target's own best-fitting prototype.

``transpose`` (semitones) is added to the pitch in both.  Frames below the level gate render as silence.
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

    def __init__(self, model: LoadedModel, target: str, candidate: str = "winner", transpose: float = 0.0) -> None:
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
        target_index = metadata.class_names.index(target)
        self._target_prototypes = np.flatnonzero(np.asarray(metadata.prototype_classes) == target_index)
        if not len(self._target_prototypes):
            raise ValueError(f"class {target!r} has no prototype in this model, so it cannot be a transfer target")
        self._reference = np.array([np.nan if p is None else float(p) for p in metadata.reference_pitch])
        self._has_reference = bool(np.isfinite(self._reference).all())

    def render(self, params: np.ndarray, errors: np.ndarray) -> np.ndarray:
        """Mel frames (x units) of the target along the input trajectory, one per decided frame."""
        frames = np.arange(params.shape[0])
        if self.candidate == "winner":
            winner = errors.argmin(axis=1)
            chosen = params[frames, winner].copy()
            prototype = self._nearest_target_prototype(winner, chosen[:, 0])
            if self._has_reference:
                input_pitch = self._reference[winner] + chosen[:, 0] / LOG2_PER_SEMITONE
                chosen[:, 0] = (input_pitch - self._reference[prototype]) * LOG2_PER_SEMITONE
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

    def _nearest_target_prototype(self, winner: np.ndarray, winner_pitch: np.ndarray) -> np.ndarray:
        """Per frame, the target prototype whose reference pitch is nearest the input's absolute pitch."""
        if not self._has_reference or len(self._target_prototypes) == 1:
            return self._target_prototypes[np.zeros_like(winner)]
        input_pitch = self._reference[winner] + winner_pitch / LOG2_PER_SEMITONE
        distance = np.abs(self._reference[self._target_prototypes][None, :] - input_pitch[:, None])
        return self._target_prototypes[distance.argmin(axis=1)]
