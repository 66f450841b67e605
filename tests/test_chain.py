"""The recording chain in the mel-power domain against the same effects applied to real audio.

The chain claims that equalising and reverberating mel power is what filtering and convolving the audio
would have given: the EQ on a sine sweep through a real peaking filter, the room on an impulse through a
real exponentially decaying noise impulse response.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

from engine.config import AnalysisConfig
from engine.frontend import frame_level_db, log_mel
from engine.mel import LOG_SCALE
from training.chain import ChainSettings, RecordingChain, add_noise, equalise, reverberate, x_to_power

ANALYSIS = AnalysisConfig()
SR = ANALYSIS.sample_rate
ALL_PARTS = ChainSettings(level_db=24, tilt_db_per_octave=3, resonances=3, lowpass_probability=0.5,
                          reverb_probability=0.5, noise_probability=0.5)


def _frames(audio: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(log_mel(audio.astype(np.float64), ANALYSIS))[None]


def _peaking_filter(centre_hz: float, gain_db: float, q: float) -> tuple[np.ndarray, np.ndarray]:
    """The RBJ audio-EQ-cookbook peaking biquad."""
    a_gain = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * centre_hz / SR
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a_gain, -2 * np.cos(w0), 1 - alpha * a_gain])
    a = np.array([1 + alpha / a_gain, -2 * np.cos(w0), 1 - alpha / a_gain])
    return b / a[0], a / a[0]


def test_equaliser_on_a_sine_sweep_matches_filtering_the_audio():
    t = np.arange(int(3.0 * SR)) / SR
    sweep = 0.5 * scipy.signal.chirp(t, 100.0, t[-1], 10000.0, method="logarithmic")
    b, a = _peaking_filter(1000.0, 12.0, 1.0)
    filtered = scipy.signal.lfilter(b, a, sweep)
    _, response = scipy.signal.freqz(b, a, worN=ANALYSIS.band_centres_hz, fs=SR)
    gains_db = torch.from_numpy(20 * np.log10(np.abs(response))).float()[None]
    in_mel = equalise(_frames(sweep), gains_db)[0].numpy()
    in_audio = _frames(filtered)[0].numpy()
    steady = slice(8, len(in_audio) - 8)  # away from the ends, where the filter's transient sits
    loudest = in_audio[steady].argmax(axis=1)
    rows = np.arange(len(loudest))
    difference_db = LOG_SCALE * 10 * np.abs(in_mel[steady][rows, loudest] - in_audio[steady][rows, loudest])
    boosted = in_mel[steady][rows, loudest] - _frames(sweep)[0].numpy()[steady][rows, loudest]
    assert boosted.max() * LOG_SCALE * 10 > 11.0  # the sweep did pass the 12 dB peak
    assert np.median(difference_db) < 0.3 and difference_db.max() < 1.5, difference_db.max()


def test_room_on_an_impulse_decays_like_a_real_noise_decay_response():
    rt60, drr_db = 0.8, 0.0
    impulse = np.zeros(int(2.5 * SR))
    impulse[int(0.5 * SR)] = 1.0
    rng = np.random.default_rng(0)
    t = np.arange(int(2.0 * SR)) / SR
    tail = rng.standard_normal(len(t)) * np.exp(-np.log(1e6) / 2 * t / rt60)  # energy: -60 dB over rt60
    tail[0] = 0.0
    tail *= np.sqrt(10 ** (-drr_db / 10) / np.sum(tail**2))  # direct energy 1
    response = np.concatenate([[1.0], tail[1:]])
    real = _frames(np.convolve(impulse, response)[: len(impulse)])[0].numpy()
    band_rt60 = torch.full((1, ANALYSIS.n_mels), rt60)
    modelled = reverberate(_frames(impulse), band_rt60, torch.tensor([drr_db]), ANALYSIS.frame_rate)[0].numpy()

    def decay_db_per_s(frames: np.ndarray) -> float:
        levels = frame_level_db(frames, ANALYSIS)
        start = int(np.argmax(levels)) + 8
        window = np.arange(start, start + int(0.5 * ANALYSIS.frame_rate))
        return float(np.polyfit(window / ANALYSIS.frame_rate, levels[window], 1)[0])

    expected = -60.0 / rt60
    assert decay_db_per_s(modelled) == pytest.approx(expected, rel=0.05)
    assert decay_db_per_s(real) == pytest.approx(expected, rel=0.15)
    # Same tail level as the real room, 0.3 s after the impulse (the real one is noisy: +-3 dB).
    later = int(np.argmax(frame_level_db(real, ANALYSIS))) + int(0.3 * ANALYSIS.frame_rate)
    assert frame_level_db(modelled[later], ANALYSIS) == pytest.approx(frame_level_db(real[later], ANALYSIS), abs=3.0)


def test_noise_sits_at_the_asked_signal_to_noise_ratio():
    x = _frames(0.3 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR))
    shape = torch.full((1, ANALYSIS.n_mels), 1.0 / ANALYSIS.n_mels)
    noisy = add_noise(x, shape, torch.tensor([20.0]))
    signal = x_to_power(x).sum(dim=2).mean()
    added = (x_to_power(noisy) - x_to_power(x)).sum(dim=2).mean()
    assert float(10 * torch.log10(signal / added)) == pytest.approx(20.0, abs=0.1)


def test_a_chain_is_the_same_for_a_seed_and_changes_what_it_claims():
    chain = RecordingChain(ALL_PARTS, ANALYSIS)
    x = torch.rand(16, 24, ANALYSIS.n_mels) * 0.6
    first = chain(x, torch.Generator().manual_seed(7))
    assert torch.equal(first, chain(x, torch.Generator().manual_seed(7)))
    assert not torch.equal(first, chain(x, torch.Generator().manual_seed(8)))
    assert torch.isfinite(first).all() and not torch.equal(first, x)
    assert RecordingChain(ChainSettings(), ANALYSIS)(x, torch.Generator()) is x  # nothing asked, nothing done


def test_equaliser_draws_stay_inside_their_bounds():
    chain = RecordingChain(ChainSettings(level_db=24, tilt_db_per_octave=3), ANALYSIS)
    gains = chain.equaliser_db(256, torch.Generator().manual_seed(0))
    octaves = chain.octaves
    tilt = (gains[:, -1] - gains[:, 1]) / (octaves[-1] - octaves[1])
    level = gains[:, 1] - tilt * octaves[1]
    assert tilt.abs().max() <= 3.0 + 1e-4 and tilt.abs().max() > 2.5
    assert level.abs().max() <= 24.0 + 1e-3 and level.abs().max() > 20.0


@pytest.mark.parametrize("bad", [{"rt60_s": [1.0, 0.5]}, {"noise_probability": 1.5}, {"level_db": -1},
                                 {"rt60_s": [0.0, 1.0]}, {"resonances": -2}])
def test_bad_chain_settings_are_refused_with_the_key(bad):
    key = next(iter(bad))
    with pytest.raises(ValueError, match=f"augment.{key}"):
        ChainSettings(**bad)


def _resonant_tone(centre_hz: float) -> np.ndarray:
    """A 220 Hz sawtooth-like tone (40 partials falling 6 dB an octave) through a +15 dB resonance."""
    t = np.arange(int(1.0 * SR)) / SR
    tone = sum(np.sin(2 * np.pi * 220.0 * k * t) / k for k in range(1, 41))
    b, a = _peaking_filter(centre_hz, 15.0, 2.0)
    return 0.1 * scipy.signal.lfilter(b, a, tone)


def _long_term_db(x: torch.Tensor) -> np.ndarray:
    """The crop's long-term envelope in dB, 500-5000 Hz: mean band power over a third of an octave."""
    centres = ANALYSIS.band_centres_hz
    octaves = np.log2(np.maximum(centres, 20.0))
    weights = np.abs(octaves[:, None] - octaves[None, :]) < 1 / 6
    envelope = 10 * np.log10(weights @ x_to_power(x).mean(dim=1)[0].numpy() / weights.sum(axis=1))
    return envelope[(centres > 500) & (centres < 5000)]


def test_a_body_shift_moves_the_resonance_where_a_real_one_sits():
    chain = RecordingChain(ChainSettings(body_octaves=0.3), ANALYSIS)
    x = _frames(_resonant_tone(1500.0))
    assert float(chain.body_shift_db(x, torch.zeros(1)).abs().max()) < 1e-4  # no shift: no EQ
    shifted = equalise(x, chain.body_shift_db(x, torch.tensor([0.25])))
    real = _long_term_db(_frames(_resonant_tone(1500.0 * 2**0.25)))
    # The envelope's shape against the real resonance's (a level offset aside: moving the tone's own falling
    # slope along with its resonance makes it a little louder, which the level part of the chain covers anyway).
    before, after = (np.abs(difference - difference.mean()).mean()
                     for difference in (_long_term_db(crop) - real for crop in (x, shifted)))
    assert after < 0.5 * before and after < 1.0, (before, after)  # the resonance now sits where the real one does
