"""The mel scale, the filterbank and Protophone's log-spectrogram units.

Everything here is plain numpy (float64) so that the streaming front end, the model's pitch warp and the
synthesis can share one definition of the frequency axis.  The filterbank reproduces
``librosa.filters.mel(htk=True, norm=None)`` exactly (tested): triangular filters on the HTK mel scale,
no area normalisation, spanning ``f_min .. f_max``.
"""

from __future__ import annotations

import numpy as np

#: ``x = (log10(M + LOG_FLOOR) + LOG_OFFSET) / LOG_SCALE``: one unit of x is 170 dB, silence is 0.
LOG_FLOOR = 1e-10
LOG_OFFSET = 10.0
LOG_SCALE = 17.0


def hz_to_mel(frequency_hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: ``2595 * log10(1 + f / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(frequency_hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_edges_hz(n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """The ``n_mels + 2`` equally mel-spaced edge frequencies; band ``j`` peaks at ``edges[j + 1]``."""
    return mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))


def band_centres_hz(n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """Centre (peak) frequency of each mel band."""
    return mel_edges_hz(n_mels, f_min, f_max)[1:-1]


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int = 128, f_min: float = 0.0, f_max: float | None = None
) -> np.ndarray:
    """Triangular HTK mel filterbank, shape ``(n_mels, n_fft // 2 + 1)``, unnormalised.

    Same construction as librosa's so that features computed here match librosa to float precision.
    """
    f_max = sample_rate / 2.0 if f_max is None else f_max
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = mel_edges_hz(n_mels, f_min, f_max)
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    return np.maximum(0.0, np.minimum(lower, upper))


def power_to_x(mel_power: np.ndarray) -> np.ndarray:
    """Mel power to Protophone units (silence ~0, a loud note ~0.7)."""
    return (np.log10(mel_power + LOG_FLOOR) + LOG_OFFSET) / LOG_SCALE


def x_to_db(x: np.ndarray | float) -> np.ndarray:
    """Log-mel units in dB of mel power (``10 log10 M``; the floor's own level is -100 dB)."""
    return 10.0 * (np.asarray(x, dtype=np.float64) * LOG_SCALE - LOG_OFFSET)


def x_to_power(x: np.ndarray) -> np.ndarray:
    """Inverse of :func:`power_to_x` (clipped at zero power)."""
    return np.maximum(10.0 ** (np.asarray(x, dtype=np.float64) * LOG_SCALE - LOG_OFFSET) - LOG_FLOOR, 0.0)
