"""The analysis settings shared by the front end, the model and the synthesis."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from engine.mel import band_centres_hz, mel_filterbank


@dataclass(frozen=True)
class AnalysisConfig:
    """How audio becomes log-mel frames: one frame of ``n_mels`` values every ``hop`` samples.

    Reference settings: instruments 44.1 kHz / 2048 / 512, speech 16 kHz / 1024 / 512.
    """

    sample_rate: int = 44100
    n_fft: int = 2048
    hop: int = 512
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float = field(default=0.0)  # 0 means sample_rate / 2

    def __post_init__(self) -> None:
        if not 1000 <= self.sample_rate <= 384000:
            raise ValueError(f"sample_rate must be 1000..384000 Hz, got {self.sample_rate}")
        if self.n_fft < 16 or self.n_fft & (self.n_fft - 1):
            raise ValueError(f"n_fft must be a power of two >= 16, got {self.n_fft}")
        if not 0 < self.hop <= self.n_fft or self.n_fft % self.hop:
            raise ValueError(f"hop must divide n_fft ({self.n_fft}), got {self.hop}")
        if self.n_mels < 2:
            raise ValueError(f"n_mels must be at least 2, got {self.n_mels}")
        if self.f_max == 0.0:
            object.__setattr__(self, "f_max", self.sample_rate / 2.0)
        if not 0.0 <= self.f_min < self.f_max <= self.sample_rate / 2.0:
            raise ValueError(f"need 0 <= f_min < f_max <= sample_rate/2, got {self.f_min}, {self.f_max}")

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

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
