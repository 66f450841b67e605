"""The harmonic carrier: the target's envelope on an excitation of its own, played at the input's pitch.

The filter route (:mod:`engine.filterroute`) puts the target's envelope on the performer's own partials, so the
sound keeps the input's excitation: its balance of partials within each band, its noise, its attacks.  DDSP
(Engel et al. 2020) gives the target an excitation of its own instead: harmonics at the input's fundamental
plus filtered noise, driven by the input's pitch and loudness.  This carrier does that on the filter route:

- **pitch and voicing** per analysis frame from the frame's autocorrelation
  (:func:`engine.register.frame_periodicity`, computed from the spectra the front end already has).  Each new
  estimate takes over at the sample its frame completed and is reached by a glide over one hop (in log
  frequency), so the sound follows the input's pitch half a window and a hop late
  (:attr:`HarmonicExcitation.pitch_lag_samples`, 35 ms at the shipped models' analysis);
- **the excitation**: equal-amplitude harmonics up to :data:`TOP_HZ` (a bank of oscillators with Schroeder's
  phases, so the sum does not peak like a pulse train) mixed with white noise, the harmonic share following the
  frame's periodicity (:func:`harmonic_share`).  An unvoiced frame holds the last pitch and fades the harmonics
  out, and a voiced frame after silence starts at its own pitch: noise never bends into a note;
- **loudness**: the excitation's RMS follows the input's, sample by sample (two one-pole smoothers of the
  input's power, :data:`LEVEL_TIME_S` each, about twice that of mean delay), so attacks are not a window late;
- **the target's timbre**: the excitation is spectrally flat, so the filter of each frame is the rendered
  target's envelope itself (:meth:`HarmonicExcitation.gains`), scaled to pass a flat signal's power unchanged.

Transposition multiplies the fundamental (exact, no delay line), from the sample it is set on: the pitch being
played, and any glide under way, jump by the interval.  Every state advances per sample and every
event is placed by the sample count, so the output does not depend on the host's block size.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from engine.carrier import SMOOTHING_BANDS, X_TO_LOG10_AMPLITUDE, envelope_matrix, gated
from engine.config import AnalysisConfig
from engine.register import VOICING, frame_periodicity
from engine.sparse import SparseMatrix

#: Highest harmonic played (Hz), below the Nyquist frequency by :data:`NYQUIST_MARGIN` at low rates.  The top
#: quarter of the range fades out (raised cosine), so a harmonic entering or leaving as the pitch moves is not
#: a click.
TOP_HZ = 16000.0
NYQUIST_MARGIN = 0.9
#: The lowest fundamental whose harmonics the oscillator bank holds up to :data:`TOP_HZ`; below it (the tracker's
#: floor is 65 Hz, but a transposition goes lower) the harmonics stop, faded, where the bank does.  At and above
#: the top there are no harmonics at all: the excitation is its noise.
LOWEST_HZ = 30.0
#: Samples between recomputing the oscillators' rotations while the pitch glides (0.7 ms at 48 kHz: a glide of
#: an octave per second moves 0.8 cents within one).
CONTROL_SAMPLES = 32
#: Time constant of each of the two smoothers of the input's power that set the excitation's level.
LEVEL_TIME_S = 0.004
#: Periodicity at and above which a frame is all harmonics; between :data:`engine.register.VOICING` and this
#: the noise share grows to all noise.
FULLY_PERIODIC = 0.9
#: Share of a fully periodic frame's power given to noise all the same: the breath of a wind, the bow's hiss,
#: filling the valleys between the harmonics as every real instrument does.  Chosen on TimGM6mb phrases (the
#: transfer benchmark, honest judge, rotation model seed 0): 0 -> 26/65 heard as the target (flute as oboe,
#: clarinet as accordion), 0.01 -> 54, 0.03 -> 54, 0.1 -> 47, 0.3 -> 46.
VOICED_NOISE_SHARE = 0.03
#: Bits of the noise generator's state (xorshift64*): the same noise for the same samples, whatever the blocks.
NOISE_SEED = 0x9E3779B97F4A7C15


def harmonic_share(periodicity: np.ndarray) -> np.ndarray:
    """Share of the excitation's power in harmonics, from the frames' periodicity: 0 at or below
    :data:`engine.register.VOICING` (unvoiced), 1 from :data:`FULLY_PERIODIC`, linear between."""
    periodic = np.clip((np.asarray(periodicity) - VOICING) / (FULLY_PERIODIC - VOICING), 0.0, 1.0)
    return periodic * (1.0 - VOICED_NOISE_SHARE)


@njit(cache=True)
def _rotations(f0: float, rate: float, top: float, amplitude: np.ndarray, rot_re: np.ndarray,
               rot_im: np.ndarray) -> tuple[int, float]:
    """Per harmonic of ``f0``: its amplitude (1, faded over the top quarter up to ``top``) and one sample's
    rotation; returns how many harmonics sound and the norm that gives their sum unit RMS.

    Harmonic ``k``'s rotation is the fundamental's to the power ``k``, and the fade's cosine a cosine of a phase
    that grows by the same step per harmonic: both follow by complex multiplication from one harmonic to the next,
    four sines and cosines in all instead of three per harmonic (a glide recomputes them every
    :data:`CONTROL_SAMPLES`; the rounding this accumulates over 534 harmonics is about 1e-13)."""
    count = 0
    power = 0.0
    top = min(top, len(amplitude) * f0)  # a fundamental below LOWEST_HZ: as many harmonics as the bank holds
    fade_from = 0.75 * top
    angle = 2.0 * math.pi * f0 / rate
    step_re, step_im = math.cos(angle), math.sin(angle)
    re, im = step_re, step_im
    fade_step = math.pi * f0 / (top - fade_from)
    fade_step_re, fade_step_im = math.cos(fade_step), math.sin(fade_step)
    fade_re, fade_im = 1.0, 0.0  # the fade's phase at the harmonic where it starts (set there)
    fading = False
    for k in range(len(amplitude)):
        frequency = (k + 1) * f0
        if frequency >= top:
            break
        a = 1.0
        if frequency > fade_from:
            if not fading:
                phase = math.pi * (frequency - fade_from) / (top - fade_from)
                fade_re, fade_im, fading = math.cos(phase), math.sin(phase), True
            else:
                fade_re, fade_im = (fade_re * fade_step_re - fade_im * fade_step_im,
                                    fade_re * fade_step_im + fade_im * fade_step_re)
            a = 0.5 + 0.5 * fade_re
        amplitude[k] = a
        rot_re[k], rot_im[k] = re, im
        re, im = re * step_re - im * step_im, re * step_im + im * step_re
        power += 0.5 * a * a
        count += 1
    return count, 1.0 / math.sqrt(power) if power > 0.0 else 0.0


@njit(cache=True, fastmath=True)
def _oscillators(z_re: np.ndarray, z_im: np.ndarray, rot_re: np.ndarray, rot_im: np.ndarray,
                 amplitude: np.ndarray, count: int) -> float:
    """One sample of the bank: the weighted sum of the harmonics' real parts, then each turned by its rotation
    (independent oscillators, so the loop vectorises)."""
    total = 0.0
    for k in range(count):
        re, im = z_re[k], z_im[k]
        total += amplitude[k] * re
        z_re[k] = re * rot_re[k] - im * rot_im[k]
        z_im[k] = re * rot_im[k] + im * rot_re[k]
    return total


@njit(cache=True, fastmath=True)
def _renormalise(z_re: np.ndarray, z_im: np.ndarray, count: int) -> None:
    """Put the ``count`` oscillators that have been turning back on the unit circle (rounding drifts a radius
    over millions of turns; the others stand still).  The radius stays within ~1e-13 of 1 between calls, so one
    Newton step for ``1 / radius`` (``(3 - r^2) / 2``) is exact to ~1e-26 and needs no square root or division:
    the loop vectorises."""
    for k in range(count):
        factor = 1.5 - 0.5 * (z_re[k] * z_re[k] + z_im[k] * z_im[k])
        z_re[k] *= factor
        z_im[k] *= factor


@njit(cache=True)
def _noise(state: np.ndarray) -> float:
    """One sample of white noise of unit RMS (uniform, xorshift64*); ``state[0]`` holds the generator."""
    x = state[0]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    state[0] = x
    uniform = float((x * np.uint64(2685821657736338717)) >> np.uint64(11)) / 9007199254740992.0
    return math.sqrt(3.0) * (2.0 * uniform - 1.0)


@njit(cache=True)
def _excite(block: np.ndarray, event_at: np.ndarray, event_f0: np.ndarray, event_share: np.ndarray,
            glide_samples: int, rate: float, top: float, level_coefficient: float, control: np.ndarray,
            z_re: np.ndarray, z_im: np.ndarray, rot_re: np.ndarray, rot_im: np.ndarray, amplitude: np.ndarray,
            noise_state: np.ndarray, out: np.ndarray) -> None:
    """The excitation for ``block``.  At ``event_at[i]`` a frame's estimate takes over: glide to ``event_f0[i]``
    (Hz; 0 holds the pitch) and to the harmonic share ``event_share[i]`` over ``glide_samples``.  ``control``
    carries the state between blocks: f0, its per-sample factor, glide samples left, share, its per-sample step,
    the two power smoothers, samples to the next rotation update, harmonics sounding and their norm, and the share
    the ramp ends at."""
    f0, f0_step, gliding, share, share_step = control[0], control[1], control[2], control[3], control[4]
    power_1, power_2, until_update, count, norm = control[5], control[6], control[7], int(control[8]), control[9]
    share_target = control[10]
    event = 0
    harmonic_gain, noise_gain = math.sqrt(share), math.sqrt(1.0 - share)
    for n in range(len(block) + 1):  # an event at len(block) takes over from the next block's first sample
        while event < len(event_at) and event_at[event] == n:
            target_f0, target_share = event_f0[event], event_share[event]
            if target_f0 > 0.0 and (f0 <= 0.0 or share < 1e-3):  # from silence or noise: start at the pitch
                f0, f0_step, gliding = target_f0, 1.0, 0.0
                until_update = 0.0
            elif target_f0 > 0.0:
                f0_step = math.exp(math.log(target_f0 / f0) / glide_samples)
                gliding = float(glide_samples)
                until_update = 0.0
            share_step = (target_share - share) / glide_samples
            share_target = target_share
            event += 1
        if n == len(block):
            break
        if gliding > 0.0:
            f0 *= f0_step
            gliding -= 1.0
            if gliding <= 0.0:
                f0_step = 1.0
        if share_step != 0.0:
            share += share_step
            if (share_step > 0.0 and share >= share_target) or (share_step < 0.0 and share <= share_target):
                share, share_step = share_target, 0.0
            harmonic_gain, noise_gain = math.sqrt(max(share, 0.0)), math.sqrt(max(1.0 - share, 0.0))
        if until_update <= 0.0:
            _renormalise(z_re, z_im, count)
            count, norm = _rotations(f0, rate, top, amplitude, rot_re, rot_im) if f0 > 0.0 else (0, 0.0)
            until_update = float(CONTROL_SAMPLES) if gliding > 0.0 else 1e18
        until_update -= 1.0
        x = float(block[n])
        power_1 += level_coefficient * (x * x - power_1)
        power_2 += level_coefficient * (power_1 - power_2)
        harmonics = _oscillators(z_re, z_im, rot_re, rot_im, amplitude, count) * norm if count else 0.0
        out[n] = math.sqrt(max(power_2, 0.0)) * (harmonic_gain * harmonics + noise_gain * _noise(noise_state))
    control[0], control[1], control[2], control[3], control[4] = f0, f0_step, gliding, share, share_step
    control[5], control[6], control[7], control[8], control[9] = power_1, power_2, until_update, count, norm
    control[10] = share_target


class HarmonicExcitation:
    """Host blocks in, the excitation at the input's pitch and loudness out; the target's envelope as gains."""

    def __init__(self, analysis: AnalysisConfig) -> None:
        self.analysis = analysis
        rate = float(analysis.sample_rate)
        self._top = min(TOP_HZ, NYQUIST_MARGIN * rate / 2.0)
        size = math.ceil(self._top / LOWEST_HZ)
        phases = math.pi * np.arange(size) * np.arange(1, size + 1) / size  # Schroeder: a low crest factor
        self._initial = (np.cos(phases), np.sin(phases))
        self._rot_re, self._rot_im, self._amplitude = np.zeros(size), np.zeros(size), np.zeros(size)
        self._level_coefficient = 1.0 - math.exp(-1.0 / (LEVEL_TIME_S * rate))
        self._envelope = SparseMatrix(envelope_matrix(analysis, SMOOTHING_BANDS))
        self._to_natural = X_TO_LOG10_AMPLITUDE * math.log(10.0)
        self._harmonic_bin_count = int(np.count_nonzero(np.arange(analysis.n_bins) * rate / analysis.n_fft < self._top))
        self._no_events = np.zeros(0)
        self._transpose, self._ratio = 0.0, 1.0
        self.reset()
        # compile and warm every path now, not in the first audio callback: an event, its pitch analysis, the gains
        self.push(np.zeros(2, dtype=np.float32), [1], np.zeros((1, analysis.n_bins), dtype=complex))
        self.gains(np.zeros((1, analysis.n_mels)), 1.0)
        self.reset()

    @property
    def pitch_lag_samples(self) -> int:
        """How late the played pitch follows the input's: a frame's estimate describes its window's centre, half a
        window before the frame completes, and is reached a hop after that."""
        return self.analysis.n_fft // 2 + self.analysis.hop

    def reset(self) -> None:
        self._z_re, self._z_im = self._initial[0].copy(), self._initial[1].copy()
        self._control = np.zeros(11)
        self._noise_state = np.array([NOISE_SEED], dtype=np.uint64)

    @property
    def transpose(self) -> float:
        """Semitones the played pitch is moved by (the filter, the target's body, stays put)."""
        return self._transpose

    @transpose.setter
    def transpose(self, semitones: float) -> None:
        """Moves the pitch being played, and a glide under way, from the next sample on; later frames' pitches
        come moved."""
        self._transpose = float(semitones)
        ratio = 2.0 ** (self._transpose / 12.0)
        self._control[0] *= ratio / self._ratio  # f0; a glide multiplies it on towards its target, moved alike
        self._control[7] = 0.0  # the oscillators' rotations are recomputed at the next sample
        self._ratio = ratio

    def push(self, block: np.ndarray, offsets: list[int], spectra: np.ndarray) -> np.ndarray:
        """The excitation for ``block`` (float64 out).  ``offsets``: where in the block each newly completed frame
        completed; ``spectra``: those frames' STFT frames, whose pitch and periodicity take over there."""
        if len(offsets):
            pitch, periodicity = frame_periodicity(spectra, self.analysis)
            hz = np.where(np.isnan(pitch), 0.0, 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)) * self._ratio
            share = harmonic_share(periodicity)
        else:  # most blocks complete no frame: no analysis to run
            hz = share = self._no_events
        out = np.empty(len(block))
        _excite(np.asarray(block, dtype=np.float64), np.asarray(offsets, dtype=np.int64), hz, share,
                self.analysis.hop, float(self.analysis.sample_rate), self._top,
                self._level_coefficient, self._control, self._z_re, self._z_im, self._rot_re, self._rot_im,
                self._amplitude, self._noise_state, out)
        return out

    def gains(self, target_x: np.ndarray, gate_x: float) -> np.ndarray:
        """Per-bin amplitude factors ``(n, n_bins)``: the rendered target's smoothed envelope, scaled so that a
        flat signal's power within the harmonics' band passes unchanged; zero for a frame under ``gate_x`` or
        holding NaN (silence)."""
        log_gains = self._envelope.product(target_x) * self._to_natural
        log_gains -= log_gains.max(axis=1, keepdims=True) if len(log_gains) else 0.0
        gains = np.exp(log_gains)
        harmonic = gains[:, : self._harmonic_bin_count]  # the bins below the top harmonic: a prefix, a view
        power = np.einsum("ij,ij->i", harmonic, harmonic)[:, None] / self._harmonic_bin_count
        gains /= np.sqrt(np.maximum(power, 1e-30))
        gains[gated(target_x, gate_x)] = 0.0
        return gains
