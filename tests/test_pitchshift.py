"""The filter route's low-delay pitch shifter: two heads sweeping a delay line (engine/pitchshift.py)."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_model import tone

from engine.pitchshift import MIN_DELAY, DelayLineShifter

RATE = 48000


def _shifted(signal: np.ndarray, semitones: float, block: int) -> np.ndarray:
    shifter = DelayLineShifter(RATE)
    shifter.semitones = semitones
    return np.concatenate([shifter.process(signal[i : i + block]) for i in range(0, len(signal), block)])


def _harmonic_share(audio: np.ndarray, f0: float) -> float:
    """Share of the energy within 4 Hz of ``f0``'s harmonics."""
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio)))) ** 2
    hz = np.fft.rfftfreq(len(audio), 1.0 / RATE)
    near = np.zeros(len(hz), dtype=bool)
    for harmonic in np.arange(f0, RATE / 2, f0):
        near |= np.abs(hz - harmonic) < 4.0
    return float(spectrum[near].sum() / spectrum.sum())


def test_no_shift_passes_the_audio_untouched_and_on_time():
    signal = np.random.default_rng(0).standard_normal(5000)
    shifter = DelayLineShifter(RATE)
    assert shifter.mean_delay_samples == 0.0
    np.testing.assert_array_equal(shifter.process(signal), signal)


@pytest.mark.parametrize(("f0", "semitones"), [(65.4, 12), (220.0, 7), (220.0, -12), (880.0, 3)])
def test_a_note_comes_out_on_the_shifted_pitch(f0, semitones):
    """Most of the output's energy sits on the harmonics of the shifted note (measured 84-100 %: the heads
    splice where their pasts match, so the crossfades do not cancel)."""
    note = tone("sawtooth", f0, 2.0, RATE).astype(np.float64)
    out = _shifted(note, semitones, 128)[RATE // 2 :]
    assert _harmonic_share(out, f0 * 2.0 ** (semitones / 12.0)) > 0.8
    assert 0.9 < np.sqrt(np.mean(out**2)) / np.sqrt(np.mean(note**2)) < 1.1  # the fades keep the level


def test_the_output_does_not_depend_on_the_block_size():
    signal = np.random.default_rng(1).standard_normal(RATE // 2)
    outputs = [_shifted(signal, 5.0, block) for block in (1, 64, 333)]
    np.testing.assert_array_equal(outputs[0], outputs[1])
    np.testing.assert_array_equal(outputs[0], outputs[2])


def test_a_shift_switched_on_mid_stream_starts_from_the_sound_before_it():
    """The delay line fills while the shift is off, so the first shifted block is sound, not silence, and it
    lags by about the sweep's middle."""
    note = tone("sine", 440.0, 0.5, RATE).astype(np.float64)
    shifter = DelayLineShifter(RATE)
    shifter.process(note[: RATE // 4])
    shifter.semitones = 2.0
    first = shifter.process(note[RATE // 4 : RATE // 4 + 480])
    assert np.sqrt(np.mean(first**2)) > 0.5 * np.sqrt(np.mean(note**2))
    assert shifter.mean_delay_samples == pytest.approx(MIN_DELAY + shifter.window / 2)
