"""The plugin-style streaming engine: ``prepare`` once, then ``process`` blocks of any host's audio.

:class:`Processor` is the host adapter (Neutone's ``SampleQueueWrapper`` is the model): it sanitises, buffers
and aligns, around the wet path (:class:`engine.wetpath.WetPath`: model step, identification, rendering,
synthesis).  Signal flow per block (docs/design.md section 2)::

    host block ─► sanitise/mono ─┬─► dry delay line (latency_samples) ─────────────────┐
                                 └─► log-mel frames at the host's rate                  │
                                       ─► WetPath (model.step, identification,          mix ─► gain ─► out
                                          rendering, synthesis) ─► wet FIFO ────────────┘

There is no resampler: the front end and the synthesis run at the host's rate with the model's window and
hop in seconds, and the frames come out in the model's units (:meth:`engine.config.AnalysisConfig.at_rate`;
tests/test_frontend.py measures the difference from resampling to the model's rate).  The wet path's output
stream lines up with its input, so the whole delay is the wet FIFO's start: just enough that no block of any
size ever runs dry, ``n_fft + latency_frames * hop - 1`` host samples whatever the block size
(:meth:`Processor.latency_parts` splits it by cause; tests/test_latency.py sends an impulse through the real
wet path on a grid of rates, blocks, look-aheads, phases and carriers).  The dry path is delayed by the same
amount, so dry and wet line up and the host can compensate one fixed latency in every mode.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit

from engine.atomic import check_output
from engine.audiofile import matching_subtype, open_audio
from engine.config import AnalysisConfig
from engine.errors import AudioFileError, PresetError, ProtophoneError
from engine.fifo import SampleFifo
from engine.filestream import stream_file
from engine.frontend import LogMelFrontEnd
from engine.identify import ClassMap, Identification, StreamingIdentifier
from engine.modelfile import LoadedModel, load_streaming_model
from engine.parameters import SETTINGS, plays_rendered_pitch
from engine.preset import Preset, load_preset, with_settings
from engine.register import RegisterFollower
from engine.transfer import TransferRenderer
from engine.wetpath import Tap, WetPath

MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 384000
MAX_BLOCK_SIZE = 1 << 16
#: Input beyond +-this (a 24 dB overload) is clamped and counted: it is a broken source, not music.
MAX_ABS_SAMPLE = 16.0
#: More channels than this is taken for a channels-first block, ``(channels, n)``, and refused.
MAX_CHANNELS = 64


class ConcurrentUseError(ProtophoneError, RuntimeError):
    """Two threads inside one Processor at once: its streaming state would be corrupted."""


@njit(cache=True)
def _sanitised(samples: np.ndarray, out: np.ndarray) -> tuple[int, int]:
    """``out``: ``samples`` with every non-finite one silenced and the rest clamped to +-MAX_ABS_SAMPLE, in one
    pass; returns how many were non-finite and how many clamped."""
    nonfinite = clamped = 0
    for index in range(len(samples)):
        sample = samples[index]
        if not math.isfinite(sample):
            sample = 0.0
            nonfinite += 1
        elif abs(sample) > MAX_ABS_SAMPLE:
            sample = math.copysign(MAX_ABS_SAMPLE, sample)
            clamped += 1
        out[index] = sample
    return nonfinite, clamped


@dataclass
class StreamStats:
    """Counters a host can show; nothing here is reset by :meth:`Processor.set`."""

    blocks: int = 0
    samples: int = 0
    frames: int = 0
    nonfinite_samples: int = 0
    clamped_samples: int = 0
    wet_underrun_samples: int = 0


class Processor:
    """Identification and timbre transfer as a stateful block processor.

    >>> proc = Processor.from_preset("violin")
    >>> proc.prepare(sample_rate=48000, block_size=256)
    >>> out = proc.process(block)          # same length as block, float32 mono
    """

    def __init__(self, model: LoadedModel, preset: Preset | None = None) -> None:
        self.model = model
        self.metadata = model.metadata
        self.analysis = model.metadata.analysis
        preset = preset or Preset(name="model", model=Path("."))
        if preset.target is not None and preset.target not in self.metadata.class_names:
            raise PresetError(f"preset {preset.name}: unknown target {preset.target!r}; this model knows: "
                              f"{', '.join(self.metadata.class_names)}")
        #: The current settings: replaced whole by :meth:`set` (one atomic assignment), so the audio thread
        #: never sees half a change; ``save_preset(proc.preset, path)`` writes them back.
        self.preset = preset
        self.class_map = ClassMap(self.metadata.class_names, self.metadata.prototype_classes)
        identifier = StreamingIdentifier(
            self.class_map, model.temperature, self.analysis.frame_rate, preset.time_constant_s, preset.gate_db,
            hold_s=preset.hold_s, min_confidence=preset.min_confidence,
        )
        self._wet = WetPath(model, preset, identifier)
        for samples in (np.zeros(1, dtype=np.float32), np.zeros(1)):  # compile for float32 and float64 audio now,
            _sanitised(samples, np.empty(1, dtype=np.float32))       # not in the first audio callback
        self._followed: tuple[str | None, str] | None = None  # the (target, register) the register follows
        try:
            self._apply(preset)
        except ValueError as error:
            raise PresetError(f"preset {preset.name}: {error}") from None
        self.stats = StreamStats()
        self.sample_rate = 0
        self.block_size = 0
        self._latency = 0
        self._busy = threading.Lock()  # held while prepare, reset or process runs: see _exclusive

    @classmethod
    def from_preset(cls, name_or_path: str | Path, device: str = "cpu", **settings: object) -> Processor:
        """A processor for a preset name (see ``presets/``), a preset YAML path or a model file, with
        ``settings`` (any of :data:`engine.parameters.SETTINGS`, e.g. ``carrier="prototype"``) in place of
        the preset's; a bad setting raises :class:`PresetError` naming it."""
        preset = load_preset(name_or_path)
        try:
            preset = with_settings(preset, **{name: value for name, value in settings.items() if value is not None})
        except ValueError as error:
            raise PresetError(str(error)) from None
        return cls(load_streaming_model(preset.model, device), preset)

    @property
    def tap(self) -> Tap | None:
        """Optional observer of every decided chunk: ``tap(frames, params, errors, decisions)`` (tests,
        evaluation of streaming decisions).  Called from the processing thread; keep it cheap."""
        return self._wet.tap

    @tap.setter
    def tap(self, tap: Tap | None) -> None:
        self._wet.tap = tap

    @property
    def mode(self) -> str:
        return self.preset.mode

    @property
    def target(self) -> str | None:
        return self.preset.target

    @property
    def mix(self) -> float:
        return self.preset.mix

    @property
    def transpose(self) -> float:
        return self.preset.transpose

    @property
    def register_shift(self) -> int:
        """Semitones (whole octaves) ``register: target`` moves the current passage by, on top of transpose."""
        return self._wet.register_shift

    @property
    def gain_db(self) -> float:
        return self.preset.gain_db

    # ------------------------------------------------------------------------------------ host interface
    @property
    def host_analysis(self) -> AnalysisConfig:
        """The model's analysis at the host's rate (the model's own until :meth:`prepare`): what the front end
        and the wet path's audio run at."""
        return self._wet.audio_analysis

    @property
    def flush_samples(self) -> int:
        """Silence that brings a file's last sample out, and completes the frames that cover its last hop."""
        self._require_prepared()
        return self._latency + self.host_analysis.n_fft

    @property
    def latency_samples(self) -> int:
        """Input-to-output delay at the host rate, the same for the wet and the dry path.

        The wet path's output stream lines up with its input (the overlap-add puts every frame back where it
        was analysed), so the delay is the wet FIFO's start: the most wet samples a block can be short of
        (:meth:`latency_parts`)."""
        self._require_prepared()
        return self._latency

    @property
    def shifter_delay_samples(self) -> float:
        """The filter route's transposition delay in host samples, on average (engine.pitchshift): outside
        :attr:`latency_samples`, which a host compensates, because it varies within the shifter's sweep and
        comes and goes with the live transposition; 0 when not transposing or on the synthesised routes."""
        self._require_prepared()
        return self._wet.shifter_delay_samples

    @property
    def pitch_lag_samples(self) -> int:
        """How late the harmonic carrier's played pitch follows the input's, in host samples (engine.harmonic):
        outside :attr:`latency_samples`, because the sound itself is not late (its loudness follows the input at
        once); only a new note's pitch is.  0 on the other carriers."""
        self._require_prepared()
        return self._wet.pitch_lag_samples

    def latency_parts(self) -> dict[str, int]:
        """:attr:`latency_samples` by cause, in host samples (docs/design.md section 8): ``window``, the part
        of the analysis window before the hop a frame completes (``n_fft - hop``); ``look-ahead``, the wet
        path's declared frames (the model's and RTPGHI's); ``blocks``, the wait for a hop to end at a host
        block's boundary, ``hop - 1`` whatever the block: the longest wait any block size meets (``hop -
        gcd(block, hop)``), so the latency does not change with the host's block size (pedalboard's and the
        issue's rule; it costs up to ``gcd - 1`` samples where the block and the hop share more than one).
        Window and hop are the model's at the host's rate.  The filter carrier has none of them: its audio is
        the input through a filter (engine.filterroute)."""
        self._require_prepared()
        analysis = self.host_analysis
        if self._wet.filtering:
            return {"window": 0, "look-ahead": 0, "blocks": 0}
        return {"window": analysis.n_fft - analysis.hop,
                "look-ahead": self._wet.latency_frames * analysis.hop,
                "blocks": analysis.hop - 1}

    @property
    def identification(self) -> Identification:
        """What the engine hears now: label, per-class probabilities, active frames seen."""
        return self._wet.identifier.snapshot()

    @property
    def clip_label(self) -> str | None:
        """Decision over everything heard since the last reset (mean error over active frames)."""
        return self._wet.identifier.clip_label()

    def prepare(self, sample_rate: int, block_size: int) -> None:
        """Set the host rate and the largest block size; builds the chain and measures its latency."""
        with self._exclusive("prepare"):
            self._prepare(sample_rate, block_size)

    def _prepare(self, sample_rate: int, block_size: int) -> None:
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
            raise ValueError(f"sample_rate must be an integer number of Hz, got {sample_rate!r}")
        if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
            raise ValueError(f"sample_rate must be {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz, got {sample_rate}")
        if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)):
            raise ValueError(f"block_size must be an integer number of samples, got {block_size!r}")
        if not 1 <= block_size <= MAX_BLOCK_SIZE:
            raise ValueError(f"block_size must be 1..{MAX_BLOCK_SIZE} samples, got {block_size}")
        self.sample_rate = int(sample_rate)
        self.block_size = int(block_size)
        self._wet.prepare(self.analysis.at_rate(self.sample_rate))
        self._frontend = LogMelFrontEnd(self.host_analysis)
        self._latency = sum(self.latency_parts().values())
        capacity = 4 * (self._latency + self.block_size + self.host_analysis.n_fft)
        self._wet_fifo = SampleFifo(capacity, self._latency)
        self._dry_delay = SampleFifo(capacity, self._latency)
        self._reset()

    def reset(self) -> None:
        """Forget all audio: model state, buffers, identification.  Settings stay."""
        with self._exclusive("reset"):
            self._reset()

    def _reset(self) -> None:
        self._require_prepared()
        self._wet.reset()
        self._frontend.reset()
        self._wet_fifo.reset()
        self._dry_delay.reset()

    def set(self, **changes: object) -> None:
        """Change live settings between blocks (those marked ``live`` in :data:`engine.parameters.SETTINGS`:
        mode, target, mix, transpose, gain_db, candidate); a None value leaves a setting as it is.  Checked
        like a preset's, then applied as one atomic assignment, so no lock is needed."""
        changes = {name: value for name, value in changes.items() if value is not None}
        fixed = sorted(name for name in changes if name in SETTINGS and not SETTINGS[name].live)
        if fixed:
            raise ValueError(f"{', '.join(fixed)} cannot change while the processor exists; build one with it: "
                             f"Processor.from_preset(..., {fixed[0]}=...)")
        settings = with_settings(self.preset, **changes)
        if settings.target is not None and settings.target not in self.metadata.class_names:
            raise ValueError(f"unknown target {settings.target!r}; this model knows: "
                             f"{', '.join(self.metadata.class_names)}")
        self._apply(settings)

    def _apply(self, settings: Preset) -> None:
        """Make ``settings`` current: the renderer and the register (rebuilt only when what they depend on
        changed) and the transposition first, then the settings the audio path reads."""
        wet = self._wet
        followed = (settings.target, settings.register)
        # may refuse (a model without the target's range): before anything changes
        follower = self._register_follower(settings) if followed != self._followed else wet.register
        target = settings.target
        if target is not None and (wet.renderer is None or (target, settings.candidate) != (
                self.preset.target, self.preset.candidate)):
            wet.renderer = TransferRenderer(self.model, target, settings.candidate,
                                            pitched=plays_rendered_pitch(settings.carrier))
        wet.register, self._followed = follower, followed
        wet.transpose = settings.transpose
        wet.rendering = settings.mode == "transfer"
        self.preset = settings

    def _register_follower(self, settings: Preset) -> RegisterFollower | None:
        """What moves each passage into the target's range (``register: target``), or None."""
        if settings.register != "target" or settings.target is None:
            return None
        playing_range = self.metadata.class_range(settings.target)
        if playing_range is None:
            raise ValueError(f"register 'target' needs {settings.target}'s playing range, which this model file "
                              "does not hold (export it again from training, with notes that have a pitch); use "
                              "register keep")
        return RegisterFollower(*playing_range, self.analysis.frame_rate, settings.gate_db, settings.hold_s)

    def process(self, block: np.ndarray) -> np.ndarray:
        """Process one block: ``(n,)`` or ``(n, channels)`` → ``(n,)`` float32, stateful.

        Blocks longer than the prepared size are processed in prepared-size pieces.  One thread at a time:
        a call while another thread is inside this Processor raises :class:`ConcurrentUseError`.
        """
        with self._exclusive("process"):
            self._require_prepared()
            mono = self._sanitise(block)
            out = np.empty(len(mono), dtype=np.float32)
            for start in range(0, len(mono), self.block_size):
                piece = mono[start : start + self.block_size]
                out[start : start + len(piece)] = self._process_piece(piece)
            return out

    def process_file(self, in_path: str | Path, out_path: str | Path | None = None) -> dict:
        """Run a whole file through the streaming path; the output is aligned with the input.

        The stream is reset first and flushed with silence after, and the first
        ``latency_samples`` output samples are dropped, so output sample ``i`` belongs to input sample ``i``.
        ``out_path`` is checked before any work and never replaces ``in_path``; it keeps the input's sample
        format where its own format allows (a 24-bit take stays 24-bit). Returns a summary (identification,
        latency, timing, and ``clipped_samples``: output samples beyond full scale that the file clipped).
        """
        if out_path is not None:
            check_output(out_path, [in_path])
        subtype = None if out_path is None else matching_subtype(in_path, out_path)
        with open_audio(in_path) as file:
            sample_rate = file.samplerate
            if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
                raise AudioFileError(f"{in_path} is sampled at {sample_rate} Hz; Protophone plays "
                                     f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz: resample it first")
            if self.sample_rate != sample_rate or not self.block_size:
                self.prepare(sample_rate, self.block_size or 512)
            self.reset()
            started = time.perf_counter()
            run = stream_file(self.process, file, sample_rate, self.block_size, self._latency, self.flush_samples,
                              None if out_path is None else Path(out_path), subtype)
        elapsed = time.perf_counter() - started
        snapshot = self.identification
        duration = run.heard / sample_rate
        return {
            "input": str(in_path),
            "output": None if out_path is None else str(out_path),
            "sample_rate": sample_rate,
            "duration_s": duration,
            "latency_samples": self._latency,
            "latency_ms": 1000.0 * self._latency / sample_rate,
            "mode": self.mode,
            "target": self.target,
            "label": self.clip_label,
            "live_label": snapshot.label,
            "probabilities": snapshot.probabilities,
            "active_frames": snapshot.frames_seen,
            "nonfinite_samples": self.stats.nonfinite_samples,
            "clipped_samples": run.clipped_samples,
            "realtime_factor": elapsed / duration if duration else 0.0,
        }

    # --------------------------------------------------------------------------------------- internals
    @contextmanager
    def _exclusive(self, method: str) -> Iterator[None]:
        """Refuse a second thread instead of letting it corrupt the stream state: never waits, so the audio
        thread cannot block on it."""
        if not self._busy.acquire(blocking=False):
            raise ConcurrentUseError(f"Processor.{method} was called while another thread was using the same "
                                     "Processor; give each thread its own Processor")
        try:
            yield
        finally:
            self._busy.release()

    def _require_prepared(self) -> None:
        if not self.sample_rate:
            raise RuntimeError("call prepare(sample_rate, block_size) before processing")

    def _sanitise(self, block: np.ndarray) -> np.ndarray:
        """Any float/int array of shape (n,) or (n, ch) → finite float32 mono; bad values are counted."""
        array = np.asarray(block)
        if array.ndim == 2:
            if array.shape[1] == 0:
                raise ValueError("block has zero channels; expected shape (n,) or (n, channels)")
            if array.shape[1] > MAX_CHANNELS:
                raise ValueError(f"block of shape {array.shape} has more than {MAX_CHANNELS} channels: is it "
                                 "channels-first? pass (n, channels), e.g. block.T")
        elif array.ndim != 1:
            raise ValueError(f"block must have shape (n,) or (n, channels), got {array.shape}")
        kind = array.dtype.kind  # "i"/"u" integers, "f" floats (np.issubdtype costs a microsecond a call)
        if kind in "iu":
            array = array.astype(np.float32) / float(np.iinfo(array.dtype).max + 1)
        elif kind != "f":
            raise TypeError(f"block must hold float or integer PCM samples, got dtype {array.dtype}")
        mono = np.empty(len(array), dtype=np.float32)
        nonfinite, clamped = _sanitised(array.mean(axis=1) if array.ndim == 2 else array, mono)
        self.stats.nonfinite_samples += nonfinite
        self.stats.clamped_samples += clamped
        return mono

    def _process_piece(self, block: np.ndarray) -> np.ndarray:
        self._dry_delay.write(block)
        dry = self._dry_delay.read(len(block))
        frames, spectra = self._frontend.push(block)
        self.stats.frames += len(frames)
        if self._wet.filtering:
            wet = self._wet.filter_block(block, frames, spectra)
        else:
            self._wet_fifo.write(self._wet.push(frames, spectra))
            wet = self._wet_fifo.read(len(block))
        self.stats.blocks += 1
        self.stats.samples += len(block)
        self.stats.wet_underrun_samples = self._wet_fifo.underrun_samples
        out = dry if self.mode == "identify" else (1.0 - self.mix) * dry + self.mix * wet
        return out if self.gain_db == 0.0 else out * np.float32(10.0 ** (self.gain_db / 20.0))
