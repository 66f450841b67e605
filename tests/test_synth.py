"""Synthesis: mel inverse, RTPGHI / input phase, streaming parity, quality against Griffin-Lim, edge cases.

Quality bounds were measured on 44.1 kHz / 2048 / 512 / 128 mels (values in comments) and carry a margin.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.config import AnalysisConfig
from engine.frontend import power_to_frames
from engine.mel import power_to_x
from engine.stft import stft
from engine.synth import (
    MelToMagnitude,
    StreamingSynth,
    griffin_lim,
    spectral_convergence,
    synthesize,
    synthesize_magnitudes,
)

CONFIG = AnalysisConfig(44100, 2048, 512, 128)
N_FFT, HOP, SR = CONFIG.n_fft, CONFIG.hop, CONFIG.sample_rate
EDGE = N_FFT // HOP  # frames at each end whose overlap-add is incomplete: left out of quality figures


def sawtooth(frequency: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return 0.3 * (2.0 * ((t * frequency) % 1.0) - 1.0)


def vibrato_tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    frequency = 440.0 * 2.0 ** (0.03 * np.sin(2 * np.pi * 5 * t))
    return 0.3 * np.sin(2 * np.pi * np.cumsum(frequency) / SR) * np.minimum(1.0, t / 0.05)


def analyse(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Complex STFT and x frames (float32, as the model delivers them)."""
    spectra = stft(audio, N_FFT, HOP)
    x = power_to_x(np.abs(spectra) ** 2 @ CONFIG.filterbank.T).astype(np.float32)
    return spectra, x


def stream(synth: StreamingSynth, x: np.ndarray, spectra: np.ndarray | None, chunk: int) -> np.ndarray:
    pieces = [
        synth.push(x[i : i + chunk], None if spectra is None else spectra[i : i + chunk])
        for i in range(0, len(x), chunk)
    ]
    return np.concatenate([*pieces, synth.flush()])


def sc_of(target: np.ndarray, audio: np.ndarray) -> float:
    return spectral_convergence(target[EDGE:-EDGE], audio[EDGE * HOP :], HOP)


@pytest.mark.parametrize("phase, carrier, transpose", [
    ("rtpghi", "prototype", 0.0), ("input", "prototype", 0.0),
    ("input", "input", 0.0), ("rtpghi", "input", -5.0),
])
def test_streaming_equals_batch_for_any_chunking(phase: str, carrier: str, transpose: float) -> None:
    spectra, x = analyse(vibrato_tone(1.6))  # 134 frames
    input_spectra = spectra if phase == "input" or carrier == "input" else None
    target = np.roll(x, 3, axis=1)  # some other envelope
    batch = synthesize(target, CONFIG, phase, input_spectra, carrier, transpose)
    assert len(batch) == len(x) * HOP and np.abs(batch).max() > 1e-3
    synth = StreamingSynth(CONFIG, phase, carrier=carrier)
    if transpose:
        synth.transpose = transpose
    for chunk in (1, 7, 64):
        synth.reset()
        np.testing.assert_allclose(stream(synth, target, input_spectra, chunk), batch, rtol=0, atol=1e-9)


def test_latency_contract() -> None:
    """rtpghi holds one frame back (returned by flush); input phase returns every frame's hop at once."""
    spectra, x = analyse(vibrato_tone(0.3))
    rtpghi, direct = StreamingSynth(CONFIG, "rtpghi"), StreamingSynth(CONFIG, "input")
    assert (rtpghi.latency_frames, direct.latency_frames) == (1, 0)
    assert len(rtpghi.push(x[:5])) == 4 * HOP and len(rtpghi.push(x[5:8])) == 3 * HOP
    assert len(rtpghi.flush()) == HOP
    assert len(direct.push(x[:5], spectra[:5])) == 5 * HOP and len(direct.flush()) == 0


def test_rtpghi_output_lines_up_with_the_analysed_input() -> None:
    """A burst comes out where it went in (same sample index), whatever the look-ahead."""
    audio = np.zeros(SR)
    audio[20000:30000] = vibrato_tone(10000 / SR)
    _, x = analyse(audio)
    out = synthesize(x, CONFIG, "rtpghi")
    envelope_in = np.convolve(audio[: len(out)] ** 2, np.ones(HOP), "same")
    envelope_out = np.convolve(out**2, np.ones(HOP), "same")
    lags = np.arange(-2 * HOP, 2 * HOP + 1)
    correlation = [np.dot(np.roll(envelope_in, lag), envelope_out) for lag in lags]
    assert abs(lags[int(np.argmax(correlation))]) < HOP // 4


def test_input_phase_with_exact_magnitudes_reconstructs_the_signal() -> None:
    audio = vibrato_tone(0.5) + 0.01 * np.random.default_rng(0).standard_normal(int(0.5 * SR))
    spectra = stft(audio, N_FFT, HOP)
    out = synthesize_magnitudes(np.abs(spectra), N_FFT, HOP, "input", spectra)
    assert len(out) == len(spectra) * HOP
    steady = slice(N_FFT - HOP, len(out))  # before this, earlier (non-existent) frames are missing
    np.testing.assert_allclose(out[steady], audio[steady], atol=1e-9)


def test_mel_inverse_is_non_negative_and_reproduces_the_mel_frame() -> None:
    rng = np.random.default_rng(0)
    magnitudes = MelToMagnitude(CONFIG)(rng.uniform(0.0, 0.8, (20, CONFIG.n_mels)))
    assert magnitudes.min() >= 0.0 and magnitudes.max() > 0.0
    _, x = analyse(sawtooth(55.0, 0.5))  # dense harmonics: a smooth spectrum on the mel axis
    again = power_to_x(MelToMagnitude(CONFIG)(x) ** 2 @ CONFIG.filterbank.T)
    loud = x > x.max() - 0.3  # the top 51 dB
    error = np.abs(again - x)[loud]
    assert error.mean() < 2e-3 and error.max() < 1e-2  # measured 1e-5 / 1e-4


@pytest.mark.parametrize("rate", [32000, 48000])
def test_at_a_host_rate_the_mel_inverse_returns_the_model_units(rate: int) -> None:
    """The synthesis at a host's rate (no resampler) turns model-unit frames into host-rate magnitudes whose
    host-rate analysis gives the frames back: the filterbank's inverse undoes the level scaling."""
    host = CONFIG.at_rate(rate)
    _, x = analyse(sawtooth(55.0, 0.5))
    again = power_to_frames(MelToMagnitude(host)(x) ** 2, host)
    sounding = (x > x.max() - 0.3) & (CONFIG.band_centres_hz < 0.45 * rate)[None, :]
    error = np.abs(again - x)[sounding]
    assert error.mean() < 2e-3 and error.max() < 1e-2


def test_rtpghi_quality_between_random_phase_and_griffin_lim() -> None:
    spectra, x = analyse(sawtooth(440.0, 1.0))
    exact = np.abs(spectra)
    assert sc_of(exact, synthesize_magnitudes(exact, N_FFT, HOP, "rtpghi")) < 0.06  # measured 0.029
    target = MelToMagnitude(CONFIG)(x)
    rtpghi = sc_of(target, synthesize(x, CONFIG, "rtpghi"))
    rng = np.random.default_rng(1)
    random = sc_of(target, synthesize(x, CONFIG, "input", np.exp(2j * np.pi * rng.random(spectra.shape))))
    reference = sc_of(target, griffin_lim(target, N_FFT, HOP)[: len(x) * HOP])
    # measured: rtpghi 0.30, random phase 0.63, Griffin-Lim (32 momentum iterations) 0.18
    assert rtpghi < 0.36
    assert rtpghi < 0.6 * random
    assert rtpghi < 2.0 * reference


def test_rtpghi_integrates_along_frequency_at_onsets() -> None:
    """Decaying plucks make the frequency-direction phase gradient matter (it is ~0 for steady tones)."""
    t = np.arange(SR) / SR
    plucks = sum(
        0.3 * np.sin(2 * np.pi * f * t) * np.exp(-((t - start) % 0.25) * 20) * (t >= start)
        for f, start in ((330.0, 0.0), (523.0, 0.1))
    )
    exact = np.abs(stft(plucks, N_FFT, HOP))
    # measured 0.077; with the frequency gradient's sign flipped 0.24, with it left out 0.19
    assert sc_of(exact, synthesize_magnitudes(exact, N_FFT, HOP, "rtpghi")) < 0.12


def peak_hz(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.argmax(spectrum) * SR / len(audio))


@pytest.mark.parametrize("frequency", [261.0, 1234.5, 3000.0, 7777.7])
def test_rtpghi_keeps_the_frequency_of_a_pure_tone(frequency: float) -> None:
    """Exact magnitudes: the tone's frequency (measured within 1.1 Hz).  From mel: the mel-inverted
    magnitude's own peak, which 128 mel bands quantise (3000 Hz -> 3036 Hz, 7778 Hz -> 7687 Hz)."""
    spectra, x = analyse(0.3 * np.sin(2 * np.pi * frequency * np.arange(SR) / SR))
    exact = synthesize_magnitudes(np.abs(spectra), N_FFT, HOP, "rtpghi")[N_FFT:]
    assert abs(peak_hz(exact) - frequency) < 0.25 * SR / N_FFT
    target_peak = np.argmax(MelToMagnitude(CONFIG)(x).mean(axis=0)) * SR / N_FFT
    assert abs(peak_hz(synthesize(x, CONFIG, "rtpghi")[N_FFT:]) - target_peak) < SR / N_FFT


@pytest.mark.parametrize("phase", ["rtpghi", "input"])
def test_silence_gives_exact_zeros(phase: str) -> None:
    x = np.abs(np.random.default_rng(0).normal(0.0, 0.01, (40, CONFIG.n_mels))).astype(np.float32)
    spectra = np.ones((40, CONFIG.n_bins), dtype=np.complex128)
    assert not np.any(synthesize(np.zeros_like(x), CONFIG, phase, spectra))
    assert not np.any(synthesize(x, CONFIG, phase, spectra))


@pytest.mark.parametrize("phase", ["rtpghi", "input"])
def test_non_finite_frames_are_silence(phase: str) -> None:
    spectra, x = analyse(vibrato_tone(0.5))
    broken = x.copy()
    broken[10, 5], broken[20, :], broken[30, 7] = np.nan, np.inf, -np.inf
    silenced = x.copy()
    silenced[[10, 20, 30]] = 0.0
    input_spectra = spectra.copy()
    input_spectra[15, 3] = np.nan
    out = synthesize(broken, CONFIG, phase, input_spectra)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, synthesize(silenced, CONFIG, phase, input_spectra), atol=1e-12)
