"""The streaming log-mel front end: audio blocks of any size in, model frames out.

``x = (log10(mel(|STFT|^2) + 1e-10) + 10) / 17`` per frame (docs/design.md section 1).  The batch function
(training's features) takes the filterbank's dense product; the streaming class its sparse one
(:func:`sparse_filterbank`): the same sums in another order, so a band may differ by an ulp of float32 (none did
in any frame of the speed benchmark's phrase at 44.1 or 48 kHz), and a stream's frame never reads the dense
matrix (1.1 MB at 48 kHz) through the cache that the model's weights need.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from engine.config import AnalysisConfig
from engine.mel import LOG_OFFSET, LOG_SCALE, power_to_x
from engine.sparse import SparseMatrix
from engine.stft import StreamingSTFT, stft


def spectra_to_frames(spectra: np.ndarray, config: AnalysisConfig) -> np.ndarray:
    """Complex STFT frames ``(n, n_bins)`` to model frames ``(n, n_mels)`` float32."""
    return power_to_frames(spectra.real**2 + spectra.imag**2, config)


def power_to_frames(power: np.ndarray, config: AnalysisConfig) -> np.ndarray:
    """STFT power frames ``(n, n_bins)`` to model frames ``(n, n_mels)`` float32 (for callers that need the
    power too), in the units of ``config``'s model (:meth:`AnalysisConfig.at_rate`)."""
    return mel_power_to_frames(power @ config.filterbank.T, config)


def mel_power_to_frames(mel_power: np.ndarray, config: AnalysisConfig) -> np.ndarray:
    """Mel power ``(n, n_mels)`` (``config.filterbank`` applied to STFT power, scaled here in place) to model
    frames float32, in the units of ``config``'s model."""
    if config.power_scale != 1.0:
        mel_power *= config.power_scale
    return power_to_x(mel_power).astype(np.float32)


@lru_cache(maxsize=8)
def sparse_filterbank(config: AnalysisConfig) -> SparseMatrix:
    """``config``'s mel filterbank as a sparse ``(n_bins, n_mels)`` matrix (1.4 % of it is non-zero), shared by
    every streaming user of one analysis."""
    return SparseMatrix(config.filterbank.T)


def log_mel(audio: np.ndarray, config: AnalysisConfig) -> np.ndarray:
    """Model frames of a whole signal (batch path), shape ``(n_frames, n_mels)``."""
    return spectra_to_frames(stft(audio, config.n_fft, config.hop), config)


def full_scale_db(config: AnalysisConfig) -> float:
    """Summed mel power (dB) of a full-scale sine: the 0 dB reference of :func:`frame_level_db`.

    Adjacent HTK triangles sum to one between band centres, so the summed mel power of a sine equals its
    one-sided windowed energy, ``3 n_fft^2 / 32`` for a periodic Hann window.
    """
    return float(10.0 * np.log10(3.0 * config.units_n_fft**2 / 32.0))


def frame_level_db(frames: np.ndarray, config: AnalysisConfig) -> np.ndarray:
    """Level of each model frame in dB relative to a full-scale sine (silence is about -160 dB).

    Computed from the frames alone, so offline evaluation and the live gate use the same number.
    """
    frames64 = np.asarray(frames, dtype=np.float64)
    peak = frames64.max(axis=-1, keepdims=True) if frames64.size else frames64
    # log-sum-exp in the power domain, anchored at the loudest band for numerical range
    summed = np.log10(np.sum(10.0 ** ((frames64 - peak) * LOG_SCALE), axis=-1)) + peak[..., 0] * LOG_SCALE
    return 10.0 * (summed - LOG_OFFSET) - full_scale_db(config)


class LogMelFrontEnd:
    """Streaming analysis: push audio at ``config``'s sample rate (the model's, or a host's through
    :meth:`AnalysisConfig.at_rate`), get the frames it completes.

    Also returns the complex spectra, which input-phase synthesis reuses.
    """

    def __init__(self, config: AnalysisConfig) -> None:
        self.config = config
        self._stft = StreamingSTFT(config.n_fft, config.hop)
        self._filterbank = sparse_filterbank(config)

    def reset(self) -> None:
        self._stft.reset()

    def push(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(frames (n, n_mels) float32, spectra (n, n_bins) complex)`` for the completed frames."""
        spectra = self._stft.push(samples)
        if not len(spectra):
            return np.empty((0, self.config.n_mels), dtype=np.float32), spectra
        power = self._filterbank.product(spectra.real**2 + spectra.imag**2)
        return mel_power_to_frames(power, self.config), spectra
