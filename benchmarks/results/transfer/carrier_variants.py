"""The measurement behind timgm6mb-floor-mild-chain-variants.json (kept beside its output; not a tool).

``benchmarks.transfer`` with one thing about the carrier changed, named by an environment variable:

- ``OWN_ENVELOPE=1``: the rendered target keeps the winner's pitch and gain but not its shelves (which fitted
  the winner to the input), so the target prototype is heard with its own learnt envelope;
- ``SMOOTHING_BANDS``, ``MAX_BOOST_DB``, ``MAX_CUT_DB``, ``MAX_LEVEL_BOOST_DB``: the input carrier's gain curve
  (engine.carrier's constants of those names: 5, 45, 45 and 24);
- ``CARICATURE``: the log ratio of the target's envelope to the input's multiplied by this (1: as shipped), so
  that a factor above 1 moves the output past the target's envelope, away from the input's
  (timgm6mb-floor-mild-chain-webaudiofont-caricature.json).

    OWN_ENVELOPE=1 python benchmarks/results/transfer/carrier_variants.py --preset MODEL \\
        --phrases data/TimGM6mb --classifier runs/judge-fluidr3/cnn.pt \\
        --targets violin,cello,flute,trumpet,clarinet --candidates winner --carriers filter \\
        --max-phrases 1 --register target --json
"""

import os
import sys

import numpy as np

from benchmarks.transfer import main
from engine.carrier import InputCarrier
from engine.transfer import TransferRenderer

LOW_GAIN, HIGH_GAIN = 3, 5  # engine.transformation.PARAMETER_NAMES
CARRIER_SETTINGS = ("SMOOTHING_BANDS", "MAX_BOOST_DB", "MAX_CUT_DB", "MAX_LEVEL_BOOST_DB")  # __init__'s order
shelved_render = TransferRenderer.render


def render_own_envelope(self: TransferRenderer, params: np.ndarray, errors: np.ndarray) -> np.ndarray:
    unshelved = params.copy()
    unshelved[..., [LOW_GAIN, HIGH_GAIN]] = 0.0
    return shelved_render(self, unshelved, errors)


shipped_shaping = InputCarrier._shaping


def exaggerated_shaping(self: InputCarrier, target_x: np.ndarray, input_envelope: np.ndarray) -> np.ndarray:
    """InputCarrier._shaping with the log ratio multiplied by CARICATURE before it is clipped: the shipped
    shaping of an input envelope moved so that the target's envelope minus it is that multiple."""
    factor = float(os.environ["CARICATURE"])
    target_envelope = self._envelope.product(target_x)
    return shipped_shaping(self, target_x, target_envelope - factor * (target_envelope - input_envelope))


if os.environ.get("CARICATURE"):
    InputCarrier._shaping = exaggerated_shaping  # type: ignore[method-assign]
if os.environ.get("OWN_ENVELOPE"):
    TransferRenderer.render = render_own_envelope  # type: ignore[method-assign]
defaults = list(InputCarrier.__init__.__defaults__ or ())
for index, name in enumerate(CARRIER_SETTINGS):
    if name in os.environ:
        defaults[index] = type(defaults[index])(os.environ[name])
InputCarrier.__init__.__defaults__ = tuple(defaults)
sys.exit(main(sys.argv[1:]))
