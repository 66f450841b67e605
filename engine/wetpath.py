"""The wet path: log-mel frames and their spectra in, decisions and wet samples out, at the host's rate.

Everything between the front end and the return to the host's rate (docs/design.md section 2): the model's
streaming step, the look-ahead alignment of frames and spectra with the model's output, identification,
the rendering of the transfer target (:func:`gated_render`) and the synthesis.  The frames are in the model's
units whatever the rate (:meth:`engine.config.AnalysisConfig.at_rate`), so only the synthesis depends on
the rate (:meth:`WetPath.prepare`).  It does not know about host blocks or buffers:
:class:`engine.processor.Processor` is the host adapter around it, and file mode, ``Processor.process_file``
and the benchmarks all run through it.

Its delay is declared, not discovered: :attr:`WetPath.latency_frames` frames of look-ahead (the model's and
the synthesis's); the host adapter composes it with the framing's and the blocks' delays.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from engine.config import AnalysisConfig
from engine.export import LoadedModel
from engine.frontend import frame_level_db
from engine.identify import StreamingIdentifier
from engine.preset import Preset
from engine.synth import StreamingSynth
from engine.transfer import TransferRenderer

#: ``tap(frames, params, errors, decisions)``: an observer of every decided chunk.
Tap = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], None]


class FrameDelay:
    """Delays frames (any per-frame arrays) by a fixed count, so side data lines up with model output."""

    def __init__(self, frames: int) -> None:
        self.frames = frames
        self._pending: list[np.ndarray] = []

    def reset(self) -> None:
        self._pending = []

    def push(self, items: np.ndarray) -> np.ndarray:
        """Add ``n`` items; return the ones that are now ``frames`` old (oldest first)."""
        queue = self._pending + list(items)
        ready = max(len(queue) - self.frames, 0)
        self._pending = queue[ready:]
        return np.array(queue[:ready]) if ready else items[:0]


def gated_render(renderer: TransferRenderer, params: torch.Tensor, errors: torch.Tensor, levels: np.ndarray,
                 gate_db: float) -> np.ndarray:
    """The wet mel frames: the target rendered along the input's trajectory, silent where the input frame is
    below the level gate (frames the identification ignores are not sung either)."""
    with torch.no_grad():
        wet = renderer.render(params, errors).cpu().numpy()
    wet[levels < gate_db] = 0.0
    return wet


class WetPath:
    """Model step, identification, rendering and synthesis for the frames one host block completed."""

    def __init__(self, model: LoadedModel, preset: Preset, identifier: StreamingIdentifier) -> None:
        self.model = model
        #: The model's analysis: the units of every frame, and the rate the synthesis runs at until prepared.
        self.analysis: AnalysisConfig = model.metadata.analysis
        self.identifier = identifier
        self.synth = StreamingSynth(self.analysis, preset.phase, carrier=preset.carrier)
        #: Frames between analysing a frame and hearing it: the model's look-ahead and the synthesis's.
        self.latency_frames = model.metadata.lookahead + self.synth.latency_frames
        self.renderer: TransferRenderer | None = None
        #: Whether the rendered target is synthesised; otherwise the synthesis runs on silence, which is cheap
        #: and keeps its timeline, so switching to transfer is seamless.
        self.rendering = False
        self.tap: Tap | None = None
        self._frame_delay = FrameDelay(model.metadata.lookahead)
        self._spectra_delay = FrameDelay(model.metadata.lookahead)

    def prepare(self, analysis: AnalysisConfig) -> None:
        """Synthesise at ``analysis`` (the model's at the host's rate, :meth:`AnalysisConfig.at_rate`): the
        synthesis is rebuilt for its window and hop, keeping its phase, carrier and transposition."""
        if analysis == self.synth.config:
            return
        synth = StreamingSynth(analysis, self.synth.phase, carrier=self.synth.carrier)
        if self.synth.transpose:
            synth.transpose = self.synth.transpose
        self.synth = synth

    def reset(self) -> None:
        with torch.no_grad():
            self.model.module.reset()
        self._frame_delay.reset()
        self._spectra_delay.reset()
        self.synth.reset()
        self.identifier.reset()

    def push(self, frames: np.ndarray, spectra: np.ndarray) -> np.ndarray:
        """Frames ``(n, n_mels)`` with their complex spectra → wet samples at the synthesis's rate (float32)."""
        if not len(frames):
            return np.zeros(0, dtype=np.float32)
        with torch.no_grad():
            params, errors = self.model.module.step(torch.from_numpy(frames).to(self.model.device))
        decided = self._frame_delay.push(frames)
        decided_spectra = self._spectra_delay.push(spectra)
        levels = frame_level_db(decided, self.analysis)
        errors_np = errors.cpu().numpy()
        decisions = self.identifier.update(errors_np, levels)
        if self.tap is not None:
            self.tap(decided, params.cpu().numpy(), errors_np, decisions)
        renderer = self.renderer
        if self.rendering and renderer is not None and len(decided):
            wet_frames = gated_render(renderer, params, errors, levels, self.identifier.gate_db)
        else:
            wet_frames = np.zeros_like(decided)
        return self.synth.push(wet_frames, decided_spectra).astype(np.float32)

