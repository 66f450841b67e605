"""One table of settings (engine.parameters.SETTINGS) drives presets, Processor.set and the command line."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from tiny_model import write_tiny_model

from engine.errors import PresetError
from engine.parameters import SETTINGS
from engine.preset import Preset, load_preset, with_settings
from engine.processor import Processor
from realtime import live

#: A valid value for each setting that differs from its default (the tiny model's classes for target).
CHANGED = {"mode": "transfer", "target": "square", "mix": 0.5, "transpose": 12.0, "register": "target", "gain_db": -6.0,
           "candidate": "target", "gate_db": -40.0, "time_constant_s": 0.5, "hold_s": 0.6, "min_confidence": 0.5,
           "phase": "rtpghi", "carrier": "prototype"}


@pytest.fixture
def tiny_preset(tmp_path: Path) -> Path:
    write_tiny_model(tmp_path / "tiny.pt", class_ranges=((40.0, 90.0),) * 3)  # register: target needs them
    path = tmp_path / "tiny.yaml"
    path.write_text("description: a tiny test model\nmodel: tiny.pt\nphase: input\n")
    return path


def test_every_preset_field_is_a_setting_with_the_tables_default():
    settings = {f.name: f.default for f in fields(Preset)}
    for key in ("name", "model", "description"):
        settings.pop(key)
    assert list(settings) == list(SETTINGS)  # same names, same order (presets are written in this order)
    assert all(settings[name] == setting.default for name, setting in SETTINGS.items())
    assert set(CHANGED) == set(SETTINGS) and all(CHANGED[n] != s.default or n == "phase" for n, s in SETTINGS.items())


def test_every_setting_is_a_flag_with_its_bounds_in_the_help():
    parser = live.build_parser()
    help_text = " ".join(parser.format_help().split())
    for setting in SETTINGS.values():
        assert setting.flag in help_text, setting.name
        assert " ".join(setting.meaning.split()) in help_text, setting.name
    assert "from -48 to 48 semitones (default: the preset's)" in help_text


@pytest.mark.parametrize(("flag", "value", "expected"), [
    ("--mix", "5", "mix (0 = dry input only, 1 = transferred sound only) must be from 0 to 1, got '5'"),
    ("--hold-s", "-1", "hold_s (silence before the readout names nothing) must be from 0 to 10 s, got '-1'"),
    ("--carrier", "kazoo", "carrier must be one of input, prototype, filter, harmonic, got 'kazoo'"),
])
def test_a_flag_out_of_bounds_is_argparses_one_line(capsys, flag, value, expected):
    with pytest.raises(SystemExit) as exit_:
        live.build_parser().parse_args([flag, value])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.endswith(expected + " (see --help)") and error.startswith("protophone: argument "), error


def test_every_flag_reaches_the_processor(tiny_preset: Path):
    args = [str(tiny_preset)]
    for name, value in CHANGED.items():
        args += [SETTINGS[name].flag, str(value)]
    proc = live.load_processor(live.build_parser().parse_args(["--preset", *args]))
    assert {name: getattr(proc.preset, name) for name in SETTINGS} == CHANGED


def test_set_changes_live_settings_in_one_step_and_refuses_the_others(tiny_preset: Path):
    proc = Processor.from_preset(tiny_preset)
    before = proc.preset
    proc.set(mode="transfer", target="sine", mix=0.25, gain_db=-3.0, candidate="target")
    assert (proc.mode, proc.target, proc.mix, proc.gain_db, proc.preset.candidate) == \
        ("transfer", "sine", 0.25, -3.0, "target")
    assert before.mode == "identify", "the old settings object was changed in place"
    for name in (name for name, setting in SETTINGS.items() if not setting.live):
        with pytest.raises(ValueError, match=f"{name} cannot change while the processor exists"):
            proc.set(**{name: CHANGED[name]})
    with pytest.raises(ValueError, match="transpose and register 'target' with the input carrier need phase 'rtpghi'"):
        proc.set(transpose=12)  # this preset uses the input's phase
    with pytest.raises(ValueError, match="register 'target' with the input carrier need phase 'rtpghi'"):
        proc.set(register="target")
    assert proc.transpose == 0.0 and proc.mix == 0.25 and proc.preset.register == "keep", \
        "a refused change must change nothing"


def test_rules_between_settings_are_checked_once_for_every_entry(tiny_preset: Path):
    preset = load_preset(tiny_preset)
    message = "transfer mode needs a target"
    with pytest.raises(ValueError, match=message):
        with_settings(preset, mode="transfer")
    bad_file = tiny_preset.with_name("bad.yaml")
    bad_file.write_text("model: tiny.pt\nmode: transfer\n")
    for attempt in (lambda: load_preset(bad_file), lambda: Processor.from_preset(tiny_preset, mode="transfer"),
                    lambda: Processor.from_preset(tiny_preset).set(mode="transfer")):
        with pytest.raises((ValueError, PresetError), match=message):  # a file or a setting: its own error
            attempt()


def test_save_preset_writes_the_runs_settings_back(tiny_preset: Path, tmp_path: Path, capsys):
    clip = tmp_path / "clip.wav"
    sf.write(clip, 0.3 * np.sin(2 * np.pi * 220 * np.arange(22050) / 44100), 44100)
    saved = tmp_path / "mine.yaml"
    status = live.main(["--preset", str(tiny_preset), "--mode", "transfer", "--target", "square", "--mix", "0.7",
                        "--gate-db", "-45", "--input", str(clip), "--output", str(tmp_path / "out.wav"),
                        "--save-preset", str(saved), "--json"])
    assert status == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    assert (summary["mode"], summary["mix"]) == ("transfer", 0.7)
    back = load_preset(saved)
    expected = with_settings(load_preset(tiny_preset), mode="transfer", target="square", mix=0.7, gate_db=-45)
    assert back == type(back)(**{**vars(expected), "name": "mine"})
    assert back.model == (tmp_path / "tiny.pt").resolve()


def test_save_preset_refuses_a_file_that_is_not_yaml_before_any_work(tiny_preset: Path, tmp_path: Path, capsys):
    status = live.main(["--preset", str(tiny_preset), "--input", "demo", "--output", str(tmp_path / "o.wav"),
                        "--save-preset", str(tmp_path / "mine.txt")])
    assert status == 2 and not (tmp_path / "o.wav").exists()
    expected = f"protophone: --save-preset {tmp_path / 'mine.txt'}: a preset file ends in .yaml"
    assert capsys.readouterr().err.strip() == expected
