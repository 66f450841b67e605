"""Small real models for tests, built from synthetic timbres (no training, no downloads).

Each class is a waveform family (sine, sawtooth, square) at a reference note; its prototype is the mean
log-mel frame of one second of that tone.  The predictor's head gets random weights so that streaming
parity is checked on non-trivial parameters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.config import AnalysisConfig
from engine.frontend import log_mel
from engine.model import PrototypeModel
from engine.modelfile import ModelMetadata, save_model

TIMBRES = ("sine", "sawtooth", "square")
REFERENCE_MIDI = 57  # A3, 220 Hz


def midi_to_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def period_hz(audio: np.ndarray, sample_rate: int) -> float:
    """The pitch of a periodic ``audio`` (float64) in Hz: the first autocorrelation lag between 1 ms and 20 ms (or a
    quarter of ``audio``, so that every lag spans a few periods) within 10 % of the strongest (a period's multiples
    score as high as the period), climbed to its peak and placed between samples by a parabola."""
    correlation = np.correlate(audio, audio[: len(audio) // 2], mode="valid")
    low, high = sample_rate // 1000, min(sample_rate // 50, len(audio) // 4)
    window = correlation[low:high]
    lag = low + int(np.flatnonzero(window >= 0.9 * window.max())[0])
    while lag + 2 < len(correlation) and correlation[lag + 1] > correlation[lag]:
        lag += 1
    before, at, after = correlation[lag - 1 : lag + 2]
    return sample_rate / (lag + 0.5 * (before - after) / (before - 2.0 * at + after))


def tone(timbre: str, frequency: float, seconds: float, sample_rate: int, amplitude: float = 0.3) -> np.ndarray:
    """A band-limited periodic tone of one of :data:`TIMBRES`."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    harmonics = range(1, int(sample_rate / 2 / frequency))
    if timbre == "sine":
        wave = np.sin(2 * np.pi * frequency * t)
    elif timbre == "sawtooth":
        wave = sum(np.sin(2 * np.pi * h * frequency * t) / h for h in harmonics)
    elif timbre == "square":
        wave = sum(np.sin(2 * np.pi * h * frequency * t) / h for h in harmonics if h % 2)
    else:
        raise ValueError(timbre)
    return (amplitude * wave / np.max(np.abs(wave))).astype(np.float32)


def build_tiny_model(
    lookahead: int = 0, head_std: float = 0.05, seed: int = 0, config: AnalysisConfig | None = None,
    dynamic_range_db: float = 0.0, class_ranges: tuple[tuple[float, float] | None, ...] = (),
    fitted_gain: bool = False, fitted_tilt_db: float = 0.0, band_channels: int = 0,
) -> tuple[PrototypeModel, ModelMetadata]:
    """An eager model with one prototype per synthetic timbre, and its metadata (``class_ranges``: the playing
    range of each timbre, none by default)."""
    config = config or AnalysisConfig()
    torch.manual_seed(seed)
    model = PrototypeModel(len(TIMBRES), config.band_centres_hz, lookahead=lookahead, channels=32,
                           dynamic_range_db=dynamic_range_db, fitted_gain=fitted_gain,
                           fitted_tilt_db=fitted_tilt_db, band_channels=band_channels)
    reference_hz = midi_to_hz(REFERENCE_MIDI)
    prototypes = [log_mel(tone(t, reference_hz, 1.0, config.sample_rate), config).mean(0) for t in TIMBRES]
    with torch.no_grad():
        model.prototypes.copy_(torch.from_numpy(np.stack(prototypes)))
        model.predictor.head.weight.normal_(0.0, head_std)
        model.theta.fill_(6.0)
    metadata = ModelMetadata(
        sample_rate=config.sample_rate,
        n_fft=config.n_fft,
        hop=config.hop,
        n_mels=config.n_mels,
        class_names=TIMBRES,
        prototype_classes=tuple(range(len(TIMBRES))),
        reference_pitch=(float(REFERENCE_MIDI),) * len(TIMBRES),
        lookahead=lookahead,
        class_ranges=class_ranges,
    )
    return model.eval(), metadata


def write_tiny_model(path: Path, **kwargs) -> Path:
    model, metadata = build_tiny_model(**kwargs)
    return save_model(model, metadata, path)


def assert_steps_like_the_script(loaded, stepper, frames: np.ndarray, chunk: int) -> None:
    """``stepper`` (``step``, ``reset``: the fused kernels, the CUDA graph) gives what ``loaded``'s TorchScript step
    gives on ``frames`` fed ``chunk`` at a time, to 1e-5, twice: the second time after a reset of both."""
    for _ in range(2):
        for start in range(0, len(frames), chunk):
            expected = loaded.script_step(frames[start : start + chunk])
            got = stepper.step(frames[start : start + chunk])
            for a, b in zip(expected, got, strict=True):
                assert a.shape == b.shape
                np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
        loaded.reset_script()
        stepper.reset()
