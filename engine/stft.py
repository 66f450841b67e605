"""Streaming short-time Fourier analysis and overlap-add synthesis.

Frames are *not* centred: frame ``t`` covers samples ``[t * hop, t * hop + n_fft)``, so it can be emitted
as soon as its last sample arrives and needs no future audio.  The streaming classes accept blocks of any
length and give exactly what the batch functions give on the concatenated signal (same arithmetic,
frame by frame), which is what the streaming/batch parity tests rely on.
"""

from __future__ import annotations

import numpy as np
import scipy.fft


def hann_window(n_fft: int) -> np.ndarray:
    """Periodic Hann window (the STFT convention used by librosa and torch)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)


def synthesis_window(n_fft: int, hop: int) -> np.ndarray:
    """Window that makes Hann analysis + overlap-add an identity (weighted overlap-add).

    It is the analysis window divided by the periodic sum of squared analysis windows at this hop.
    """
    if n_fft % hop:
        raise ValueError(f"n_fft ({n_fft}) must be a multiple of hop ({hop}) for overlap-add synthesis")
    window = hann_window(n_fft)
    overlap = (window**2).reshape(n_fft // hop, hop).sum(axis=0)
    return window / np.tile(overlap, n_fft // hop)


def frame_signal(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """All complete frames of a 1-D signal, shape ``(n_frames, n_fft)`` (a strided view, no copy)."""
    if len(audio) < n_fft:
        return np.zeros((0, n_fft), dtype=audio.dtype)
    return np.lib.stride_tricks.sliding_window_view(audio, n_fft)[::hop]


def stft(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Batch STFT of a whole signal, complex, shape ``(n_frames, n_fft // 2 + 1)``."""
    frames = frame_signal(np.asarray(audio, dtype=np.float64), n_fft, hop)
    return scipy.fft.rfft(frames * hann_window(n_fft), axis=-1, overwrite_x=True)


class StreamingSTFT:
    """Emits the STFT frames of a signal that arrives in blocks of any size.

    Holds the last ``n_fft`` samples; each call returns the frames completed by that block (possibly
    none), identical to :func:`stft` on the whole signal.
    """

    def __init__(self, n_fft: int, hop: int) -> None:
        if not 0 < hop <= n_fft:
            raise ValueError(f"hop must be in 1..n_fft, got hop={hop}, n_fft={n_fft}")
        self.n_fft = n_fft
        self.hop = hop
        self._window = hann_window(n_fft)
        self._buffer = np.zeros(n_fft, dtype=np.float64)
        self._filled = 0

    def reset(self) -> None:
        self._buffer[:] = 0.0
        self._filled = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add samples; return the complex spectra of the frames they complete."""
        n_fft, hop = self.n_fft, self.hop
        n_new = (self._filled + len(samples) - n_fft) // hop + 1 if self._filled + len(samples) >= n_fft else 0
        frames = np.empty((max(n_new, 0), n_fft), dtype=np.float64)
        position = 0
        emitted = 0
        while position < len(samples):
            take = min(n_fft - self._filled, len(samples) - position)
            self._buffer[self._filled : self._filled + take] = samples[position : position + take]
            self._filled += take
            position += take
            if self._filled == n_fft:
                frames[emitted] = self._buffer
                emitted += 1
                self._buffer[: n_fft - hop] = self._buffer[hop:]
                self._filled = n_fft - hop
        if not emitted:  # most blocks under a hop complete no frame: no FFT call for nothing
            return np.empty((0, n_fft // 2 + 1), dtype=np.complex128)
        return scipy.fft.rfft(frames[:emitted] * self._window, axis=-1, overwrite_x=True)


def istft(spectra: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Batch weighted overlap-add of complex frames; returns ``n_frames * hop`` samples.

    Sample block ``t`` (``[t * hop, (t + 1) * hop)``) is complete once frame ``t`` is added, which is what
    :class:`StreamingISTFT` returns per frame; the tail that later frames would complete is dropped.
    """
    stream = StreamingISTFT(n_fft, hop)
    return stream.push(spectra)


class StreamingISTFT:
    """Overlap-add synthesis, one ``hop`` of finished output per input frame.

    With input phase and unmodified magnitudes it reconstructs the analysed signal exactly (after the
    first ``n_fft - hop`` samples, where fewer frames overlap).
    """

    def __init__(self, n_fft: int, hop: int) -> None:
        self.n_fft = n_fft
        self.hop = hop
        self._window = synthesis_window(n_fft, hop)
        self._accumulator = np.zeros(n_fft, dtype=np.float64)

    def reset(self) -> None:
        self._accumulator[:] = 0.0

    def push(self, spectra: np.ndarray) -> np.ndarray:
        """Add complex frames ``(n, n_fft // 2 + 1)``; return the ``n * hop`` samples they complete."""
        hop = self.hop
        out = np.empty(len(spectra) * hop, dtype=np.float64)
        if len(spectra) == 0:
            return out
        frames = scipy.fft.irfft(spectra, n=self.n_fft, axis=-1) * self._window
        accumulator = self._accumulator
        for index, frame in enumerate(frames):
            accumulator += frame
            out[index * hop : (index + 1) * hop] = accumulator[:hop]
            accumulator[:-hop] = accumulator[hop:]
            accumulator[-hop:] = 0.0
        return out
