"""The harmonic carrier: the target's envelope on harmonics plus noise at the input's pitch and loudness
(engine/harmonic.py), run through the processor as a performer would."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_model import period_hz, tone, write_tiny_model

from engine.config import AnalysisConfig
from engine.harmonic import TOP_HZ, VOICED_NOISE_SHARE, HarmonicExcitation, harmonic_share
from engine.processor import MAX_BLOCK_SIZE, Processor
from engine.register import VOICING, frame_periodicity
from engine.stft import stft

RATE = 48000
#: How the tests measure the output's pitch: an analysis of their own, not the processor's.
MEASURE = AnalysisConfig(sample_rate=RATE, n_fft=2048, hop=256)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("harmonic") / "tiny.pt", head_std=0.0)


def _harmonic_processor(tiny, block: int = 128, **settings) -> Processor:
    proc = Processor.from_preset(tiny, carrier="harmonic", mode="transfer", target="sawtooth", mix=1.0, **settings)
    proc.prepare(RATE, block)
    return proc


def _run(proc: Processor, audio: np.ndarray, block: int) -> np.ndarray:
    proc.reset()
    return np.concatenate([proc.process(audio[i : i + block]) for i in range(0, len(audio), block)])


def _glissando(low_hz: float, octaves: float, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """A bright tone (12 partials) gliding up ``octaves`` from ``low_hz``, and its pitch per sample (Hz)."""
    t = np.arange(int(seconds * RATE)) / RATE
    hz = low_hz * 2.0 ** (octaves * t / seconds)
    phase = 2.0 * np.pi * np.cumsum(hz) / RATE
    audio = 0.2 * sum(np.sin(k * phase) / k for k in range(1, 13))
    return audio.astype(np.float32), hz


def _pitch_and_periodicity(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per measuring frame: its centre (s), pitch (MIDI, NaN unvoiced) and periodicity."""
    pitch, periodicity = frame_periodicity(stft(audio.astype(np.float32), MEASURE.n_fft, MEASURE.hop), MEASURE)
    centres = (np.arange(len(pitch)) * MEASURE.hop + MEASURE.n_fft / 2) / RATE
    return centres, pitch, periodicity


def test_the_harmonic_share_follows_the_periodicity():
    shares = harmonic_share(np.array([0.0, VOICING, 0.75, 0.9, 1.0])) / (1.0 - VOICED_NOISE_SHARE)
    assert shares == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])


def test_the_output_follows_a_glissando_within_20_cents_at_the_declared_pitch_lag(tiny):
    proc = _harmonic_processor(tiny)
    audio, hz = _glissando(196.0, 1.5, 3.0)
    out = _run(proc, audio, 128)
    lag = proc.pitch_lag_samples
    centres, pitch, _ = _pitch_and_periodicity(out)
    settled = (centres > 0.3) & (centres < 2.9)
    heard = 69.0 + 12.0 * np.log2(hz[(centres[settled] * RATE).astype(int) - lag] / 440.0)
    error_cents = 100.0 * np.abs(pitch[settled] - heard)
    assert not np.isnan(error_cents).any(), "the output lost its pitch on a clean glissando"
    assert np.percentile(error_cents, 95) < 20.0, np.percentile(error_cents, 95)
    assert np.median(error_cents) < 5.0, "the declared lag is not where the pitch follows"  # 14 cents at lag 0


def test_unvoiced_input_gives_noise_without_pitch_and_the_notes_around_it_keep_theirs(tiny):
    """A note, white noise, the note again: the output is noise (no frame periodic) while the input is, and every
    voiced output frame plays the note: the held pitch never bends into or out of the noise."""
    rng = np.random.default_rng(1)
    note = tone("sawtooth", 330.0, 1.0, RATE)
    noise = (0.2 * rng.standard_normal(RATE)).astype(np.float32)
    out = _run(_harmonic_processor(tiny), np.concatenate([note, noise, note]), 128)
    centres, pitch, periodicity = _pitch_and_periodicity(out)
    inside_noise = (centres > 1.15) & (centres < 1.85)
    assert (periodicity[inside_noise] < VOICING).all(), periodicity[inside_noise].max()
    assert np.sqrt(np.mean(out[int(1.2 * RATE) : int(1.8 * RATE)] ** 2)) > 0.01, "the noise part is silent"
    voiced = ~np.isnan(pitch)
    assert voiced[(centres > 0.3) & (centres < 0.9)].all() and voiced[centres > 2.3].all()
    error_cents = 100.0 * np.abs(pitch[voiced] - (69.0 + 12.0 * np.log2(330.0 / 440.0)))
    assert error_cents.max() < 20.0, error_cents.max()


def test_the_output_does_not_depend_on_the_block_size(tiny):
    """Streaming equals batch: the clip in the largest blocks a host may use (a hundred frames' events in one call)
    against host blocks that cut frames and glides anywhere."""
    audio, _ = _glissando(110.0, 1.0, 1.5)
    audio[RATE // 2 : RATE] = np.random.default_rng(2).standard_normal(RATE // 2).astype(np.float32) * 0.1
    reference = _run(_harmonic_processor(tiny, block=MAX_BLOCK_SIZE), audio, MAX_BLOCK_SIZE)
    for block in (128, 700):
        np.testing.assert_allclose(_run(_harmonic_processor(tiny, block=block), audio, block), reference, atol=1e-5)


def test_silence_in_is_silence_out_and_nothing_is_ever_nan(tiny):
    proc = _harmonic_processor(tiny)
    assert not _run(proc, np.zeros(RATE, dtype=np.float32), 128).any()
    harsh = np.concatenate([np.ones(RATE // 4), -np.ones(RATE // 4), np.zeros(RATE // 4),
                            tone("square", 55.0, 0.25, RATE) * 10.0]).astype(np.float32)
    harsh[RATE // 8 :: 997] = 40.0
    assert np.isfinite(_run(proc, harsh, 128)).all()


@pytest.mark.parametrize("semitones", [7, -12])
def test_transposition_moves_the_played_pitch_exactly_from_the_block_it_is_set_on(tiny, semitones):
    """Set mid-note between blocks: the played pitch jumps by the interval at that block, no glide and no wait
    for the next analysed frame."""
    proc = _harmonic_processor(tiny, block=256)
    note = tone("sawtooth", 262.0, 1.5, RATE)
    at = 3 * RATE // 4 - (3 * RATE // 4) % 256
    before = np.concatenate([proc.process(note[i : i + 256]) for i in range(0, at, 256)])
    proc.set(transpose=float(semitones))
    after = np.concatenate([proc.process(note[i : i + 256]) for i in range(at, len(note), 256)])
    assert abs(1200.0 * np.log2(period_hz(before[-RATE // 4 :].astype(np.float64), RATE) / 262.0)) < 10.0
    expected = 262.0 * 2.0 ** (semitones / 12.0)
    assert abs(1200.0 * np.log2(period_hz(after[: RATE // 25].astype(np.float64), RATE) / expected)) < 10.0


def test_the_excitation_plays_at_the_inputs_level_and_the_gains_pass_a_flat_signals_power():
    analysis = AnalysisConfig(sample_rate=RATE, n_fft=2048, hop=512)
    excitation = HarmonicExcitation(analysis)
    note = tone("sine", 440.0, 1.0, RATE).astype(np.float64)
    spectra = stft(note.astype(np.float32), analysis.n_fft, analysis.hop)
    offsets = [i * analysis.hop + analysis.n_fft for i in range(len(spectra))]
    out = excitation.push(note, [o for o in offsets if o <= len(note)], spectra[: sum(o <= len(note) for o in offsets)])
    steady = slice(RATE // 4, RATE)
    assert np.sqrt(np.mean(out[steady] ** 2)) == pytest.approx(np.sqrt(np.mean(note[steady] ** 2)), rel=0.05)
    target = np.array([np.linspace(3.0, 1.0, analysis.n_mels), np.zeros(analysis.n_mels)])  # falling; gated
    gains = excitation.gains(target, gate_x=0.05)
    harmonic_bins = np.arange(analysis.n_bins) * RATE / analysis.n_fft < TOP_HZ
    assert np.mean(gains[0, harmonic_bins] ** 2) == pytest.approx(1.0)  # a flat signal's power passes unchanged
    assert gains[0, 10] > 10.0 * gains[0, 600]  # and the target's slope is the filter's
    assert not gains[1].any()


def test_a_note_after_noise_starts_at_its_own_pitch_instead_of_gliding_from_the_held_one():
    """330 Hz, noise, then 440 Hz: while the harmonics fade back in after the noise they already play 440 (a glide
    from the held 330 would sweep through the fade-in, a bend the performer never played)."""
    analysis = AnalysisConfig(sample_rate=RATE, n_fft=4096, hop=2048)  # a long glide: a bend would be plain
    excitation = HarmonicExcitation(analysis)
    rng = np.random.default_rng(4)
    frames = {name: stft(signal, analysis.n_fft, analysis.hop)[2:3] for name, signal in
              (("330", tone("sawtooth", 330.0, 0.5, RATE)), ("440", tone("sawtooth", 440.0, 0.5, RATE)),
               ("noise", (0.2 * rng.standard_normal(RATE // 2)).astype(np.float32)))}
    level = np.full(4 * analysis.hop, 0.2)
    excitation.push(level, [0], frames["330"])
    excitation.push(level, [0], frames["noise"])
    out = excitation.push(level, [0], frames["440"])
    fading_in = out[analysis.hop // 4 : analysis.hop]
    assert abs(1200.0 * np.log2(period_hz(fading_in, RATE) / 440.0)) < 10.0
