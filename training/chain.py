"""The recording chain between an instrument and a microphone, applied to log-mel training crops.

Three sample libraries are three recordings of each instrument: a model trained on them also learns each
library's level, equalisation, band limit and (absent) room, and meets all of these changed on sound it
never heard (docs/design.md section 6).  This module draws a different chain for every training crop.

Every effect acts on the mel *power* ``M`` behind ``x`` (:func:`engine.mel.x_to_power`), where it is a
few tensor operations instead of an STFT per crop:

- level and equalisation multiply each band's power by ``|H(f_band)|^2``: exact for a filter that is
  smooth across a band (tilts, resonances an octave wide, a band limit);
- additive noise adds its band power: exact in expectation;
- another instrument body: the crop's own long-term spectral envelope moved up or down the frequency axis
  while its partials stay put (a larger or smaller instrument of the same kind, as a maker's violin differs
  from another's), as the EQ that turns the envelope into the moved one;
- a room with a diffuse, exponentially decaying tail (the noise-decay model of an impulse response)
  convolves each band's power envelope over time with the tail's energy envelope: exact in expectation
  for a random-phase tail.  Decay times shorten with frequency, as air absorption makes them.

``tests/test_chain.py`` checks the first and the last claim against audio filtered and reverberated for
real.  Each part has its own probability or range, so an ablation can switch on one part at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from engine.config import AnalysisConfig
from engine.mel import LOG_FLOOR, LOG_OFFSET, LOG_SCALE

#: Energy decays by 60 dB (a factor 1e6) over RT60: ``exp(-ln(1e6) t / RT60)``.
LN_MILLION = math.log(1e6)
#: Frequency (Hz) at which the decay time of a room is half its low-frequency value (air absorption).
HALF_DECAY_HZ = 6000.0
#: Resonances are Gaussian bumps over log-frequency, this many octaves wide (standard deviation) at most.
MAX_RESONANCE_OCTAVES = 0.5
#: A band limit rolls off this steeply above its cutoff, like the anti-aliasing filter of a low-rate sample.
LOWPASS_DB_PER_OCTAVE = 48.0
LOWPASS_RANGE_HZ = (4000.0, 16000.0)
#: Noise colour: power spectral density slope in dB per octave, white (0) to brown (-6).
NOISE_SLOPE_DB_PER_OCTAVE = (-6.0, 0.0)
PIVOT_HZ = 1000.0
#: The long-term envelope that a body shift moves: the crop's mean band power, smoothed over this many octaves
#: (standard deviation), wide enough to pass over resolved partials.
BODY_SMOOTHING_OCTAVES = 1.0 / 6.0
#: A body shift's EQ is held within this many dB either way (an envelope moved over a band limit's cliff
#: would otherwise lift silence).
BODY_MAX_DB = 20.0


@dataclass(frozen=True)
class ChainSettings:
    """How wide the drawn chains are (the ``augment`` section of a training config); zeros switch parts off."""

    level_db: float = 0.0                       # gain uniform in +-level_db per crop
    tilt_db_per_octave: float = 0.0             # spectral tilt about 1 kHz, uniform in +-this
    resonances: int = 0                         # peaks or dips per crop
    resonance_db: float = 12.0                  # each one's gain, uniform in +-this
    lowpass_probability: float = 0.0            # share of crops band-limited (cutoff log-uniform 4-16 kHz)
    reverb_probability: float = 0.0             # share of crops in a room
    rt60_s: tuple[float, float] = (0.2, 1.5)    # the room's low-frequency decay time, log-uniform
    drr_db: tuple[float, float] = (-3.0, 15.0)  # direct-to-reverberant energy ratio, uniform
    noise_probability: float = 0.0              # share of crops with background noise
    snr_db: tuple[float, float] = (10.0, 40.0)  # signal-to-noise ratio, uniform
    body_octaves: float = 0.0                   # the envelope moved by uniform +-this many octaves per crop

    def __post_init__(self) -> None:
        for name in ("rt60_s", "drr_db", "snr_db"):
            low, high = (float(v) for v in getattr(self, name))
            if low > high:
                raise ValueError(f"augment.{name} must be [low, high] with low <= high, got {[low, high]}")
            object.__setattr__(self, name, (low, high))
        if self.rt60_s[0] <= 0:
            raise ValueError(f"augment.rt60_s must be positive, got {list(self.rt60_s)}")
        for name in ("lowpass_probability", "reverb_probability", "noise_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"augment.{name} must be between 0 and 1, got {getattr(self, name)}")
        for name in ("level_db", "tilt_db_per_octave", "resonance_db", "body_octaves"):
            if getattr(self, name) < 0:
                raise ValueError(f"augment.{name} must be >= 0, got {getattr(self, name)}")
        if self.resonances < 0:
            raise ValueError(f"augment.resonances must be >= 0, got {self.resonances}")

    @property
    def active(self) -> bool:
        return any((self.level_db, self.tilt_db_per_octave, self.resonances, self.lowpass_probability,
                    self.reverb_probability, self.noise_probability, self.body_octaves))


def x_to_power(x: Tensor) -> Tensor:
    """Mel power behind model frames (the torch twin of :func:`engine.mel.x_to_power`)."""
    return (10.0 ** (x * LOG_SCALE - LOG_OFFSET) - LOG_FLOOR).clamp_min(0.0)


def power_to_x(power: Tensor) -> Tensor:
    return (torch.log10(power + LOG_FLOOR) + LOG_OFFSET) / LOG_SCALE


def equalise(x: Tensor, gains_db: Tensor) -> Tensor:
    """Multiply each band's power by ``10^(gain/10)``; ``gains_db`` is ``(batch, n_mels)``."""
    return power_to_x(x_to_power(x) * 10.0 ** (gains_db[:, None, :] / 10.0))


def reverberate(x: Tensor, rt60_s: Tensor, drr_db: Tensor, frame_rate: float) -> Tensor:
    """Add a diffuse tail to each band: ``rt60_s`` ``(batch, n_mels)`` decay times, ``drr_db`` ``(batch,)``.

    The tail's energy envelope is ``a^k`` after ``k`` frames, ``a = exp(-ln(1e6) / (frame_rate * RT60))``,
    scaled so that its total energy (``a / (1 - a)`` per unit of direct energy) is ``10^(-drr/10)``.
    """
    power = x_to_power(x)
    decay = torch.exp(-LN_MILLION / (frame_rate * rt60_s))
    scale = 10.0 ** (-drr_db[:, None] / 10.0) * (1.0 - decay) / decay
    tail = torch.zeros_like(power[:, 0])
    out = torch.empty_like(power)
    for t in range(power.shape[1]):
        out[:, t] = power[:, t] + scale * tail
        tail = decay * (tail + power[:, t])
    return power_to_x(out)


def add_noise(x: Tensor, band_shape: Tensor, snr_db: Tensor) -> Tensor:
    """Add stationary noise whose band powers are ``band_shape`` ``(batch, n_mels)`` (summing to one),
    at ``snr_db`` ``(batch,)`` below the mean power of each crop's sounding frames."""
    power = x_to_power(x)
    frame_power = power.sum(dim=2)
    sounding = frame_power > 0
    signal = (frame_power * sounding).sum(dim=1) / sounding.sum(dim=1).clamp_min(1)
    noise = (signal * 10.0 ** (-snr_db / 10.0))[:, None] * band_shape
    return power_to_x(power + noise[:, None, :])


class RecordingChain:
    """Draws and applies one random chain per crop: ``chain(x (batch, T, n_mels), generator) -> x``."""

    def __init__(self, settings: ChainSettings, analysis: AnalysisConfig) -> None:
        self.settings = settings
        self.frame_rate = analysis.frame_rate
        centres = np.maximum(analysis.band_centres_hz, 20.0)
        self.octaves = torch.from_numpy(np.log2(centres / PIVOT_HZ)).float()
        self.centres_hz = torch.from_numpy(centres).float()
        # White noise puts power in a band in proportion to the band's summed filterbank weights.
        self.white_band_power = torch.from_numpy(analysis.filterbank.sum(axis=1)).float()

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        if not self.settings.active:
            return x
        s = self.settings
        if s.body_octaves > 0:
            x = equalise(x, self.body_shift_db(x, _uniform((-s.body_octaves, s.body_octaves), x.shape[0], generator)))
        x = equalise(x, self.equaliser_db(x.shape[0], generator))
        if s.reverb_probability > 0:
            chosen = self._chosen(x.shape[0], s.reverb_probability, generator)
            if chosen.any():
                rt60 = _log_uniform(s.rt60_s, int(chosen.sum()), generator)
                band_rt60 = rt60[:, None] / (1.0 + self.centres_hz[None, :] / HALF_DECAY_HZ)
                drr = _uniform(s.drr_db, int(chosen.sum()), generator)
                x = x.clone()
                x[chosen] = reverberate(x[chosen], band_rt60, drr, self.frame_rate)
        if s.noise_probability > 0:
            chosen = self._chosen(x.shape[0], s.noise_probability, generator)
            if chosen.any():
                count = int(chosen.sum())
                slope = _uniform(NOISE_SLOPE_DB_PER_OCTAVE, count, generator)
                shape = self.white_band_power[None, :] * 10.0 ** (slope[:, None] * self.octaves[None, :] / 10.0)
                shape = shape / shape.sum(dim=1, keepdim=True)
                x = x.clone()
                x[chosen] = add_noise(x[chosen], shape, _uniform(s.snr_db, count, generator))
        return x

    def equaliser_db(self, batch: int, generator: torch.Generator) -> Tensor:
        """Level + tilt + resonances + band limit of each crop, in dB per band: ``(batch, n_mels)``."""
        s = self.settings
        octaves = self.octaves[None, :]
        gains = _uniform((-s.level_db, s.level_db), batch, generator)[:, None] * torch.ones_like(octaves)
        gains = gains + _uniform((-s.tilt_db_per_octave, s.tilt_db_per_octave), batch, generator)[:, None] * octaves
        span = (float(self.octaves[1]), float(self.octaves[-1]))
        for _ in range(s.resonances):
            centre = _uniform(span, batch, generator)[:, None]
            width = _uniform((0.1, MAX_RESONANCE_OCTAVES), batch, generator)[:, None]
            gain = _uniform((-s.resonance_db, s.resonance_db), batch, generator)[:, None]
            gains = gains + gain * torch.exp(-0.5 * ((octaves - centre) / width) ** 2)
        if s.lowpass_probability > 0:
            chosen = self._chosen(batch, s.lowpass_probability, generator)[:, None]
            cutoff = torch.log2(_log_uniform(LOWPASS_RANGE_HZ, batch, generator) / PIVOT_HZ)[:, None]
            gains = gains - chosen * LOWPASS_DB_PER_OCTAVE * (octaves - cutoff).clamp_min(0.0)
        return gains

    def body_shift_db(self, x: Tensor, shift_octaves: Tensor) -> Tensor:
        """The EQ, in dB per band ``(batch, n_mels)``, that moves each crop's long-term envelope up by
        ``shift_octaves`` ``(batch,)``: the smoothed envelope read ``shift`` octaves lower, less itself."""
        mean_power = x_to_power(x).mean(dim=1)
        here = self.octaves[None, :, None]
        source = self.octaves[None, None, :]
        moved = _envelope_db(mean_power, here - shift_octaves[:, None, None], source)
        kept = _envelope_db(mean_power, here, source)
        return (moved - kept).clamp(-BODY_MAX_DB, BODY_MAX_DB)

    @staticmethod
    def _chosen(batch: int, probability: float, generator: torch.Generator) -> Tensor:
        return torch.rand(batch, generator=generator) < probability


def _envelope_db(power: Tensor, at: Tensor, octaves: Tensor) -> Tensor:
    """Band ``power`` ``(batch, n)`` at band ``octaves`` ``(1, 1, n)``, Gaussian-smoothed and read at ``at``
    ``(batch or 1, m, 1)`` octaves, in dB: ``(batch, m)``.  Smoothing power, not dB, lets the partials, not the
    valleys between them, shape the envelope."""
    weights = torch.exp(-0.5 * ((at - octaves) / BODY_SMOOTHING_OCTAVES) ** 2)
    smoothed = (weights * power[:, None, :]).sum(dim=2) / weights.sum(dim=2).clamp_min(1e-12)
    return 10.0 * torch.log10(smoothed + LOG_FLOOR)


def _uniform(bounds: tuple[float, float], count: int, generator: torch.Generator) -> Tensor:
    low, high = bounds
    return low + (high - low) * torch.rand(count, generator=generator)


def _log_uniform(bounds: tuple[float, float], count: int, generator: torch.Generator) -> Tensor:
    low, high = bounds
    return torch.exp(_uniform((math.log(low), math.log(high)), count, generator))
