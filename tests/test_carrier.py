"""The input carrier: the input's partials under the target's envelope, moved whole by a transposition."""

from __future__ import annotations

import numpy as np
import pytest

from engine.carrier import MAX_BOOST_DB, MAX_CUT_DB, InputCarrier
from engine.config import AnalysisConfig
from engine.frontend import spectra_to_frames
from engine.stft import stft

CONFIG = AnalysisConfig(44100, 2048, 512, 128)
BIN_HZ = CONFIG.sample_rate / CONFIG.n_fft


def tone_spectra(frequency: float, waveform: str = "sine", seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * CONFIG.sample_rate)) / CONFIG.sample_rate
    phase = (t * frequency) % 1.0
    audio = np.sin(2 * np.pi * phase) if waveform == "sine" else 2.0 * phase - 1.0
    return stft(0.3 * audio, CONFIG.n_fft, CONFIG.hop)


def peak_hz(magnitude: np.ndarray) -> float:
    """Strongest bin's frequency, refined by a parabola through the log magnitudes."""
    k = int(np.argmax(magnitude))
    below, top, above = np.log(magnitude[k - 1 : k + 2])
    return (k + 0.5 * (below - above) / (below - 2 * top + above)) * BIN_HZ


def test_the_input_as_its_own_target_is_returned_unchanged() -> None:
    spectra = tone_spectra(220.0, "sawtooth")
    out = InputCarrier(CONFIG)(spectra_to_frames(spectra, CONFIG), spectra)
    np.testing.assert_allclose(out, np.abs(spectra), rtol=1e-4)


def test_partials_stay_put_and_follow_the_target_envelope() -> None:
    spectra = tone_spectra(220.0, "sawtooth")
    x = spectra_to_frames(spectra, CONFIG)
    bright = x + np.linspace(-0.05, 0.05, CONFIG.n_mels)  # a target that tilts the spectrum upwards
    out = InputCarrier(CONFIG)(bright, spectra)[8]
    magnitude = np.abs(spectra[8])
    harmonics = [round(h * 220.0 / BIN_HZ) for h in (1, 2, 10, 40)]
    assert np.all(np.argmax(out[k - 2 : k + 3]) == 2 for k in harmonics)  # same partials
    gains = out[harmonics] / magnitude[harmonics]
    assert np.all(np.diff(gains) > 0), gains  # higher partials raised more


def test_boost_and_cut_are_bounded_and_the_level_is_the_input_level() -> None:
    spectra = tone_spectra(440.0, "sawtooth")
    x = spectra_to_frames(spectra, CONFIG)
    carrier = InputCarrier(CONFIG)
    low, high = 100, 600  # bins well inside the bands left alone (< 64) and the bands changed (>= 64)
    for change, expected_db in ((0.5, MAX_BOOST_DB), (-0.5, -MAX_CUT_DB)):
        target = x.copy()
        target[:, 64:] = np.maximum(target[:, 64:] + change, 0.06)
        out = carrier(target, spectra)[8]
        gain = out / np.abs(spectra[8])
        assert 20 * np.log10(gain[high] / gain[low]) == pytest.approx(expected_db, abs=0.01)
        assert np.sum(out**2) == pytest.approx(np.sum(np.abs(spectra[8]) ** 2), rel=1e-6)


@pytest.mark.parametrize("semitones", [12.0, -12.0, 7.0, 0.5])
def test_transposition_moves_each_partial_with_its_lobe(semitones: float) -> None:
    spectra = tone_spectra(440.0)
    carrier = InputCarrier(CONFIG)
    carrier.transpose = semitones
    flat = np.full((len(spectra), CONFIG.n_mels), 0.4)  # a target envelope without features of its own
    out = carrier(flat, spectra)[8]
    expected = 440.0 * 2 ** (semitones / 12)
    assert abs(1200 * np.log2(peak_hz(out) / expected)) < 10
    width = np.count_nonzero(out > out.max() / 2)  # half-amplitude width in bins: kept, not stretched
    assert width <= np.count_nonzero(np.abs(spectra[8]) > np.abs(spectra[8]).max() / 2) + 1  # +1: fractional move


def test_gated_or_nan_target_frames_are_silence() -> None:
    spectra = tone_spectra(330.0, "sawtooth")
    x = spectra_to_frames(spectra, CONFIG)
    x[3] = 0.0
    x[5, 40] = np.nan
    out = InputCarrier(CONFIG)(x, spectra)
    assert not out[3].any() and not out[5].any() and out[4].any()
    assert np.isfinite(out).all()
