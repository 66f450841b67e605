"""Register: the transferred sound moved by whole octaves into the target's playing range, phrase by phrase.

A violin cannot play a cello's low notes.  Rendered at its own pitch, a cello phrase through the violin preset
keeps the cello's register, and that is what listeners (and the identifier) hear: the demo's cello phrase
came out named cello (0.29) before violin (0.22) by the ``identify`` preset, and violin (0.60) an octave up.
DDSP's timbre transfer moves the input by octaves for the same reason.

With ``register: target`` the engine does what a player transposing a part does: each passage (sound after a
pause of ``hold_s``) is moved by the fewest whole octaves that bring its first voiced frames inside the
target's range (the 5th to 95th percentile of its training notes, :attr:`engine.modelfile.ModelMetadata.
class_ranges`), and stays there to the passage's end, so a phrase keeps its shape.  The octave is decided on
the first :data:`DECISION_FRAMES` voiced frames; until then the previous passage's octave holds.

The pitch of a frame comes from its spectrum, already computed by the front end: the autocorrelation is the
inverse FFT of the power spectrum, divided by the analysis window's own autocorrelation so the window's taper
does not favour short lags (Boersma 1993).  The period is the shortest lag whose peak comes within
:data:`OCTAVE_TOLERANCE` of the highest one, which keeps a period's multiples (the octave below) from winning.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import scipy.fft
from numba import njit

from engine.config import AnalysisConfig
from engine.identify import SoundingGate
from engine.stft import hann_window

#: ``keep``: the transferred sound at the input's pitch; ``target``: moved by octaves into the target's range.
REGISTERS = ("keep", "target")
#: A frame is voiced when its normalised autocorrelation peaks at least this high.
VOICING = 0.6
#: Among the autocorrelation's peaks, the shortest lag within this share of the highest is the period.
OCTAVE_TOLERANCE = 0.9
#: Highest pitch searched (Hz): above the highest fundamental of the orchestra's instruments.
MAX_PITCH_HZ = 2100.0
#: Only the spectrum below this (Hz) enters the autocorrelation: partials up to the Nyquist frequency make its
#: peaks a sample or two wide, so that the lag grid missed a period's peak and a multiple won (a bright 262 Hz
#: tone of 80 equal partials read an octave low).
ANALYSIS_BAND_HZ = 5000.0
#: The window's autocorrelation falls to nothing at half its length: lags beyond a third of it are not searched,
#: so the lowest pitch is three periods per window (65 Hz for 2048 samples at 44.1 kHz).
MAX_LAG_SHARE = 1.0 / 3.0
#: Voiced frames of a passage whose median pitch decides its octave (about 46 ms at a hop of 512 / 44.1 kHz).
DECISION_FRAMES = 4


@lru_cache(maxsize=8)
def _window_autocorrelation(n_fft: int) -> np.ndarray:
    """The analysis window's own autocorrelation, 1 at lag 0 (read-only: cached and shared)."""
    window = hann_window(n_fft)
    autocorrelation = np.fft.irfft(np.abs(np.fft.rfft(window, 2 * n_fft)) ** 2)[:n_fft]
    normalised = autocorrelation / autocorrelation[0]
    normalised.setflags(write=False)
    return normalised


@lru_cache(maxsize=8)
def _band(n_fft: int, rate: int) -> np.ndarray:
    """Weights on the STFT bins: 1 up to :data:`ANALYSIS_BAND_HZ`, 0 from twice that, a raised cosine between."""
    hz = np.arange(n_fft // 2 + 1) * rate / n_fft
    position = np.clip((hz - ANALYSIS_BAND_HZ) / ANALYSIS_BAND_HZ, 0.0, 1.0)
    weights = 0.5 + 0.5 * np.cos(np.pi * position)
    weights.setflags(write=False)
    return weights


def frame_pitch(spectra: np.ndarray, analysis: AnalysisConfig) -> np.ndarray:
    """``(n, n_bins)`` complex STFT frames → ``(n,)`` pitch as a MIDI number, NaN where a frame is unvoiced."""
    return frame_periodicity(spectra, analysis)[0]


def frame_periodicity(spectra: np.ndarray, analysis: AnalysisConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(n, n_bins)`` complex STFT frames → ``(n,)`` pitch (MIDI, NaN where unvoiced) and ``(n,)`` periodicity:
    the normalised autocorrelation's highest peak (1 for a steady periodic frame, under :data:`VOICING` where
    unvoiced, 0 for silence)."""
    n_fft, rate = analysis.n_fft, analysis.sample_rate
    spectra = np.asarray(spectra)
    pitch = np.full(len(spectra), np.nan)
    periodicity = np.zeros(len(spectra))
    if not len(spectra):
        return pitch, periodicity
    power = (spectra.real**2 + spectra.imag**2) * _band(n_fft, rate)
    lowest, highest = max(2, math.floor(rate / MAX_PITCH_HZ)), math.floor(n_fft * MAX_LAG_SHARE)
    autocorrelation = scipy.fft.irfft(power, n=n_fft, overwrite_x=True)[:, : highest + 2]
    _pick_periods(autocorrelation, _window_autocorrelation(n_fft), lowest, highest, float(rate), pitch, periodicity)
    return pitch, periodicity


@njit(cache=True)
def _peaks_at(normalised: np.ndarray, lag: int) -> bool:
    """Whether the normalised autocorrelation peaks at ``lag``: above the lag before, not below the lag after."""
    return normalised[lag] > normalised[lag - 1] and normalised[lag] >= normalised[lag + 1]


@njit(cache=True)
def _pick_periods(autocorrelation: np.ndarray, window_autocorrelation: np.ndarray, lowest: int, highest: int,
                  rate: float, pitch: np.ndarray, periodicity: np.ndarray) -> None:
    """Per frame: the autocorrelation over the window's own (Boersma), its peaks between lags ``lowest`` and
    ``highest``; ``periodicity`` the highest peak (0 if none is positive) and, where that is at least
    :data:`VOICING`, ``pitch`` (MIDI) from the shortest lag whose peak is within :data:`OCTAVE_TOLERANCE` of it,
    placed between lags by a parabola.  One pass per frame: the frame's per-call numpy steps cost more than the
    arithmetic (``frame_periodicity`` took 107 us a frame at 48 kHz)."""
    width = highest + 2
    normalised = np.empty(width)
    for row in range(autocorrelation.shape[0]):
        energy = autocorrelation[row, 0]
        for lag in range(width):
            normalised[lag] = autocorrelation[row, lag] / (energy * window_autocorrelation[lag]) if energy > 0 else 0.0
        best = -np.inf
        for lag in range(lowest, highest + 1):
            if _peaks_at(normalised, lag):
                best = max(best, normalised[lag])
        periodicity[row] = max(best, 0.0)
        if not best >= VOICING:
            continue
        for lag in range(lowest, highest + 1):  # the shortest lag near the best: there is one, the best's own
            if _peaks_at(normalised, lag) and normalised[lag] >= OCTAVE_TOLERANCE * best:
                before, at, after = normalised[lag - 1], normalised[lag], normalised[lag + 1]
                curvature = before - 2.0 * at + after
                offset = 0.5 * (before - after) / curvature if curvature < 0 else 0.0
                pitch[row] = 69.0 + 12.0 * math.log2(rate / (lag + offset) / 440.0)
                break


def octaves_into(pitch: float, low: float, high: float) -> int:
    """Semitones (whole octaves) that move ``pitch`` inside ``[low, high]`` with the fewest octaves; for a range
    narrower than an octave, nearest its middle."""
    if high - low < 12.0:
        return 12 * round(((low + high) / 2.0 - pitch) / 12.0)
    if pitch < low:
        return 12 * math.ceil((low - pitch) / 12.0)
    if pitch > high:
        return -12 * math.ceil((pitch - high) / 12.0)
    return 0


class RegisterFollower:
    """The octave shift of the current passage, from the frames' pitches and levels (chunked or whole: same)."""

    def __init__(self, low: float, high: float, frame_rate: float, gate_db: float, hold_s: float) -> None:
        if not low <= high:
            raise ValueError(f"a register's range needs low <= high, got {low} and {high}")
        self.low, self.high = float(low), float(high)
        self.gate = SoundingGate(frame_rate, gate_db)
        self.hold_frames = max(1, round(hold_s * frame_rate))
        self.reset()

    def reset(self) -> None:
        self.gate.reset()
        #: Semitones the current passage is moved by (a multiple of 12).
        self.shift = 0
        self._quiet_frames = self.hold_frames  # the first sound starts a passage
        self._heard: list[float] = []
        self._deciding = False

    @property
    def listening(self) -> bool:
        """Whether the next frame's pitch can matter: while a passage's octave is being decided, or when the next
        sound starts a passage.  Otherwise :meth:`update` reads levels only (the pitch may be NaN)."""
        return self._deciding or self._quiet_frames >= self.hold_frames

    def update(self, pitches: np.ndarray, levels_db: np.ndarray) -> int:
        """Feed ``n`` frames' pitches (MIDI, NaN unvoiced) and levels; return the shift after them."""
        sounding = self.gate(levels_db)
        for pitch, heard in zip(pitches, sounding, strict=True):
            if not heard:
                self._quiet_frames += 1
                continue
            if self._quiet_frames >= self.hold_frames:
                self._heard.clear()
                self._deciding = True
            self._quiet_frames = 0
            if self._deciding and math.isfinite(pitch):
                self._heard.append(float(pitch))
                if len(self._heard) == DECISION_FRAMES:
                    self.shift = octaves_into(float(np.median(self._heard)), self.low, self.high)
                    self._deciding = False
        return self.shift
