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

from engine.carrier import InputCarrier
from engine.config import AnalysisConfig
from engine.cudagraph import CudaGraphStep, can_record
from engine.filterroute import FilterRoute
from engine.frontend import frame_level_db
from engine.fusedmodel import FusedModel
from engine.harmonic import HarmonicExcitation
from engine.identify import StreamingIdentifier
from engine.modelfile import LoadedModel
from engine.parameters import filters_audio
from engine.preset import Preset
from engine.register import RegisterFollower, frame_pitch
from engine.synth import GATE_X, StreamingSynth
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
        if not self.frames:  # no delay (every shipped model): the items themselves, not a copy
            return items
        queue = self._pending + list(items)
        ready = max(len(queue) - self.frames, 0)
        self._pending = queue[ready:]
        return np.array(queue[:ready]) if ready else items[:0]


def gated_render(renderer: TransferRenderer, params: np.ndarray, errors: np.ndarray, levels: np.ndarray,
                 gate_db: float) -> np.ndarray:
    """The wet mel frames: the target rendered along the input's trajectory, silent where the input frame is
    below the level gate (frames the identification ignores are not sung either)."""
    wet = renderer.render(params, errors)
    wet[levels < gate_db] = 0.0
    return wet


def stepper(model: LoadedModel) -> FusedModel | CudaGraphStep | None:
    """What runs ``model``'s step faster than its TorchScript module, where anything does: the fused kernels on the
    CPU (checked against the module when the file was read), a recorded CUDA graph on CUDA."""
    if model.fused_step:
        assert model.weights is not None  # LoadedModel's invariant
        return FusedModel(model.weights, model.metadata.lookahead)
    if model.device == "cuda" and can_record(model.metadata.lookahead):
        return CudaGraphStep(model.scripted)
    return None


class WetPath:
    """Model step, identification, rendering and synthesis (or filtering) for the frames one host block
    completed.

    Two routes to the audio: the synthesised carriers (``input``, ``prototype``) resynthesise the rendered
    frames (:meth:`push`, output lined up with the analysed input, ``latency_frames`` late); the ``filter``
    carrier applies the input carrier's gains to the host block itself (:meth:`filter_block`, no delay on the
    audio, the timbre a window late), and the ``harmonic`` carrier the target's envelope to an excitation at the
    block's pitch and loudness (engine.harmonic).
    """

    def __init__(self, model: LoadedModel, preset: Preset, identifier: StreamingIdentifier) -> None:
        self.model = model
        #: The model's step: in numba on the CPU, replayed from a CUDA graph on CUDA; None where neither applies
        #: (a file the kernels do not reproduce, a CUDA model with look-ahead): its TorchScript step runs then.
        self._stepper = stepper(model)
        #: The model's analysis: the units of every frame, and the rate the audio runs at until prepared.
        self.analysis: AnalysisConfig = model.metadata.analysis
        self.identifier = identifier
        self.carrier = preset.carrier
        self.phase = preset.phase
        self._transpose = 0.0
        self._renderer: TransferRenderer | None = None
        self._register: RegisterFollower | None = None
        self._build(self.analysis)
        #: Frames between analysing a frame and hearing it: the model's look-ahead and the synthesis's (none on
        #: the filter route, where the look-ahead delays the timbre, not the sound).
        self.latency_frames = 0 if self.synth is None else model.metadata.lookahead + self.synth.latency_frames
        #: Whether the rendered target is heard; otherwise the synthesis runs on silence (or the filter is
        #: silent), which is cheap and keeps its timeline, so switching to transfer is seamless.
        self.rendering = False
        self.tap: Tap | None = None
        self._frame_delay = FrameDelay(model.metadata.lookahead)
        self._spectra_delay = FrameDelay(model.metadata.lookahead)
        self._level_delay = FrameDelay(model.metadata.lookahead)

    @property
    def filtering(self) -> bool:
        """Whether the audio is the input, or the harmonic carrier's excitation, through per-frame filters
        (engine.filterroute), not a synthesis."""
        return filters_audio(self.carrier)

    def _build(self, analysis: AnalysisConfig) -> None:
        """The synthesis, or the filter route and its gains, for ``analysis``, moved as the old one was."""
        self.audio_analysis = analysis
        self._excitation: HarmonicExcitation | None = None
        if self.filtering:
            self.synth = None
            self._filter = FilterRoute(analysis)
            if self.carrier == "harmonic":
                self._excitation = HarmonicExcitation(analysis)
            else:
                self._gains = InputCarrier(analysis)
        else:
            self.synth = StreamingSynth(analysis, self.phase, carrier=self.carrier)
        self._move()

    @property
    def transpose(self) -> float:
        """Semitones the player moves the transferred sound by (the register's octaves come on top)."""
        return self._transpose

    @transpose.setter
    def transpose(self, semitones: float) -> None:
        self._transpose = float(semitones)
        self._move()

    @property
    def register(self) -> RegisterFollower | None:
        """Moves each passage by octaves into the target's range while ``register: target`` (engine.register)."""
        return self._register

    @register.setter
    def register(self, follower: RegisterFollower | None) -> None:
        self._register = follower
        self._move()

    @property
    def register_shift(self) -> int:
        """Semitones (whole octaves) the register moves the current passage by; 0 with ``register: keep``."""
        return 0 if self._register is None else self._register.shift

    @property
    def moved_by(self) -> float:
        """Semitones the sound is moved by: the transposition and the register's octaves."""
        return self._transpose + self.register_shift

    @property
    def renderer(self) -> TransferRenderer | None:
        """Renders the transfer target (None until a target is set)."""
        return self._renderer

    @renderer.setter
    def renderer(self, renderer: TransferRenderer | None) -> None:
        self._renderer = renderer
        self._move()

    def _move(self) -> None:
        """Move the sound by the transposition and the register's octaves, where this carrier moves it: the filter
        route's audio, the input carrier's partials, or the rendered prototype itself."""
        semitones = self.moved_by
        if self.synth is None:
            self._transpose_filter_route(semitones)
        elif self.carrier == "prototype":
            if self._renderer is not None:
                self._renderer.transpose = semitones
        elif semitones != self.synth.transpose:
            self.synth.transpose = semitones

    @property
    def shifter_delay_samples(self) -> float:
        """How late the filter route's shifter plays the transposed sound on average, at the audio's rate (0 while
        not transposing, and on the synthesised routes, whose transposition moves partials in place)."""
        return self._filter.shifter.mean_delay_samples if self.synth is None else 0.0

    @property
    def pitch_lag_samples(self) -> int:
        """How late the harmonic carrier's pitch follows the input's, at the audio's rate (0 on the other carriers,
        which play the input's own partials)."""
        return 0 if self._excitation is None else self._excitation.pitch_lag_samples

    def _transpose_filter_route(self, semitones: float) -> None:
        """The audio moved by the shifter, the gains designed for the moved partials; or the harmonic carrier's
        pitch moved (its filter is the target's body, which stays put)."""
        if self._excitation is not None:
            self._excitation.transpose = semitones
            return
        self._gains.transpose = semitones
        self._filter.shifter.semitones = semitones

    def prepare(self, analysis: AnalysisConfig) -> None:
        """Run the audio at ``analysis`` (the model's at the host's rate, :meth:`AnalysisConfig.at_rate`): the
        synthesis or the filter route is rebuilt for its window and hop, keeping carrier, phase and
        transposition."""
        if analysis != self.audio_analysis:
            self._build(analysis)

    def reset(self) -> None:
        if self._stepper is not None:
            self._stepper.reset()
        else:
            self.model.reset_script()
        self._frame_delay.reset()
        self._spectra_delay.reset()
        self._level_delay.reset()
        if self._register is not None:
            self._register.reset()
            self._move()
        if self.synth is not None:
            self.synth.reset()
        else:
            self._filter.reset()
            if self._excitation is not None:
                self._excitation.reset()
        self.identifier.reset()

    def push(self, frames: np.ndarray, spectra: np.ndarray) -> np.ndarray:
        """Frames ``(n, n_mels)`` with their complex spectra → wet samples at the synthesis's rate (float32)."""
        if self.synth is None:
            raise RuntimeError(f"the {self.carrier} carrier is not synthesised: call filter_block")
        if not len(frames):
            return np.zeros(0, dtype=np.float32)
        levels = frame_level_db(frames, self.analysis)
        if not self._following:
            return self.synth.push(*self._decide(frames, spectra, levels)).astype(np.float32)
        pieces = []
        for index in range(len(frames)):  # one frame at a time: an octave decided on a frame moves that frame on
            frame, spectrum, level = frames[index : index + 1], spectra[index : index + 1], levels[index : index + 1]
            if self._follow_register(spectrum, level):
                self._move()
            pieces.append(self.synth.push(*self._decide(frame, spectrum, level)))
        return np.concatenate(pieces).astype(np.float32)

    def filter_block(self, block: np.ndarray, frames: np.ndarray, spectra: np.ndarray) -> np.ndarray:
        """The filter route: ``block`` (or the harmonic carrier's excitation of it) through the filters of the
        frames it completed (``frames``, ``spectra`` as the front end gave them for this block) → the wet block
        (float32)."""
        if not len(frames):
            return self._filter.push(block, 0, None, self._source(block, [], spectra))
        levels = frame_level_db(frames, self.analysis)
        if not self._following:
            source = self._source(block, self._filter.completion_offsets(len(frames)), spectra)
            return self._filter.push(block, len(frames), self._filter_gains(*self._decide(frames, spectra, levels)),
                                     source)
        # Frame by frame, the block cut where each frame completes: an octave decided on a frame moves the audio
        # from the sample that completed it, whatever the host's blocks.
        out = np.empty(len(block), dtype=np.float32)
        begin = 0
        for index, end in enumerate(self._filter.completion_offsets(len(frames))):
            frame, spectrum, level = frames[index : index + 1], spectra[index : index + 1], levels[index : index + 1]
            moved = self._follow_register(spectrum, level)
            if moved and self._excitation is None:
                self._gains.transpose = self.moved_by  # the filters from this frame on are for the moved audio
            gains = self._filter_gains(*self._decide(frame, spectrum, level))
            piece = block[begin:end]
            out[begin:end] = self._filter.push(piece, 1, gains, self._source(piece, [len(piece)], spectrum))
            if moved:
                self._transpose_filter_route(self.moved_by)
            begin = end
        rest = block[begin:]
        out[begin:] = self._filter.push(rest, 0, None, self._source(rest, [], spectra[:0]))
        return out

    def _source(self, block: np.ndarray, offsets: list[int], spectra: np.ndarray) -> np.ndarray | None:
        """What the filter route filters in the block's place: the harmonic carrier's excitation, its frames'
        pitches taking over at ``offsets``; None on the filter carrier (the block itself)."""
        return None if self._excitation is None else self._excitation.push(block, offsets, spectra)

    def _filter_gains(self, target_x: np.ndarray, spectra: np.ndarray) -> np.ndarray:
        """The filters' gain curves for rendered target frames: over the input's envelope (filter carrier) or over
        the harmonic carrier's flat excitation."""
        if self._excitation is None:
            return self._gains.gains(target_x, spectra)
        return self._excitation.gains(target_x, GATE_X)

    @property
    def _following(self) -> bool:
        """Whether the register moves passages now (``register: target`` in transfer mode)."""
        return self._register is not None and self.rendering

    def _follow_register(self, spectra: np.ndarray, levels: np.ndarray) -> bool:
        """Feed the register the frames' pitches (read only while it listens: a few frames per passage) and levels;
        whether its octave changed."""
        register = self._register
        assert register is not None  # called only while following
        shift = register.shift
        pitches = frame_pitch(spectra, self.audio_analysis) if register.listening else np.full(len(levels), np.nan)
        return register.update(pitches, levels) != shift

    def _decide(self, frames: np.ndarray, spectra: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Model step and identification for new frames (``levels``: theirs, :func:`frame_level_db`); the
        rendered target frames of those the look-ahead lets through (zeros unless rendering), with the input
        spectra they were analysed with."""
        if self._stepper is not None:
            params, errors = self._stepper.step(frames)
        else:
            params, errors = self.model.script_step(frames)
        decided = self._frame_delay.push(frames)
        decided_spectra = self._spectra_delay.push(spectra)
        levels = self._level_delay.push(levels)
        decisions = self.identifier.update(errors, levels)
        if self.tap is not None:
            self.tap(decided, params, errors, decisions)
        renderer = self.renderer
        if self.rendering and renderer is not None and len(decided):
            return gated_render(renderer, params, errors, levels, self.identifier.gate_db), decided_spectra
        return np.zeros_like(decided), decided_spectra
