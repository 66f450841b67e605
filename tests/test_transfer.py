"""Timbre transfer through the Processor: silence, NaN, dry/wet mix, transposition."""

import math

import librosa
import numpy as np
import pytest
import torch

from engine.config import AnalysisConfig
from engine.export import LoadedModel, ModelMetadata
from engine.model import PrototypeModel
from engine.processor import Processor
from engine.transfer import TransferRenderer
from tiny_model import REFERENCE_MIDI, midi_to_hz, tone, write_tiny_model

RATE = 44100


@pytest.fixture(scope="module")
def transfer_preset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("transfer")
    write_tiny_model(folder / "identity.pt", head_std=0.0)
    (folder / "to-square.yaml").write_text("model: identity.pt\nmode: transfer\ntarget: square\n")
    return folder / "to-square.yaml"


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


def test_transferred_tone_is_pitched_like_the_input_and_transposes_by_an_octave(transfer_preset):
    proc = Processor.from_preset(transfer_preset)
    proc.prepare(RATE, 512)
    audio = tone("sine", midi_to_hz(REFERENCE_MIDI), 1.5, RATE)
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


def _renderer(reference_pitch):
    config = AnalysisConfig()
    model = PrototypeModel(4, config.band_centres_hz).eval()
    with torch.no_grad():
        model.prototypes.copy_(torch.rand(4, config.n_mels))
    metadata = ModelMetadata(44100, 2048, 512, 128, ("input", "target"), (0, 1, 1, 1), tuple(reference_pitch))
    renderer = TransferRenderer(LoadedModel(model, metadata, torch.device("cpu")), "target")
    params = torch.zeros(1, 4, 6)
    params[0, 0, 0] = math.log(2.0)  # the winner (prototype 0) is shifted up an octave
    errors = torch.tensor([[0.0, 1.0, 1.0, 1.0]])
    return model, renderer, params, errors


def test_winner_candidate_carries_absolute_pitch_to_the_nearest_target_prototype():
    model, renderer, params, errors = _renderer([57.0, 60.0, 70.0, None])
    rendered = renderer.render(params, errors)  # input at 57 + 12 = 69: prototype 2 (70) is nearest
    shift = torch.zeros(6)
    shift[0] = (69.0 - 70.0) * math.log(2.0) / 12.0
    torch.testing.assert_close(rendered[0], model.render_prototype(2, shift))


def test_prototypes_without_reference_pitch_fall_back_to_relative_shifts():
    model, renderer, params, errors = _renderer([None, 60.0, 70.0, None])
    rendered = renderer.render(params, errors)  # winner has no reference: keep its own shift
    assert torch.isfinite(rendered).all()
    torch.testing.assert_close(rendered[0], model.render_prototype(1, params[0, 0]))
