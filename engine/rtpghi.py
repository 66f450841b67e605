"""Real-time phase gradient heap integration (RTPGHI): phase for an STFT magnitude, no iterations.

Prusa & Holighaus 2017 ("A noniterative method for reconstruction of phase from STFT magnitude", the
real-time variant).  For a Gaussian window ``exp(-pi t^2 / gamma)`` the STFT phase gradient is a function
of the log-magnitude gradient; the Hann window is close to the Gaussian with ``gamma = 0.25645 n_fft^2``.
With ``a = hop``, ``N = n_fft``, ``L = log |S|`` and the phase taken relative to the window centre:

    time step (per hop):      dphi/dm = 2 pi a k / N + (a N / gamma) * dL/dk
    frequency step (per bin): dphi/dk = -(gamma / (a N)) * dL/dm

``dL/dm`` is a centred difference over frames ``m - 1, m + 1``: that is the one frame of look-ahead, so frame
``m`` is finalised when frame ``m + 1`` arrives.  Frame ``m``'s phase is then integrated from the previous
frame (trapezoid in time) and along frequency, visiting coefficients from the largest down (a max-heap),
so that phase flows from where it is reliable.  Coefficients below ``tol`` times the largest magnitude of
the three frames get a pseudo-random phase from a fixed seeded table indexed by the frame count, so
streaming and batch runs give identical output.

All per-frame work is in numba (`_run`), one call per push whatever the number of frames.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: ``gamma / n_fft^2`` of the Gaussian that best matches a Hann window (Prusa & Holighaus).
GAMMA_HANN = 0.25645
#: Frames in the table of random phases for negligible coefficients (cycled by frame count).
RANDOM_PHASE_PERIOD = 128
_TWO_PI = 2.0 * np.pi
_LOG_TINY = -700.0  # log of a magnitude that is exactly zero: below any tolerance floor


@njit(cache=True)
def _heap_push(values: np.ndarray, keys: np.ndarray, size: int, value: float, key: int) -> int:
    """Insert into a max-heap stored in ``values``/``keys``; returns the new size."""
    position = size
    values[position] = value
    keys[position] = key
    while position > 0:
        parent = (position - 1) // 2
        if values[parent] >= values[position]:
            break
        values[parent], values[position] = values[position], values[parent]
        keys[parent], keys[position] = keys[position], keys[parent]
        position = parent
    return size + 1


@njit(cache=True)
def _sift_down(values: np.ndarray, keys: np.ndarray, size: int, position: int) -> None:
    """Move the entry at ``position`` down until the max-heap order holds below it."""
    while True:
        left = 2 * position + 1
        if left >= size:
            return
        child = left
        if left + 1 < size and values[left + 1] > values[left]:
            child = left + 1
        if values[position] >= values[child]:
            return
        values[child], values[position] = values[position], values[child]
        keys[child], keys[position] = keys[position], keys[child]
        position = child


@njit(cache=True)
def _heap_pop(values: np.ndarray, keys: np.ndarray, size: int) -> tuple[int, int]:
    """Remove the largest entry; returns ``(its key, new size)``."""
    key = keys[0]
    size -= 1
    values[0] = values[size]
    keys[0] = keys[size]
    _sift_down(values, keys, size, 0)
    return key, size


@njit(cache=True)
def _finalise(
    mags: np.ndarray,
    logs: np.ndarray,
    phase: np.ndarray,
    tgrad: np.ndarray,
    random_phase: np.ndarray,
    tol: float,
    coef_time: float,
    coef_freq: float,
    bin_advance: np.ndarray,
    work: np.ndarray,
    heap_keys: np.ndarray,
    done: np.ndarray,
    out: np.ndarray,
) -> None:
    """Integrate the phase of frame ``mags[1]`` (``mags[0]`` before it, ``mags[2]`` after it).

    On return ``phase``/``tgrad`` hold frame 1's phase and time gradient (they held frame 0's) and ``out``
    its complex spectrum (window-start phase convention, as ``np.fft.rfft`` of a frame gives).
    """
    n_bins = mags.shape[1]
    peak = 0.0
    for row in range(3):
        for k in range(n_bins):
            peak = max(peak, mags[row, k])
    if peak <= 0.0:  # three silent frames: nothing to integrate, exact zeros out
        for k in range(n_bins):
            phase[k] = random_phase[k]
            tgrad[k] = bin_advance[k]
            out[k] = 0.0
        return
    threshold = tol * peak
    floor = np.log(threshold)
    fgrad = work[0]
    tgrad_new = work[1]
    phase_new = work[2]
    heap_values = work[3]
    for k in range(n_bins):
        below = max(logs[1, k - 1], floor) if k > 0 else max(logs[1, 1], floor)
        above = max(logs[1, k + 1], floor) if k < n_bins - 1 else max(logs[1, n_bins - 2], floor)
        tgrad_new[k] = bin_advance[k] + coef_time * 0.5 * (above - below)
        fgrad[k] = -coef_freq * 0.5 * (max(logs[2, k], floor) - max(logs[0, k], floor))
    remaining = 0
    for k in range(n_bins):
        if mags[1, k] < threshold:
            done[k] = True
            phase_new[k] = random_phase[k]
        else:
            done[k] = False
            remaining += 1
    size = 0
    heap_keys_main = heap_keys[0]
    for k in range(n_bins):
        if mags[0, k] >= threshold:
            size = _heap_push(heap_values, heap_keys_main, size, mags[0, k], k)
    seed_values = work[4]
    seed_keys = heap_keys[1]
    seed_size = -1  # the heap of seed candidates is built only if a frame needs one
    while remaining > 0:
        if size == 0:  # no reliable neighbour left: seed the largest unvisited bin from its own past
            if seed_size < 0:
                seed_size = 0
                for k in range(n_bins):
                    if not done[k]:
                        seed_values[seed_size] = mags[1, k]
                        seed_keys[seed_size] = k
                        seed_size += 1
                for position in range(seed_size // 2 - 1, -1, -1):
                    _sift_down(seed_values, seed_keys, seed_size, position)
            k, seed_size = _heap_pop(seed_values, seed_keys, seed_size)
            while done[k]:
                k, seed_size = _heap_pop(seed_values, seed_keys, seed_size)
            phase_new[k] = phase[k] + 0.5 * (tgrad[k] + tgrad_new[k])
            done[k] = True
            remaining -= 1
            size = _heap_push(heap_values, heap_keys_main, size, mags[1, k], n_bins + k)
            continue
        key, size = _heap_pop(heap_values, heap_keys_main, size)
        if key < n_bins:  # previous frame: step forward in time
            if not done[key]:
                phase_new[key] = phase[key] + 0.5 * (tgrad[key] + tgrad_new[key])
                done[key] = True
                remaining -= 1
                size = _heap_push(heap_values, heap_keys_main, size, mags[1, key], n_bins + key)
        else:  # current frame: step to the neighbouring bins
            k = key - n_bins
            if k + 1 < n_bins and not done[k + 1]:
                phase_new[k + 1] = phase_new[k] + 0.5 * (fgrad[k] + fgrad[k + 1])
                done[k + 1] = True
                remaining -= 1
                size = _heap_push(heap_values, heap_keys_main, size, mags[1, k + 1], key + 1)
            if k > 0 and not done[k - 1]:
                phase_new[k - 1] = phase_new[k] - 0.5 * (fgrad[k] + fgrad[k - 1])
                done[k - 1] = True
                remaining -= 1
                size = _heap_push(heap_values, heap_keys_main, size, mags[1, k - 1], key - 1)
    for k in range(n_bins):
        wrapped = phase_new[k] - _TWO_PI * np.floor(phase_new[k] / _TWO_PI)
        phase[k] = wrapped
        tgrad[k] = tgrad_new[k]
        # the gradients are for the phase at the window centre (n_fft / 2): shift to the frame start
        centre_shift = np.pi * k
        out[k] = mags[1, k] * np.exp(1j * (wrapped - centre_shift))


@njit(cache=True)
def _run(
    new_mags: np.ndarray,
    repeat_last: bool,
    mags: np.ndarray,
    logs: np.ndarray,
    phase: np.ndarray,
    tgrad: np.ndarray,
    counters: np.ndarray,
    random_phase: np.ndarray,
    tol: float,
    coef_time: float,
    coef_freq: float,
    bin_advance: np.ndarray,
    work: np.ndarray,
    heap_keys: np.ndarray,
    done: np.ndarray,
    out: np.ndarray,
) -> int:
    """Feed frames through the three-frame window, finalising one frame per frame fed after the first.

    ``counters = [pending, frames finalised so far]``.  With ``repeat_last`` (flush) the pending frame is
    fed again as its own look-ahead.  Returns how many rows of ``out`` were written.
    """
    n_out = 0
    n_feed = 1 if repeat_last else new_mags.shape[0]
    for index in range(n_feed):
        source = mags[1] if repeat_last else new_mags[index]
        for k in range(mags.shape[1]):
            mags[2, k] = source[k]
            logs[2, k] = np.log(source[k]) if source[k] > 0.0 else _LOG_TINY
        if counters[0] == 0:
            mags[1] = mags[2]
            logs[1] = logs[2]
            counters[0] = 1
            continue
        row = counters[1] % random_phase.shape[0]
        _finalise(mags, logs, phase, tgrad, random_phase[row], tol, coef_time, coef_freq, bin_advance,
                  work, heap_keys, done, out[n_out])
        counters[1] += 1
        n_out += 1
        mags[0] = mags[1]
        logs[0] = logs[1]
        mags[1] = mags[2]
        logs[1] = logs[2]
        if repeat_last:
            counters[0] = 0
    return n_out


class RTPGHI:
    """Streaming phase for STFT magnitudes, one frame of look-ahead.

    ``push(magnitudes)`` returns the complex spectra of the frames it can finalise: frame ``t`` is returned
    by the push that delivers frame ``t + 1`` (hence ``latency_frames = 1``); ``flush()`` finalises the
    pending frame, using it as its own look-ahead.  Magnitudes must be finite and non-negative (the
    caller, :mod:`engine.synth`, sanitises them).  Identical output for any chunking of the frames.
    """

    latency_frames = 1

    def __init__(self, n_fft: int, hop: int, tol: float = 1e-5, seed: int = 0) -> None:
        if not 0.0 < tol < 1.0:
            raise ValueError(f"tol must be in (0, 1), got {tol}")
        n_bins = n_fft // 2 + 1
        self.n_fft = n_fft
        self.hop = hop
        self.tol = tol
        gamma = GAMMA_HANN * n_fft**2
        self._coef_time = hop * n_fft / gamma
        self._coef_freq = gamma / (hop * n_fft)
        self._bin_advance = _TWO_PI * hop * np.arange(n_bins) / n_fft
        self._random_phase = np.random.default_rng(seed).uniform(0.0, _TWO_PI, (RANDOM_PHASE_PERIOD, n_bins))
        self._mags = np.zeros((3, n_bins))
        self._logs = np.zeros((3, n_bins))
        self._phase = np.zeros(n_bins)
        self._tgrad = np.zeros(n_bins)
        self._counters = np.zeros(2, dtype=np.int64)
        self._work = np.zeros((5, 2 * n_bins))
        self._heap_keys = np.zeros((2, 2 * n_bins), dtype=np.int64)
        self._done = np.zeros(n_bins, dtype=np.bool_)
        self._out = np.zeros((0, n_bins), dtype=np.complex128)
        self.reset()
        self._warm_up()

    def reset(self) -> None:
        """Forget all frames: the next frame follows silence."""
        self._mags[:] = 0.0
        self._logs[:] = _LOG_TINY
        self._phase[:] = 0.0
        self._tgrad[:] = self._bin_advance
        self._counters[:] = 0

    def push(self, magnitudes: np.ndarray) -> np.ndarray:
        """Add magnitude frames ``(n, n_bins)``; return the complex spectra finalised, ``(n or n - 1, n_bins)``."""
        magnitudes = np.ascontiguousarray(magnitudes, dtype=np.float64)
        out = self._output_buffer(len(magnitudes))
        n_out = _run(magnitudes, False, *self._state(), out)
        return out[:n_out].copy()

    def flush(self) -> np.ndarray:
        """Finalise the pending frame (if any) with no look-ahead; returns 0 or 1 spectra."""
        out = self._output_buffer(1)
        n_out = _run(self._mags[:0], True, *self._state(), out) if self._counters[0] else 0
        return out[:n_out].copy()

    def _state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, float,
                              float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``_run``'s arguments from ``mags`` to ``done``, in its order."""
        return (self._mags, self._logs, self._phase, self._tgrad, self._counters, self._random_phase, self.tol,
                self._coef_time, self._coef_freq, self._bin_advance, self._work, self._heap_keys, self._done)

    def _output_buffer(self, n_frames: int) -> np.ndarray:
        """Reuse one buffer across pushes (it only grows) so steady-state pushes allocate little."""
        if len(self._out) < n_frames:
            self._out = np.zeros((n_frames, self._out.shape[1]), dtype=np.complex128)
        return self._out

    def _warm_up(self) -> None:
        """Compile (or load from cache) the numba kernels now, not in the first audio callback."""
        tone = np.zeros((3, self._out.shape[1]))
        tone[:, 3:6] = [0.5, 1.0, 0.5]
        tone[:, 20] = 0.1
        self.push(tone)
        self.flush()
        self.reset()
