"""Timbre transfer through the Processor: silence, NaN, dry/wet mix, transposition."""

import librosa
import numpy as np
import pytest
import torch
from tiny_model import REFERENCE_MIDI, TIMBRES, build_tiny_model, midi_to_hz, tone, write_tiny_model

from engine.config import AnalysisConfig
from engine.frontend import log_mel
from engine.modelfile import load_model, save_model
from engine.processor import Processor
from engine.transfer import TransferRenderer

RATE = 44100


def _tiny_transfer_preset(folder, extra: str = ""):
    write_tiny_model(folder / "identity.pt", head_std=0.0)
    (folder / "to-square.yaml").write_text("model: identity.pt\nmode: transfer\ntarget: square\n" + extra)
    return folder / "to-square.yaml"


@pytest.fixture(scope="module")
def transfer_preset(tmp_path_factory):
    return _tiny_transfer_preset(tmp_path_factory.mktemp("transfer"))


def _run(proc: Processor, audio: np.ndarray, block: int = 256) -> np.ndarray:
    return np.concatenate([proc.process(audio[i : i + block]) for i in range(0, len(audio), block)])


def test_silence_in_gives_silence_out(transfer_preset):
    proc = Processor.from_preset(transfer_preset)
    proc.prepare(RATE, 256)
    assert not _run(proc, np.zeros(RATE, dtype=np.float32)).any()


def test_nan_input_never_yields_nan_output(transfer_preset):
    proc = Processor.from_preset(transfer_preset)
    proc.prepare(RATE, 256)
    audio = tone("sine", midi_to_hz(REFERENCE_MIDI), 1.0, RATE)
    audio[::97] = np.nan
    out = _run(proc, audio)
    assert np.isfinite(out).all() and np.abs(out).max() > 0.01


def test_mix_zero_is_the_input_delayed_by_the_latency(transfer_preset):
    proc = Processor.from_preset(transfer_preset)
    proc.prepare(48000, 128)
    proc.set(mix=0.0)
    audio = np.random.default_rng(0).normal(0, 0.1, 48000).astype(np.float32)
    out = _run(proc, audio, 128)
    latency = proc.latency_samples
    np.testing.assert_array_equal(out[latency:], audio[: len(audio) - latency])
    assert not out[:latency].any()


@pytest.fixture(scope="module")
def prototype_carrier_preset(tmp_path_factory):
    """The tiny model heard directly: its prototypes are harmonic tones, so the pitch lives in them."""
    return _tiny_transfer_preset(tmp_path_factory.mktemp("prototype-carrier"), "carrier: prototype\n")


@pytest.mark.parametrize("preset, waveform", [
    ("prototype_carrier_preset", "sine"),  # the renderer moves the prototype
    ("violin", "square"),  # the shipped preset: the input's partials are moved under the violin's envelope
])
def test_transferred_tone_is_pitched_like_the_input_and_transposes_by_an_octave(preset, waveform, request):
    proc = Processor.from_preset(request.getfixturevalue(preset) if preset.endswith("_preset") else preset)
    proc.prepare(RATE, 512)
    audio = tone(waveform, midi_to_hz(REFERENCE_MIDI), 1.5, RATE)
    for transpose, expected_midi in [(0.0, REFERENCE_MIDI), (12.0, REFERENCE_MIDI + 12)]:
        proc.set(transpose=transpose)
        proc.reset()
        out = _run(proc, audio, 512)[proc.latency_samples :]
        f0, voiced, _ = librosa.pyin(out[RATE // 4 : RATE], fmin=80, fmax=1000, sr=RATE, frame_length=4096)
        cents = 1200 * np.log2(np.nanmedian(f0[voiced]) / midi_to_hz(expected_midi))
        assert abs(cents) < 30, (transpose, cents)


def test_transfer_settings_are_checked(transfer_preset):
    proc = Processor.from_preset(transfer_preset)
    with pytest.raises(ValueError, match="transpose"):
        proc.set(transpose=100)
    with pytest.raises(ValueError, match="unknown target"):
        proc.set(target="kazoo")


def test_a_fitted_gain_model_renders_the_winner_candidate_at_the_frame_s_level(tmp_path):
    """With a fitted gain a prototype's own level is arbitrary (the fit absorbs it): the target must come out
    at the level of the frame the winner fitted, whatever its prototype's offset."""
    model, metadata = build_tiny_model(head_std=0.5, fitted_gain=True)
    frames = log_mel(tone("sine", midi_to_hz(REFERENCE_MIDI), 0.5, RATE), AnalysisConfig()).astype(np.float32)
    rendered = {}
    for offset in (0.0, -0.4):
        with torch.no_grad():
            model.prototypes[TIMBRES.index("square")] += offset
        loaded = load_model(save_model(model, metadata, tmp_path / f"offset{offset}.pt"))
        params, errors = loaded.script_step(frames)
        renderer = TransferRenderer(loaded, "square")
        rendered[offset] = renderer.render(params, errors)
        winner = errors.argmin(axis=1)
        assert TIMBRES[int(np.bincount(winner).argmax())] == "sine"
        np.testing.assert_allclose(rendered[offset].mean(axis=1), frames.mean(axis=1), atol=1e-4)
    np.testing.assert_allclose(rendered[-0.4], rendered[0.0], atol=1e-4)
