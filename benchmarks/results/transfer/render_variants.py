"""The measurement behind the ``*-fixed-body*.json`` rows (kept beside its output; not a tool).

``benchmarks.transfer`` with the winner candidate's rendering of the target replaced, named by ``VARIANT``:

- ``old``: the rendering before 2026-12-03: the remapping of docs/design.md section 2.6 only when every
  prototype of the model has a reference pitch, else (every model measured) the target's first prototype with
  the winner's own shift (what the engine's winner candidate still does for the ``prototype`` carrier);
- ``nearest``: the remapping per frame (the target's reference pitch on the input's, the nearest target
  prototype): the envelope slides with the notes;
- ``nearest-fixed``: the nearest target prototype, unshifted;
- ``first-fixed``: the target's first prototype, unshifted (what the engine now does for the envelope carriers);
- ``target-fixed``: with ``--candidates target``, the target's best-fitting prototype with its own gain and
  shelves, unshifted.

    VARIANT=first-fixed python benchmarks/results/transfer/render_variants.py --preset MODEL \\
        --phrases data/TimGM6mb --classifier benchmarks/results/transfer/judge-fluidr3/cnn.pt \\
        --targets violin,cello,flute,trumpet,clarinet --candidates winner --carriers filter \\
        --max-phrases 1 --register target --json
"""

import os
import sys

import numpy as np

from benchmarks.transfer import main
from engine.modelfile import LoadedModel
from engine.transfer import LOG2_PER_SEMITONE, TransferRenderer

VARIANT = os.environ["VARIANT"]
engine_init = TransferRenderer.__init__


def init_with_references(self: TransferRenderer, model: LoadedModel, *args, **kwargs) -> None:
    """The engine's renderer, plus each prototype's reference pitch (NaN where it has none), which the
    remapping variants need and the engine no longer reads."""
    engine_init(self, model, *args, **kwargs)
    self._reference = np.array([np.nan if p is None else float(p) for p in model.metadata.reference_pitch])


def _nearest(renderer: TransferRenderer, input_pitch: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Per frame, the candidate prototype whose reference pitch is nearest ``input_pitch``."""
    distance = np.abs(renderer._reference[candidates][None, :] - input_pitch[:, None])
    return candidates[distance.argmin(axis=1)]


def render_variant(self: TransferRenderer, params: np.ndarray, errors: np.ndarray) -> np.ndarray:
    frames = np.arange(params.shape[0])
    targets = self._target_prototypes
    if self.candidate == "target":
        prototype = targets[errors[:, targets].argmin(axis=1)]
        chosen = params[frames, prototype].copy()
        chosen[:, 0] = 0.0
        return self._prototypes.render(prototype, chosen)
    winner = errors.argmin(axis=1)
    chosen = params[frames, winner].copy()
    reference = self._reference
    input_pitch = reference[winner] + chosen[:, 0] / LOG2_PER_SEMITONE
    prototype = np.full(len(frames), targets[0])
    if VARIANT == "old" and np.isfinite(reference).all():
        prototype = _nearest(self, input_pitch, targets)
        chosen[:, 0] = (input_pitch - reference[prototype]) * LOG2_PER_SEMITONE
    elif VARIANT.startswith("nearest"):
        placed = targets[np.isfinite(reference[targets])]
        known = np.isfinite(input_pitch)
        prototype[known] = _nearest(self, input_pitch[known], placed)
        if VARIANT == "nearest":
            chosen[known, 0] = (input_pitch[known] - reference[prototype[known]]) * LOG2_PER_SEMITONE
    if VARIANT.endswith("fixed"):
        chosen[:, 0] = 0.0
    return self._prototypes.render(prototype, chosen)


TransferRenderer.__init__ = init_with_references  # type: ignore[method-assign]
TransferRenderer.render = render_variant  # type: ignore[method-assign]
sys.exit(main(sys.argv[1:]))
