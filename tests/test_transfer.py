"""Timbre transfer through the Processor: silence, NaN, dry/wet mix, transposition."""

import librosa
import numpy as np
import pytest
from tiny_model import REFERENCE_MIDI, midi_to_hz, tone, write_tiny_model

from engine.processor import Processor

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
