"""Live control without audio: each key and MIDI message does what it says through ``Processor.set``, within
bounds, refusals are messages (never exceptions in the watch loop), a save loads back as the same settings,
and the terminal's keys are read one by one from a real pseudo-terminal and its settings restored."""

import io
import os
import termios

import mido
import pytest
from tiny_model import TIMBRES, write_tiny_model

from engine.preset import load_preset
from engine.processor import Processor
from realtime.controls import LiveControls, MidiMap, TerminalKeys, key_action, keys_help, midi_action


@pytest.fixture
def controls(tmp_path) -> LiveControls:
    model = write_tiny_model(tmp_path / "tiny.pt")
    return LiveControls(Processor.from_preset(str(model)), save_path=tmp_path / "saved.yaml")


def press(controls: LiveControls, keys: str) -> str:
    for key in keys:
        action = key_action(controls, key)
        if action is not None:
            controls.queue_action(action)
    return controls.poll()


def test_target_keys_cycle_through_the_classes_in_transfer_mode(controls):
    assert controls.proc.mode == "identify"
    press(controls, "]")
    assert (controls.proc.mode, controls.proc.target) == ("transfer", TIMBRES[0])
    press(controls, "]]")
    assert controls.proc.target == TIMBRES[2]
    assert press(controls, "]") == f"mode transfer, target {TIMBRES[0]}"  # wraps round
    press(controls, "[")
    assert controls.proc.target == TIMBRES[2]


def test_mix_and_transpose_keys_step_within_bounds(controls):
    press(controls, "-" * 15)
    assert controls.proc.preset.mix == 0.0
    press(controls, "+=")  # = is + without Shift
    assert controls.proc.preset.mix == pytest.approx(0.2)
    press(controls, ">>.<")
    assert controls.proc.preset.transpose == 2.0
    press(controls, "<" * 60)
    assert controls.proc.preset.transpose == -48.0


def test_mode_key_toggles_and_takes_a_target_when_there_is_none(controls):
    press(controls, "m")
    assert (controls.proc.mode, controls.proc.target) == ("transfer", TIMBRES[0])
    press(controls, "m")
    assert controls.proc.mode == "identify"
    assert press(controls, "xyz") == "mode identify"  # keys that mean nothing change nothing


def test_save_key_writes_a_preset_that_loads_back_as_the_settings(controls, tmp_path):
    press(controls, "]]>>>+")
    assert press(controls, "s") == f"saved {tmp_path / 'saved.yaml'}"
    saved = load_preset(str(tmp_path / "saved.yaml"))
    assert (saved.mode, saved.target, saved.transpose) == ("transfer", TIMBRES[1], 3.0)


def test_save_without_a_path_never_overwrites_an_earlier_save(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    controls = LiveControls(Processor.from_preset(str(write_tiny_model(tmp_path / "tiny.pt"))))
    first, second = controls.save(), controls.save()
    assert first != second and all(m.startswith("saved protophone-") for m in (first, second))
    assert len(list(tmp_path.glob("protophone-*.yaml"))) == 2


def test_a_refused_change_is_a_message_and_changes_nothing(tmp_path):
    model = write_tiny_model(tmp_path / "tiny.pt")
    controls = LiveControls(Processor.from_preset(str(model), phase="input"))  # the input's phase: no transposition
    message = press(controls, ">")
    assert message.startswith("refused: ") and controls.proc.preset.transpose == 0.0


def test_midi_program_change_and_controllers(controls):
    mapping = MidiMap(mix_cc=7, transpose_cc=11)
    for message in (mido.Message("program_change", program=4), mido.Message("control_change", control=7, value=64),
                    mido.Message("control_change", control=11, value=0), mido.Message("note_on", note=60),
                    mido.Message("control_change", control=1, value=0)):
        action = midi_action(controls, mapping, message)
        if action is not None:
            controls.queue_action(action)
    controls.poll()
    preset = controls.proc.preset
    assert (preset.mode, preset.target) == ("transfer", TIMBRES[4 % len(TIMBRES)])
    assert preset.mix == pytest.approx(64 / 127, abs=1e-3) and preset.transpose == -24.0
    assert midi_action(controls, mapping, mido.Message("control_change", control=11, value=127)) is not None
    controls.queue_action(midi_action(controls, mapping, mido.Message("control_change", control=11, value=127)))
    controls.poll()
    assert controls.proc.preset.transpose == 24.0


def test_terminal_keys_are_read_one_by_one_and_the_terminal_restored():
    leader, follower = os.openpty()
    with open(follower, closefd=True) as terminal:
        before = termios.tcgetattr(follower)
        keys = TerminalKeys.if_terminal(terminal)
        assert keys is not None
        assert not termios.tcgetattr(follower)[3] & termios.ICANON  # no Enter needed
        assert keys.read() == ""
        os.write(leader, b"]+s")
        assert keys.read() == "]+s"
        keys.close()
        assert termios.tcgetattr(follower) == before
    os.close(leader)


def test_keys_are_not_read_from_a_pipe():
    read_end, write_end = os.pipe()
    with open(read_end) as pipe:
        assert TerminalKeys.if_terminal(pipe) is None
    os.close(write_end)


def test_the_keys_help_names_every_key():
    assert all(key in keys_help() for key in "][+-><ms")


def test_the_view_shows_the_settings_and_no_bars_while_nothing_is_named():
    """What the live panel tells: mix, transposition, latency parts, stream and the keys; in doubt no class
    bars (they would look like a result), only why."""
    from rich.console import Console

    from engine.identify import Identification
    from realtime.display import View, render

    def shown(identification: Identification, register_shift: int = 0) -> str:
        view = View(identification, "transfer", "violin", -20.0, -18.0, "74.0 ms (window 35.0 + worker 10.7)", 0.3,
                    0, 0, 12.0, mix=0.7, transpose=12.0, register_shift=register_shift, message="transpose 12.0",
                    keys=keys_help(), stream="48000 Hz / 128 (worker, 5 blocks)")
        console = Console(width=120, record=True, file=io.StringIO())
        console.print(render(view))
        return console.export_text()

    heard = shown(Identification("violin", {"violin": 0.7, "viola": 0.3}, 50))
    assert "█" in heard.split("\nin ")[0] and "mix 0.70  transpose +12" in heard  # bars above the meters
    assert "window 35.0 + worker 10.7" in heard and "48000 Hz / 128 (worker, 5 blocks)" in heard
    assert "keys: ] next target" in heard and "transpose 12.0" in heard
    doubt = shown(Identification(None, {"violin": 0.34, "viola": 0.33}, 0, reason="silence"))
    assert "hearing: - (silence)" in doubt and "violin" not in doubt.split("\nin ")[0]
    assert "█" not in doubt.split("\nin ")[0]
    held = shown(Identification("violin", {"violin": 0.7}, 50, held=True))
    assert "hearing: violin (held)" in held and "register" not in held
    assert "transpose +12  register +12" in shown(Identification("violin", {"violin": 0.7}, 50), register_shift=12)


def test_the_latency_text_names_the_shifters_delay_while_transposing():
    from realtime.display import latency_text

    parts = {"window": 0.0, "look-ahead": 0.0, "blocks": 0.0}
    assert latency_text({"engine_parts_ms": parts, "shifter_ms": 0.0, "worker_ms": 13.3, "total_ms": 13.3}) == \
        "13.3 ms (worker 13.3)"
    assert latency_text({"engine_parts_ms": parts, "shifter_ms": 15.0, "worker_ms": 13.3, "total_ms": 28.3}) == \
        "28.3 ms (shifter 15.0 + worker 13.3)"
