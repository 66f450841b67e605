"""benchmarks.harmonic_table: a note's harmonic levels are measured right, and the additive resynthesis plays
the notes' pitches at the phrase's level with the table's partials."""

import numpy as np
import pytest
from tiny_model import midi_to_hz, tone

from benchmarks.harmonic_table import harmonic_levels, level_envelope, resynthesise
from engine.config import AnalysisConfig
from engine.register import frame_pitch
from engine.stft import stft

RATE = 44100


def test_a_sawtooth_s_harmonics_fall_as_one_over_their_number():
    levels = harmonic_levels(tone("sawtooth", midi_to_hz(57), 1.0, RATE), RATE, 57)
    assert levels is not None
    np.testing.assert_allclose(levels[:10], -20.0 * np.log10(np.arange(1, 11)), atol=1.5)  # Hann scalloping: 1.4 dB
    assert harmonic_levels(np.zeros(1000, dtype=np.float32), RATE, 57) is None  # too short to have a steady part


def test_the_resynthesis_plays_the_notes_at_the_phrase_s_level():
    phrase = np.concatenate([tone("square", 220.0, 0.5, RATE, 0.1), tone("square", 220.0, 0.5, RATE, 0.4)])
    notes = np.array([[0.0, 0.5, 60.0], [0.5, 1.0, 67.0]])
    table = {60: np.full(80, -6.0), 67: np.full(80, -6.0)}
    out = resynthesise(phrase, RATE, notes, table, np.random.default_rng(0))
    config = AnalysisConfig()
    pitch = frame_pitch(stft(out, config.n_fft, config.hop), config)
    assert np.nanmedian(pitch[5:15]) == pytest.approx(60.0, abs=0.1)
    assert np.nanmedian(pitch[-12:-5]) == pytest.approx(67.0, abs=0.1)
    ratio = level_envelope(out)[RATE // 4 :: RATE // 2] / level_envelope(phrase)[RATE // 4 :: RATE // 2]
    np.testing.assert_allclose(ratio, 1.0, atol=0.05)
