"""The filter route: the input carrier's gains applied to the audio as minimum-phase filters, no window on
the audio path (engine/filterroute.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from tiny_model import period_hz, tone, write_tiny_model

from engine import filterroute, pitchshift
from engine.config import AnalysisConfig
from engine.filterroute import FilterRoute, minimum_phase_filters
from engine.processor import Processor

CONFIG = AnalysisConfig(sample_rate=44100, n_fft=1024, hop=256)


def _smooth_gains(n_frames: int, seed: int = 0) -> np.ndarray:
    """Gain curves (linear amplitude) with a few broad peaks and dips, as an envelope ratio has."""
    rng = np.random.default_rng(seed)
    bins = np.arange(CONFIG.n_bins)
    curves = []
    for _ in range(n_frames):
        db = sum(rng.uniform(-15, 15) * np.exp(-0.5 * ((bins - rng.uniform(0, CONFIG.n_bins)) / 40.0) ** 2)
                 for _ in range(4))
        curves.append(10.0 ** (db / 20.0))
    return np.array(curves)


def test_a_designed_filter_follows_the_gain_curve_with_its_energy_first():
    gains = _smooth_gains(3)
    filters = minimum_phase_filters(gains, CONFIG.n_fft, CONFIG.n_fft // 2)
    response = np.abs(np.fft.rfft(filters, n=CONFIG.n_fft, axis=-1))
    error_db = 20 * np.log10(response / gains)
    assert np.median(np.abs(error_db)) < 0.5 and np.abs(error_db).max() < 3.0
    energy = np.cumsum(filters**2, axis=-1) / np.sum(filters**2, axis=-1, keepdims=True)
    assert (energy[:, 44] > 0.9).all()  # 90 % of the energy within the first millisecond: no pure delay


def test_frames_that_cannot_complete_within_the_block_are_refused_before_anything_is_written():
    """The convolution kernel (numba, no bounds checks) writes each filter's segment where the completion offsets
    say: a frame said to complete past the block's end must be an error, not a write past ``out``."""
    route = FilterRoute(CONFIG)
    with pytest.raises(ValueError, match="cannot complete within a block of 256 samples"):
        route.push(np.zeros(CONFIG.hop, dtype=np.float32), 1, _smooth_gains(1))  # the first frame needs n_fft
    assert route.push(np.zeros(CONFIG.n_fft, dtype=np.float32), 1, _smooth_gains(1)).shape == (CONFIG.n_fft,)


def test_zero_gains_make_a_silent_filter():
    gains = _smooth_gains(2)
    gains[1] = 0.0
    filters = minimum_phase_filters(gains, CONFIG.n_fft, 64)
    assert np.abs(filters[0]).max() > 0.0 and not filters[1].any()


@pytest.mark.parametrize("into_fade", [0, 100, 255, 256, 10_000])
def test_the_convolution_kernel_is_the_crossfade_of_two_plain_convolutions(into_fade):
    """The numba kernel against its definition: ``np.convolve`` through each filter, mixed by the fade's weight
    where the fade still runs (from its start, its middle, its last sample, just past it, long past it)."""
    rng = np.random.default_rng(3)
    taps, hop, begin, end = 512, 256, 7, 300
    signal = rng.standard_normal(end + taps - 1).astype(np.float32)
    current, previous = rng.standard_normal(taps).astype(np.float32), rng.standard_normal(taps).astype(np.float32)
    fade = np.linspace(0.0, 1.0, hop, endpoint=False)
    out = np.zeros(end, dtype=np.float32)
    filterroute._crossfaded_convolution(signal, begin, end, current[::-1].copy(), previous[::-1].copy(), fade,
                                        into_fade, out)
    wide = signal.astype(np.float64)  # the definition in float64; the kernel sums in float32
    heard = np.convolve(wide[begin : end + taps - 1], current.astype(np.float64), mode="valid")
    leaving = np.convolve(wide[begin : end + taps - 1], previous.astype(np.float64), mode="valid")
    position = into_fade + np.arange(end - begin)
    weight = np.where(position < hop, fade[np.minimum(position, hop - 1)], 1.0)
    # a sum of 512 products of unit normals is about 23 in size: float32 keeps it to about 1e-5
    np.testing.assert_allclose(out[begin:], weight * heard + (1.0 - weight) * leaving, rtol=0, atol=2e-4)
    assert not out[:begin].any()  # nothing written outside [begin, end)


@pytest.mark.parametrize("blocks", [(64, 700), (1, 256), (333, 1024), (64, 5000), (333, (300, 4000, 5000))])
def test_the_output_does_not_depend_on_the_block_size(blocks):
    """Each frame's filter takes over at the sample the frame completed, whatever the blocking.  60 hops: blocks
    of 64 move the history to the signal buffer's front a few times; 5000, longer than the buffer's room, grows
    it; 300, 4000 and 5000 in turn move the history onto memory it overlaps, then grow the buffer."""
    signal = np.random.default_rng(1).standard_normal(60 * CONFIG.hop).astype(np.float32)
    n_frames = (len(signal) - CONFIG.n_fft) // CONFIG.hop + 1
    gains = _smooth_gains(n_frames, seed=2)
    outputs = []
    for block in blocks:
        sizes = itertools.cycle(block if isinstance(block, tuple) else (block,))
        route, done, out, start = FilterRoute(CONFIG), 0, [], 0
        while start < len(signal):
            piece = signal[start : start + next(sizes)]
            start += len(piece)
            completed = max(0, (start - CONFIG.n_fft) // CONFIG.hop + 1) - done
            out.append(route.push(piece, completed, gains[done : done + completed] if completed else None))
            done += completed
        outputs.append(np.concatenate(out))
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-6)
    assert np.abs(outputs[0]).max() > 0.1


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    return write_tiny_model(tmp_path_factory.mktemp("filter") / "tiny.pt", head_std=0.0)


@pytest.mark.parametrize("rate", [44100, 48000])
@pytest.mark.parametrize("block", [128, 700])
def test_an_impulse_on_a_note_comes_out_at_once(tiny, rate, block):
    """The reported latency is 0 and real: an impulse added to a steady note comes out through the note's
    filter within a few samples (the filter's minimum phase), not a window later."""
    proc = Processor.from_preset(tiny, carrier="filter", mode="transfer", target="sawtooth", mix=1.0)
    proc.prepare(rate, block)
    assert proc.latency_samples == 0 and proc.latency_parts() == {"window": 0, "look-ahead": 0, "blocks": 0}
    note = tone("sawtooth", 220.0, 1.0, rate)
    at = rate // 2 + 77
    kicked = note.copy()
    kicked[at] += 1.0
    outputs = []
    for signal in (note, kicked):
        proc.reset()
        outputs.append(np.concatenate([proc.process(signal[i : i + block]) for i in range(0, len(signal), block)]))
    response = outputs[1] - outputs[0]
    assert np.abs(response).max() > 0.01, "the note's filter passed nothing"
    assert 0 <= int(np.argmax(np.abs(response))) - at <= rate // 1000


@pytest.mark.parametrize("semitones", [7, -5, 12])
def test_the_filter_route_transposes_the_audio_itself(tiny, semitones):
    """The delay-line shifter moves the note by the asked interval before the filter (no window added)."""
    rate = 44100
    proc = Processor.from_preset(tiny, carrier="filter", mode="transfer", target="sawtooth", mix=1.0,
                                 transpose=semitones)
    proc.prepare(rate, 256)
    out = proc.process(tone("sawtooth", 220.0, 1.5, rate))
    expected = 220.0 * 2.0 ** (semitones / 12.0)
    measured = period_hz(out[rate // 2 :].astype(np.float64), rate)
    assert abs(1200 * np.log2(measured / expected)) < 20, (measured, expected)
    assert proc.latency_samples == 0  # the shifter's sweep delays the transposed sound, not the report


def test_a_new_note_through_the_previous_notes_filter_stays_under_the_guard(tiny):
    """A filter designed on one note is heard on the next: a new note's partials can land where the old frame
    was quiet and boosted (3044 times the input's peak without the guard, at the input carrier's +45 / +24 dB).
    The guard holds the output under ``GUARD_HEADROOM`` times the input's peak envelope."""
    rate = 44100
    proc = Processor.from_preset(tiny, carrier="filter", mode="transfer", target="sine", mix=1.0)
    proc.prepare(rate, 256)
    notes = np.concatenate([tone("square", 110.0, 0.5, rate), tone("sawtooth", 1760.0, 0.5, rate),
                            tone("square", 220.0, 0.5, rate)])
    out = proc.process(notes)
    assert np.abs(out).max() <= filterroute.GUARD_HEADROOM * np.abs(notes).max() * 1.001
    level_db = 20 * np.log10(np.sqrt(np.mean(out**2)) / np.sqrt(np.mean(notes**2)))
    assert -24.0 < level_db < 6.0, level_db


def test_the_shifters_delay_is_reported_beside_the_latency(tiny):
    """The host compensates ``latency_samples`` (0 here); the shifter's average delay, which comes and goes with
    the live transposition, is reported on its own."""
    proc = Processor.from_preset(tiny, carrier="filter", mode="transfer", target="sawtooth", transpose=5)
    proc.prepare(48000, 128)
    assert proc.latency_samples == 0
    assert proc.shifter_delay_samples == pytest.approx(pitchshift.MIN_DELAY + 0.5 * pitchshift.WINDOW_S * 48000)
    proc.set(transpose=0.0)
    assert proc.shifter_delay_samples == 0.0
