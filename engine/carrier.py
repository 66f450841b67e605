"""The input as carrier: the performer's own harmonics, reshaped to the target prototype's spectral envelope.

A learned prototype is one mel frame, averaged over many notes: its shape across the bands is the
instrument's spectral envelope, but it holds no harmonics, and the predictor's pitch shift does not track
the played note (measured on TimGM6mb notes: the winner's reference pitch plus its shift is within half a
semitone of the played note in 5 % of frames).  Heard directly (carrier ``"prototype"``), a rendered
prototype therefore has no clear pitch: pyin called 10-80 % of the frames voiced and missed the melody by a
median 1000-1700 cents.

With carrier ``"input"`` the rendered target frame only shapes the sound.  Per frame, with ``E`` a
spectral envelope (the log-mel frame smoothed over ``smoothing_bands`` bands and interpolated onto the
STFT bins)::

    |Y| = |X| * clip(E_target / E_input, -max_cut_db, +max_boost_db)

so the input's partials, and with them its pitch and vibrato, stay where they are while their levels
follow the target's envelope and the winner's shelves; each frame then gets the input frame's power back
(raised by at most ``max_level_boost_db``), so the output plays as loud as the input.  Measured against
the prototype carrier on the same 26 phrases per target (benchmarks/transfer.py, five targets), it kept
the melody (median pitch error 0-10 cents, 87-99 % voiced) and the independent CNN named it the target as
often on average (62 % against 62 %: more for violin, flute and trumpet, less for cello and clarinet).

``transpose`` moves the carrier's partials by ``r = 2 ** (semitones / 12)`` before the target envelope is
applied, so the envelope stays put, as an instrument's body resonances do when it plays higher.  Each
spectral peak is translated with its whole lobe and skirt so that its peak ``p`` lands on
``p * r`` (Laroche & Dolson 1999): stretching the spectrum instead widens every lobe by ``r``, and RTPGHI,
which reads instantaneous frequency off the lobe's shape, then rebuilt an octave-up sine as a cluster of
wrong partials (measured).  Its phase must come from RTPGHI: the input's phase belongs to the untransposed
partials.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numba import njit

from engine.config import AnalysisConfig
from engine.frontend import mel_power_to_frames, sparse_filterbank
from engine.mel import LOG_SCALE
from engine.sparse import SparseMatrix

#: Envelope smoothing across mel bands: wide enough to hide the harmonics that the low bands resolve.
SMOOTHING_BANDS = 5
#: Largest boost and cut of the input's spectrum.  Boosting matters (a cello's low register raised under a
#: flute's partials): limited to +12 dB the CNN named 19 % of the cello transfers cello, 81 % at +45 dB.
#: Where the input has no partial at all, the boost lifts the window's skirt and the noise floor instead;
#: sines, sawtooths and squares through the violin preset still kept their pitch (pyin, 196-587 Hz).
MAX_BOOST_DB = 45.0
MAX_CUT_DB = 45.0
#: Each output frame gets the input frame's power back, raised by at most this much: reshaping mostly cuts
#: (the demo's cello through the violin envelope came out 25 dB under the input without it).
MAX_LEVEL_BOOST_DB = 24.0
#: x units -> log10 of amplitude (x is log10 power over LOG_SCALE; amplitude is its square root).
X_TO_LOG10_AMPLITUDE = LOG_SCALE / 2.0


@njit(cache=True)
def _peak_position(row: np.ndarray, peak: int) -> float:
    """The peak's position between bins: a parabola through the log magnitudes around it."""
    if peak == 0 or peak == len(row) - 1 or row[peak - 1] <= 0.0 or row[peak + 1] <= 0.0:
        return float(peak)
    below, top, above = np.log(row[peak - 1]), np.log(row[peak]), np.log(row[peak + 1])
    curvature = below - 2.0 * top + above
    return peak + 0.5 * (below - above) / curvature if curvature < 0.0 else float(peak)


@njit(cache=True)
def _is_peak(row: np.ndarray, bin_: int) -> bool:
    """A main lobe's top: above both neighbours and not below the next ones.  A Hann window's side lobes
    sit one bin apart on a skirt that falls away from the main lobe, so they fail the second test and
    travel with their main lobe instead of being moved as partials of their own."""
    value = row[bin_]
    if value <= 0.0:
        return False
    for offset in (-2, -1, 1, 2):
        other = bin_ + offset
        if 0 <= other < len(row):
            if abs(offset) == 1 and row[other] >= value:
                return False
            if abs(offset) == 2 and row[other] > value:
                return False
    return True


@njit(cache=True)
def _translate_peaks(magnitude: np.ndarray, ratio: float, out: np.ndarray) -> None:
    """``out`` = each frame of ``magnitude`` with every peak's lobe moved so that its peak ``p`` (located
    between bins) lands on ``p * ratio``, shape kept (fractional moves split between two bins).  A lobe
    runs from the lowest bin between it and the peak below to the lowest bin between it and the next."""
    n_frames, n_bins = magnitude.shape
    out[:] = 0.0
    peaks = np.empty(n_bins, dtype=np.int64)
    for frame in range(n_frames):
        row = magnitude[frame]
        count = 0
        for bin_ in range(n_bins):
            if _is_peak(row, bin_):
                peaks[count] = bin_
                count += 1
        start = 0
        for index in range(count):
            peak = peaks[index]
            end = n_bins - 1
            if index + 1 < count:
                end = peak + int(np.argmin(row[peak : peaks[index + 1] + 1]))
            shift = _peak_position(row, peak) * (ratio - 1.0)
            for source in range(start, end + 1):
                position = source + shift
                low = int(np.floor(position))
                upper_weight = position - low
                if 0 <= low < n_bins:
                    out[frame, low] += row[source] * (1.0 - upper_weight)
                if 0 <= low + 1 < n_bins:
                    out[frame, low + 1] += row[source] * upper_weight
            start = end + 1


def gated(target_x: np.ndarray, gate_x: float) -> np.ndarray:
    """Which rendered target frames are silence: every band under ``gate_x``, or holding NaN (``(n,)`` bool)."""
    return ~(np.max(target_x, axis=1) >= gate_x)


@lru_cache(maxsize=8)
def envelope_matrix(config: AnalysisConfig, smoothing_bands: int) -> np.ndarray:
    """``(n_mels, n_bins)``: x frames -> smoothed envelope on the STFT bins (x units), read-only, cached.

    A moving average over ``smoothing_bands`` bands (renormalised at the edges), then linear
    interpolation between band centres; bins below the first or above the last centre take its value.
    """
    n_mels = config.n_mels
    half = smoothing_bands // 2
    smoothing = np.zeros((n_mels, n_mels))
    for band in range(n_mels):
        low, high = max(0, band - half), min(n_mels, band + half + 1)
        smoothing[band, low:high] = 1.0 / (high - low)
    centres = config.band_centres_hz
    bins_hz = np.arange(config.n_bins) * config.sample_rate / config.n_fft
    upper = np.clip(np.searchsorted(centres, bins_hz), 1, n_mels - 1)
    fraction = np.clip((bins_hz - centres[upper - 1]) / (centres[upper] - centres[upper - 1]), 0.0, 1.0)
    interpolation = np.zeros((config.n_bins, n_mels))
    rows = np.arange(config.n_bins)
    interpolation[rows, upper - 1] = 1.0 - fraction
    interpolation[rows, upper] += fraction
    matrix = np.ascontiguousarray((interpolation @ smoothing).T)
    matrix.setflags(write=False)
    return matrix


@njit(cache=True)
def _exp_clipped(log_ratio: np.ndarray, low: float, high: float, scale: float, silent: np.ndarray) -> None:
    """In place: ``exp(scale * clip(log_ratio, low, high))`` per bin, every bin of a ``silent`` frame zero."""
    for t in range(log_ratio.shape[0]):
        for b in range(log_ratio.shape[1]):
            log_ratio[t, b] = 0.0 if silent[t] else math.exp(scale * min(max(log_ratio[t, b], low), high))


@njit(cache=True)
def _level_matched(shaping: np.ndarray, magnitude: np.ndarray, input_power: np.ndarray, limit: float) -> None:
    """In place: each frame of ``shaping`` scaled so that ``magnitude * shaping`` has the frame's
    ``input_power``, by a power factor of at most ``limit`` (a silent output stays silent)."""
    for t in range(shaping.shape[0]):
        output_power = 0.0
        for b in range(shaping.shape[1]):
            output_power += (magnitude[t, b] * shaping[t, b]) ** 2
        if output_power == 0.0:
            ratio = 0.0
        elif output_power * limit <= input_power[t]:  # no division that overflows
            ratio = limit
        else:
            ratio = input_power[t] / output_power
        level = math.sqrt(ratio)
        for b in range(shaping.shape[1]):
            shaping[t, b] *= level


class InputCarrier:
    """Rendered target x frames + the input's STFT frames -> output magnitudes ``(n, n_bins)``."""

    def __init__(self, config: AnalysisConfig, smoothing_bands: int = SMOOTHING_BANDS,
                 max_boost_db: float = MAX_BOOST_DB, max_cut_db: float = MAX_CUT_DB,
                 max_level_boost_db: float = MAX_LEVEL_BOOST_DB, gate_x: float = 0.05) -> None:
        self.config = config
        self._max_level_factor = 10.0 ** (max_level_boost_db / 20.0)
        self.gate_x = gate_x
        self._envelope = SparseMatrix(envelope_matrix(config, smoothing_bands))
        self._filterbank = sparse_filterbank(config)  # the front end's, for the input's own frames
        to_x = 1.0 / 20.0 / X_TO_LOG10_AMPLITUDE  # dB of amplitude -> x units
        self._log_ratio_range = (-max_cut_db * to_x, max_boost_db * to_x)
        self.transpose = 0.0
        _translate_peaks(np.zeros((1, 4)), 1.0, np.empty((1, 4)))  # compile now, not when a transposition starts
        self._carried(np.zeros((1, config.n_mels), dtype=np.float32), np.zeros((1, config.n_bins), dtype=complex))

    @property
    def transpose(self) -> float:
        return self._transpose

    @transpose.setter
    def transpose(self, semitones: float) -> None:
        """Precompute the envelope's resampling for ``semitones`` (assigned whole: safe between blocks)."""
        self._transpose = float(semitones)
        if self._transpose == 0.0:
            self._shift = None
            return
        ratio = 2.0 ** (self._transpose / 12.0)
        source = np.arange(self.config.n_bins) / ratio
        low = np.minimum(np.floor(source).astype(np.int64), self.config.n_bins - 2)
        self._shift = (ratio, low, (source - low)[None, :], source <= self.config.n_bins - 1)

    def __call__(self, target_x: np.ndarray, input_spectra: np.ndarray) -> np.ndarray:
        """Magnitudes of the output frames; a target frame with every band under the gate, or holding NaN, is
        silence."""
        magnitude, gains = self._carried(target_x, input_spectra)
        return magnitude * gains

    def gains(self, target_x: np.ndarray, input_spectra: np.ndarray) -> np.ndarray:
        """Per-bin amplitude factors ``(n, n_bins)`` that turn the input's frames, their partials moved by the
        transposition, into this carrier's output: what :mod:`engine.filterroute` applies to the (moved)
        audio as a filter."""
        return self._carried(target_x, input_spectra)[1]

    def _carried(self, target_x: np.ndarray, input_spectra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The input's magnitudes with their partials moved by the transposition, and the gains that put the
        target's envelope on them at the input frame's power."""
        input_power = input_spectra.real**2 + input_spectra.imag**2
        magnitude = np.sqrt(input_power)
        input_frames = mel_power_to_frames(self._filterbank.product(input_power), self.config)
        input_envelope = self._envelope.product(input_frames)
        if self._shift is not None:  # the partials move, and with them the envelope they were measured under
            moved = np.empty_like(magnitude)
            _translate_peaks(magnitude, self._shift[0], moved)
            magnitude = moved
            input_envelope = self._resampled(input_envelope)
        gains = self._shaping(target_x, input_envelope)
        _level_matched(gains, magnitude, input_power.sum(axis=1), self._max_level_factor**2)
        return magnitude, gains

    def _shaping(self, target_x: np.ndarray, input_envelope: np.ndarray) -> np.ndarray:
        """Per-bin factors that put the target's envelope in place of the input's (clipped), zero for a
        target frame under the gate or holding NaN."""
        shaping = self._envelope.product(target_x) - input_envelope
        silent = gated(target_x, self.gate_x)
        _exp_clipped(shaping, *self._log_ratio_range, X_TO_LOG10_AMPLITUDE * math.log(10.0), silent)
        return shaping

    def _resampled(self, envelope: np.ndarray) -> np.ndarray:
        """A smooth ``envelope`` stretched along the bins by the transposition ratio (zero beyond the top)."""
        assert self._shift is not None  # called only while transposing
        _, low, fraction, inside = self._shift
        moved = envelope[:, low] * (1.0 - fraction) + envelope[:, low + 1] * fraction
        return moved * inside
