"""The log-mel front end: librosa agreement, units, and streaming == batch."""

import librosa
import numpy as np
import pytest

from engine.config import AnalysisConfig
from engine.frontend import LogMelFrontEnd, frame_level_db, log_mel
from engine.mel import power_to_x, x_to_power


@pytest.mark.filterwarnings("ignore:Empty filters detected")
@pytest.mark.parametrize("sample_rate,n_fft", [(44100, 2048), (16000, 1024), (22050, 512)])
def test_filterbank_matches_librosa(sample_rate, n_fft):
    config = AnalysisConfig(sample_rate=sample_rate, n_fft=n_fft, hop=n_fft // 4)
    reference = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=128, htk=True, norm=None, dtype=np.float64)
    np.testing.assert_allclose(config.filterbank, reference, atol=1e-5, rtol=0)


def test_log_mel_matches_librosa_melspectrogram():
    config = AnalysisConfig()
    audio = np.random.default_rng(0).normal(0, 0.1, 20000)
    mel = librosa.feature.melspectrogram(
        y=audio, sr=44100, n_fft=2048, hop_length=512, center=False, power=2.0, htk=True, norm=None, n_mels=128
    )
    np.testing.assert_allclose(log_mel(audio, config), power_to_x(mel.T), atol=1e-5)


def test_units_silence_is_zero_and_inverse_round_trips():
    config = AnalysisConfig()
    assert np.abs(log_mel(np.zeros(4096), config)).max() == 0.0
    power = np.array([1e-6, 1.0, 1e4])
    np.testing.assert_allclose(x_to_power(power_to_x(power)), power, rtol=1e-9)


@pytest.mark.parametrize("block", [64, 100, 256, 1000, 1, 4097])
def test_streaming_frames_equal_batch(block):
    config = AnalysisConfig()
    audio = np.random.default_rng(1).normal(0, 0.1, 30000).astype(np.float32)
    frontend = LogMelFrontEnd(config)
    frames = [frontend.push(audio[i : i + block])[0] for i in range(0, len(audio), block)]
    streamed = np.concatenate(frames)
    batch = log_mel(audio, config)
    assert streamed.shape == batch.shape
    np.testing.assert_allclose(streamed, batch, atol=1e-6)


def test_level_is_relative_to_full_scale_sine():
    config = AnalysisConfig()
    t = np.arange(22050) / 44100
    for amplitude, expected in [(1.0, 0.0), (0.01, -40.0)]:
        levels = frame_level_db(log_mel(amplitude * np.sin(2 * np.pi * 997 * t), config), config)
        np.testing.assert_allclose(levels, expected, atol=0.1)


@pytest.mark.parametrize(
    "kwargs", [{"sample_rate": 0}, {"n_fft": 1000}, {"hop": 3}, {"n_mels": 1}, {"f_min": 30000.0}]
)
def test_bad_analysis_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        AnalysisConfig(**kwargs)
