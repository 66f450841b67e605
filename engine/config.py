"""The analysis settings shared by the front end, the model and the synthesis."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from engine.mel import band_centres_hz, mel_filterbank


@dataclass(frozen=True)
class AnalysisConfig:
    """How audio becomes log-mel frames: one frame of ``n_mels`` values every ``hop`` samples.

    Reference settings: instruments 44.1 kHz / 2048 / 512, speech 16 kHz / 1024 / 512.

    A model is trained at one such setting; :meth:`at_rate` gives the same analysis at a host's rate (window
    and hop the same in seconds, the same bands, the same level units), so the engine needs no resampler.
    """

    sample_rate: int = 44100
    n_fft: int = 2048
    hop: int = 512
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float = field(default=0.0)  # 0 means sample_rate / 2
    #: The window length whose level units the frames are in (0: ``n_fft``).  A Hann window's power grows
    #: with its length squared, so a host-rate analysis scales its power by ``(units_n_fft / n_fft) ** 2``.
    units_n_fft: int = 0

    def __post_init__(self) -> None:
        if not 1000 <= self.sample_rate <= 384000:
            raise ValueError(f"sample_rate must be 1000..384000 Hz, got {self.sample_rate}")
        if self.n_fft < 16 or self.n_fft % 2 or _largest_prime_factor(self.n_fft) > max(FFT_RADICES):
            raise ValueError(f"n_fft must be an even number >= 16 with no prime factor above "
                             f"{max(FFT_RADICES)} (an FFT size that is fast), got {self.n_fft}")
        if not 0 < self.hop <= self.n_fft or self.n_fft % self.hop:
            raise ValueError(f"hop must divide n_fft ({self.n_fft}), got {self.hop}")
        if self.n_mels < 2:
            raise ValueError(f"n_mels must be at least 2, got {self.n_mels}")
        if self.f_max == 0.0:
            object.__setattr__(self, "f_max", self.sample_rate / 2.0)
        # a host-rate analysis (:meth:`at_rate`, units given) keeps the model's bands: those above the host's
        # Nyquist frequency stay empty, as they would after upsampling to the model's rate
        limit = self.sample_rate / 2.0 if self.units_n_fft == 0 else math.inf
        if not 0.0 <= self.f_min < self.f_max <= limit:
            raise ValueError(f"need 0 <= f_min < f_max <= sample_rate/2, got {self.f_min}, {self.f_max}")
        if self.units_n_fft == 0:
            object.__setattr__(self, "units_n_fft", self.n_fft)

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def power_scale(self) -> float:
        """Factor from this analysis's mel power to the units' (1 for a model's own analysis)."""
        return (self.units_n_fft / self.n_fft) ** 2

    def at_rate(self, sample_rate: int) -> AnalysisConfig:
        """This analysis at ``sample_rate``: the hop nearest the same duration among those that make a fast
        FFT size (``n_fft / hop`` hops a window), the same mel bands over the same frequencies, power scaled to
        this analysis's units.  Returns ``self`` at its own rate.

        Fast sizes cost a little exactness: at 48 kHz the 44.1 kHz model's hop of 512 becomes 560 (11.67 ms
        against 11.61, 0.5 % longer; 557 would be exact but its prime factor makes the FFT 18 times slower).
        """
        if sample_rate == self.sample_rate:
            return self
        hops_per_window = self.n_fft // self.hop
        exact = self.hop * sample_rate / self.sample_rate
        candidates = range(max(1, math.floor(exact * 0.9)), math.ceil(exact * 1.1) + 1)
        fast = [hop for hop in candidates if hop * hops_per_window >= 16 and hop * hops_per_window % 2 == 0
                and _largest_prime_factor(hop * hops_per_window) <= max(FFT_RADICES)]
        hop = min(fast, key=lambda candidate: (abs(candidate - exact), candidate))
        return replace(self, sample_rate=sample_rate, n_fft=hop * hops_per_window, hop=hop,
                       units_n_fft=self.n_fft)

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return self.sample_rate / self.hop

    @cached_property
    def filterbank(self) -> np.ndarray:
        """Mel filterbank ``(n_mels, n_bins)``, float64."""
        return mel_filterbank(self.sample_rate, self.n_fft, self.n_mels, self.f_min, self.f_max)

    @cached_property
    def band_centres_hz(self) -> np.ndarray:
        return band_centres_hz(self.n_mels, self.f_min, self.f_max)


#: Prime factors pocketfft (scipy.fft, which the engine calls, and numpy.fft) has fast passes for; other sizes
#: fall back to Bluestein's algorithm, 18 times slower at 2228 points than at 2240 (measured).
FFT_RADICES = (2, 3, 5, 7, 11)


def _largest_prime_factor(number: int) -> int:
    largest, factor = 1, 2
    while factor * factor <= number:
        while number % factor == 0:
            largest, number = factor, number // factor
        factor += 1
    return max(largest, number) if number > 1 else largest
