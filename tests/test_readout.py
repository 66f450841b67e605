"""The live readout does not guess: silence, tails and doubt name no class; no flicker; fresh notes.

Unit tests feed :class:`engine.identify.StreamingIdentifier` chosen errors and levels; the last test plays
real tones, tails and silence through the :class:`engine.processor.Processor` with the tiny model.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from tiny_model import REFERENCE_MIDI, midi_to_hz, tone, write_tiny_model

from engine.errors import PresetError
from engine.identify import SILENCE, TAIL, UNCERTAIN, ClassMap, SoundingGate, StreamingIdentifier
from engine.preset import load_preset, save_preset
from engine.processor import Processor

FRAME_RATE = 86.0
CLASSES = ClassMap(("a", "b", "c"), (0, 1, 2))
LOUD, QUIET = -10.0, -120.0


def _errors(winner: int, frames: int, margin: float = 0.05) -> np.ndarray:
    errors = np.full((frames, 3), 0.1 + margin)
    errors[:, winner] = 0.1
    return errors


def _identifier(**options) -> StreamingIdentifier:
    return StreamingIdentifier(CLASSES, temperature=200.0, frame_rate=FRAME_RATE, **options)


def test_silence_after_a_note_names_nothing_and_the_next_note_starts_afresh():
    identifier = _identifier()
    assert identifier.update(_errors(0, 40), np.full(40, LOUD))[-1] == 0
    pause = identifier.update(_errors(0, 60), np.full(60, QUIET))
    hold = identifier.hold_frames
    assert (pause[: hold - 1] == 0).all()  # held through a short gap
    assert (pause[hold:] == -1).all()
    snapshot = identifier.snapshot()
    assert snapshot.label is None and snapshot.reason == SILENCE
    # The next note is another class: fresh evidence names it at once, not after the old average fades.
    assert identifier.update(_errors(1, 3), np.full(3, LOUD)).tolist() == [1, 1, 1]
    assert identifier.clip_label() == "a"  # the clip decision still weighs all 43 sounding frames


def test_a_held_label_is_marked_as_held():
    identifier = _identifier()
    identifier.update(_errors(2, 20), np.full(20, LOUD))
    identifier.update(_errors(2, 2), np.full(2, QUIET))
    snapshot = identifier.snapshot()
    assert snapshot.label == "c" and snapshot.held


def test_a_deep_tail_is_left_out_and_then_names_nothing():
    identifier = _identifier()
    identifier.update(_errors(0, 30), np.full(30, LOUD))
    # A tail from 25 to 39 dB under the note: above the -50 dB gate, but more than tail_db under the peak.
    decay = LOUD - 25.0 - 14.0 * np.arange(60) / 60
    # It sounds like class b (as a room or a release might), but it is no evidence: b is never named.
    readout = identifier.update(_errors(1, 60), decay)
    assert 1 not in readout.tolist()
    snapshot = identifier.snapshot()
    assert snapshot.label is None and snapshot.reason == TAIL
    assert identifier.clip_label() == "a"


def test_doubt_names_nothing():
    identifier = _identifier(min_confidence=0.6)  # three classes: a uniform posterior is 0.33
    readout = identifier.update(_errors(0, 30, margin=1e-4), np.full(30, LOUD))
    assert (readout == -1).all()
    snapshot = identifier.snapshot()
    assert snapshot.label is None and snapshot.reason == UNCERTAIN and snapshot.top(1)[0][0] == "a"


def test_a_flickering_leader_does_not_flicker_the_readout():
    identifier = _identifier(time_constant_s=0.01)  # the running error follows each frame
    identifier.update(_errors(0, 20), np.full(20, LOUD))
    alternating = np.concatenate([_errors(i % 2, 1) for i in range(40)])
    assert (identifier.update(alternating, np.full(40, LOUD)) == 0).all()
    # A class that leads for longer than switch_s takes over.
    assert identifier.update(_errors(1, 20), np.full(20, LOUD))[-1] == 1


def test_a_near_tie_keeps_the_class_shown_and_a_clear_lead_takes_over():
    """Viola against cello: a challenger ahead by a hair for a whole second stays behind the class shown (its
    posterior under ``switch_ratio`` times the shown one's); a clear lead takes over after ``switch_s``."""
    identifier = _identifier(time_constant_s=0.01)
    identifier.update(_errors(0, 20), np.full(20, LOUD))
    near_tie = np.tile([0.101, 0.1, 0.2], (86, 1))  # b ahead of a: posterior ratio exp(200 * 0.001) = 1.22
    assert (identifier.update(near_tie, np.full(86, LOUD)) == 0).all()
    assert identifier.snapshot().top(1)[0][0] == "b"  # the evidence leans to b all the same
    assert (_identifier(time_constant_s=0.01, switch_ratio=1.0).update(
        np.concatenate([_errors(0, 20), near_tie]), np.full(106, LOUD))[-1] == 1)  # without the ratio b takes over
    assert identifier.update(_errors(1, 20), np.full(20, LOUD))[-1] == 1
    with pytest.raises(ValueError, match="switch_ratio"):
        _identifier(switch_ratio=0.9)


def test_chunked_readout_equals_whole():
    rng = np.random.default_rng(0)
    errors = rng.uniform(0.05, 0.2, size=(300, 3))
    levels = np.where(rng.random(300) < 0.3, QUIET, LOUD) + rng.normal(0, 20, 300)
    whole = _identifier().update(errors, levels)
    chunked_identifier = _identifier()
    chunked = np.concatenate([chunked_identifier.update(errors[i:i + 7], levels[i:i + 7]) for i in range(0, 300, 7)])
    assert np.array_equal(whole, chunked)


def test_gate_follows_the_peak_with_a_release():
    gate = SoundingGate(FRAME_RATE, gate_db=-50.0, tail_db=30.0)
    levels = np.array([-10.0, -20.0, -39.0, -40.2, -60.0, -10.0])
    # -40.2 dB is 30.2 dB under the first frame, but the peak fell 10 dB/s for three frames meanwhile.
    assert gate(levels).tolist() == [True, True, True, True, False, True]
    assert SoundingGate(FRAME_RATE, tail_db=30.0)(np.array([-10.0, -45.0])).tolist() == [True, False]


def test_a_gate_of_several_streams_gates_each_as_its_own():
    """The training's validation gates every clip at once (``shape``): each stream keeps its own peak."""
    levels = np.random.default_rng(4).normal(-40.0, 15.0, (2, 3, 50))
    together = SoundingGate(FRAME_RATE, shape=(2, 3))
    both_halves = np.concatenate([together(levels[..., :20]), together(levels[..., 20:])], axis=-1)
    alone = np.array([[SoundingGate(FRAME_RATE)(stream) for stream in row] for row in levels])
    assert np.array_equal(both_halves, alone) and both_halves.any() and not both_halves.all()


def test_class_errors_are_each_class_s_lowest_prototype_error():
    """Against the definition: inf for a class without prototypes, NaN where one of its prototypes is NaN."""
    class_map = ClassMap(("a", "b", "c", "d"), (2, 0, 2, 3, 0))  # b has no prototype; members interleaved
    errors = np.random.default_rng(5).random((6, 5))
    errors[4, 3] = np.nan
    members = np.array(class_map.prototype_classes)[None, :] == np.arange(4)[:, None]
    expected = np.where(members[None], errors[:, None, :], np.inf).min(axis=-1)
    got = class_map.class_errors(errors)
    assert np.array_equal(got, expected, equal_nan=True)
    assert np.isinf(got[:, 1]).all() and np.isnan(got[4, 3]) and np.isfinite(got[4, [0, 2]]).all()


@pytest.mark.parametrize("bad", [{"min_confidence": 1.0}, {"hold_s": -1.0}])
def test_bad_readout_settings_are_refused(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        _identifier(**bad)


def test_processor_readout_on_a_note_its_release_silence_and_the_next_note(tmp_path):
    """Real tones through the engine: the class while it sounds, nothing after, the class again."""
    rate = 44100
    proc = Processor.from_preset(write_tiny_model(tmp_path / "identity.pt", head_std=0.0))
    proc.prepare(rate, 256)
    f0 = midi_to_hz(REFERENCE_MIDI)
    note = tone("sawtooth", f0, 0.6, rate)
    release = tone("sine", f0, 1.0, rate) * np.exp(-np.arange(rate) / rate * 60.0 / 8.7).astype(np.float32)
    proc.process(note)
    assert proc.identification.label == "sawtooth" and proc.identification.reason == ""
    proc.process(release)  # another timbre's 60 dB/s release: once 20 dB down it is a tail
    proc.process(np.zeros(rate // 2, np.float32))
    assert proc.identification.label is None and proc.identification.reason in (SILENCE, TAIL)
    proc.process(tone("square", f0, 0.5, rate))
    assert proc.identification.label == "square"


@pytest.mark.parametrize(("line", "message"), [("min_confidence: 1.5", "min_confidence .* must be from 0 to 0.99"),
                                                ("hold_s: -1", "hold_s .* must be from 0 to 10 s"),
                                                ("gate_db: .nan", "gate_db .* must be from -120 to 0 dB")])
def test_bad_readout_settings_in_a_preset_are_one_line(tmp_path, line, message):
    model = write_tiny_model(tmp_path / "tiny.pt")
    preset = tmp_path / "bad.yaml"
    preset.write_text(f"model: {model.name}\n{line}\n")
    with pytest.raises(PresetError, match=message):
        Processor.from_preset(str(preset))


def test_a_saved_preset_loads_back_the_same(tmp_path):
    model = write_tiny_model(tmp_path / "tiny.pt")
    original = load_preset(model)
    changed = replace(original, name="mine", hold_s=0.5, min_confidence=0.4, mode="transfer", target="sine")
    save_preset(changed, tmp_path / "mine.yaml")
    assert load_preset(tmp_path / "mine.yaml") == changed
