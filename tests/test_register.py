"""Register: each passage moved by the fewest whole octaves into the target's playing range.

The pitch of a frame is read off its spectrum; the octave is decided on a passage's first voiced frames and
held to its end; the engine then plays the passage at that octave (filter route), chunked as whole.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny_model import TIMBRES, tone, write_tiny_model

from engine.config import AnalysisConfig
from engine.errors import PresetError
from engine.frontend import log_mel
from engine.processor import Processor
from engine.register import DECISION_FRAMES, RegisterFollower, frame_pitch, octaves_into
from engine.stft import stft

#: The transfer benchmark's judge (benchmarks.transfer; trained on FluidR3_GM and Freepats only).
JUDGE = Path(__file__).parents[1] / "benchmarks/results/transfer/judge-fluidr3/cnn.pt"

CONFIG = AnalysisConfig()
RATE = CONFIG.sample_rate


def _midi(hz: float) -> float:
    return 69.0 + 12.0 * np.log2(hz / 440.0)


@pytest.mark.parametrize("timbre", ["sine", "sawtooth", "square"])
@pytest.mark.parametrize("hz", [70.0, 196.0, 440.0, 1318.5])
def test_a_frame_s_pitch_is_read_off_its_spectrum(timbre, hz):
    pitch = frame_pitch(stft(tone(timbre, hz, 0.5, RATE), CONFIG.n_fft, CONFIG.hop), CONFIG)
    assert np.isfinite(pitch).all()
    np.testing.assert_allclose(pitch, _midi(hz), atol=0.15)  # 15 cents (a low sine: 12), no octave errors


@pytest.mark.parametrize("hz", [261.6, 523.3])
def test_a_bright_tone_of_equal_partials_up_to_nyquist_keeps_its_octave(hz):
    t = np.arange(RATE // 2) / RATE
    bright = sum(np.sin(2 * np.pi * h * hz * t) for h in range(1, 81) if h * hz < RATE / 2 - 200)
    pitch = frame_pitch(stft((0.3 * bright / np.abs(bright).max()).astype(np.float32), CONFIG.n_fft, CONFIG.hop),
                        CONFIG)
    np.testing.assert_allclose(pitch, _midi(hz), atol=0.15)


def test_noise_and_silence_have_no_pitch():
    noise = np.random.default_rng(0).normal(0.0, 0.3, RATE).astype(np.float32)
    for audio in (noise, np.zeros(RATE, dtype=np.float32)):
        assert np.isnan(frame_pitch(stft(audio, CONFIG.n_fft, CONFIG.hop), CONFIG)).all()


@pytest.mark.parametrize("pitch, low, high, shift", [
    (60.0, 55.0, 100.0, 0), (52.0, 55.0, 100.0, 12), (40.0, 55.0, 100.0, 24), (101.0, 55.0, 100.0, -12),
    (55.0, 55.0, 100.0, 0), (40.0, 60.0, 64.0, 24),  # narrower than an octave: nearest its middle
])
def test_the_fewest_octaves_into_the_range(pitch, low, high, shift):
    assert octaves_into(pitch, low, high) == shift


def _follower() -> RegisterFollower:
    return RegisterFollower(55.0, 100.0, CONFIG.frame_rate, gate_db=-50.0, hold_s=0.3)


def _passage(midi: float, frames: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full(frames, midi), np.full(frames, -20.0)


def test_a_passage_keeps_the_octave_decided_on_its_first_voiced_frames():
    follower = _follower()
    low, loud = _passage(50.0, 30)
    shifts = [follower.update(low[i:i + 1], loud[i:i + 1]) for i in range(30)]
    assert shifts[:DECISION_FRAMES - 1] == [0] * (DECISION_FRAMES - 1) and set(shifts[DECISION_FRAMES - 1:]) == {12}
    assert follower.update(*_passage(70.0, 20)) == 12  # it rose into range without a pause: still one passage
    assert follower.update(np.full(40, np.nan), np.full(40, -90.0)) == 12  # a pause holds the octave...
    assert follower.update(*_passage(70.0, 10)) == 0  # ...and the next passage decides again


def test_chunked_frames_give_the_frame_by_frame_shifts():
    pitches = np.concatenate([np.full(20, 40.0), np.full(40, np.nan), np.full(20, 105.0), np.full(20, 60.0)])
    levels = np.where(np.isnan(pitches), -90.0, -20.0)
    single = _follower()
    expected = [single.update(pitches[i:i + 1], levels[i:i + 1]) for i in range(len(pitches))]
    chunked = _follower()
    for start in range(0, len(pitches), 7):
        end = min(start + 7, len(pitches))
        assert chunked.update(pitches[start:end], levels[start:end]) == expected[end - 1]
    assert {24, -12} <= set(expected)


@pytest.fixture(scope="module")
def ranged_model(tmp_path_factory) -> str:
    ranges = ((55.0, 100.0),) * len(TIMBRES)
    return str(write_tiny_model(tmp_path_factory.mktemp("register") / "ranged.pt", class_ranges=ranges))


def _played(model: str, register: str, block: int) -> tuple[np.ndarray, Processor]:
    proc = Processor.from_preset(model, mode="transfer", target="sawtooth", carrier="filter", register=register)
    proc.prepare(RATE, block)
    audio = tone("sawtooth", 130.81, 1.5, RATE)  # C3, below the range
    out = np.concatenate([proc.process(audio[i:i + block]) for i in range(0, len(audio), block)])
    return out, proc


@pytest.mark.parametrize("block", [256, 512])
def test_the_filter_route_plays_a_low_phrase_an_octave_up_with_register_target(ranged_model, block):
    out, proc = _played(ranged_model, "target", block)
    assert proc.register_shift == 12
    heard = frame_pitch(stft(out[RATE // 2:], CONFIG.n_fft, CONFIG.hop), CONFIG)
    assert np.nanmedian(heard) == pytest.approx(_midi(130.81) + 12.0, abs=0.2)
    assert proc.shifter_delay_samples > 0
    proc.set(register="keep")  # switched off mid-stream: the sound is back at the input's pitch at once
    assert proc.register_shift == 0 and proc.shifter_delay_samples == 0
    kept, kept_proc = _played(ranged_model, "keep", block)
    assert kept_proc.register_shift == 0
    assert np.nanmedian(frame_pitch(stft(kept[RATE // 2:], CONFIG.n_fft, CONFIG.hop), CONFIG)) == pytest.approx(
        _midi(130.81), abs=0.2)


def test_a_model_without_ranges_refuses_register_target_in_one_line(tmp_path):
    model = str(write_tiny_model(tmp_path / "plain.pt"))
    with pytest.raises(PresetError, match="register 'target' needs square's playing range"):
        Processor.from_preset(model, mode="transfer", target="square", register="target")
    proc = Processor.from_preset(model, mode="transfer", target="square")
    with pytest.raises(ValueError, match="register keep"):
        proc.set(register="target")
    assert proc.preset.register == "keep"
    assert log_mel(np.zeros(4096, dtype=np.float32), CONFIG).shape[1] == CONFIG.n_mels


@pytest.mark.parametrize("carrier", ["filter", "harmonic", "input"])
def test_the_octave_moves_the_sound_at_the_same_sample_whatever_the_blocks(ranged_model, carrier):
    """A low passage moved up, a pause, a passage in range: the same output for any host blocking."""
    audio = np.concatenate([tone("sawtooth", 130.81, 0.6, RATE), np.zeros(RATE // 2, dtype=np.float32),
                            tone("sawtooth", 523.25, 0.6, RATE)])
    outputs, shifts = [], []
    for block in (128, 512, 1000):
        proc = Processor.from_preset(ranged_model, mode="transfer", target="sawtooth", carrier=carrier,
                                     register="target")
        proc.prepare(RATE, block)
        seen = []
        pieces = []
        for i in range(0, len(audio), block):
            pieces.append(proc.process(audio[i:i + block]))
            seen.append(proc.register_shift)
        outputs.append(np.concatenate(pieces))
        shifts.append(seen)
    assert 12 in shifts[0] and shifts[0][-1] == 0
    for other in outputs[1:]:
        np.testing.assert_array_equal(other, outputs[0])


def test_the_readme_demo_comes_out_heard_as_a_violin(tmp_path):
    """README's first command plays the bundled cello phrase through the violin preset; the transfer benchmark's
    judge (a CNN that learnt FluidR3_GM and Freepats only, benchmarks.transfer) names what comes out violin (the
    preset's register moves the phrase an octave up, into the violin's range; at the cello's own pitch it was
    named cello).  The identify preset names the input cello; its own model is no judge of the output: it learnt
    all six of the transfer model's libraries (since 2026-12-05 it names this output alto sax, README)."""
    from benchmarks.transfer import judge_clip
    from engine.audiofile import read_audio
    from presets import demo_file
    from training.baselines import CnnClassifier

    violin = Processor.from_preset("violin")
    assert violin.preset.register == "target"
    violin.prepare(RATE, 512)
    out = tmp_path / "demo-violin.wav"
    assert violin.process_file(demo_file(), out)["label"] == "cello"  # what went in
    assert violin.register_shift == 12
    identify = Processor.from_preset("identify")
    identify.prepare(RATE, 512)
    assert identify.process_file(demo_file(), tmp_path / "identified.wav")["label"] == "cello"
    judge = CnnClassifier.load(JUDGE)
    audio, rate = read_audio(out)
    assert judge.class_names[judge.predict([judge_clip(judge, audio, rate)])[0]] == "violin"


def test_the_register_listens_for_pitch_only_while_a_passage_s_octave_is_open():
    follower = _follower()
    assert follower.listening  # the first sound starts a passage
    follower.update(*_passage(50.0, DECISION_FRAMES))
    assert not follower.listening  # decided: levels only until a pause
    follower.update(np.full(5, np.nan), np.full(5, -90.0))
    assert not follower.listening  # a pause shorter than hold_s does not end the passage
    follower.update(np.full(40, np.nan), np.full(40, -90.0))
    assert follower.listening


def test_a_file_run_reports_the_shifter_s_delay_of_the_octave_it_ended_on(ranged_model, tmp_path, capsys):
    import json

    import soundfile as sf

    from realtime.live import main

    preset = tmp_path / "up.yaml"
    preset.write_text(f"model: {ranged_model}\nmode: transfer\ntarget: sawtooth\ncarrier: filter\nregister: target\n")
    low = tmp_path / "low.wav"
    sf.write(low, tone("sawtooth", 130.81, 1.5, RATE), RATE)
    assert main(["--preset", str(preset), "--input", str(low), "--output", str(tmp_path / "out.wav"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["register"] == "target" and summary["latency"]["shifter_ms"] > 10.0
