"""Recorded notes played like a sampler (training.sampler): note names, transposition to the keys between
recordings with the performance's pitch bend, keys too far from every recording left silent, the
note-off's release, and the render command on a folder of recordings."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from test_libraries import _cents_off

from training.instruments import BY_NAME
from training.performance import VARIANT_BY_NAME, single_note
from training.sampler import MAX_STRETCH_SEMITONES, RELEASE_FADE_S, SampleLibrary, SamplerError, note_number
from training.silence import is_silent

RATE = 44100


@pytest.mark.parametrize(("name", "midi"), [("C4", 60), ("As3", 58), ("A#3", 58), ("Eb5", 75), ("c-1", 0),
                                            ("F2 v2", None), ("H4", None), ("C", None)])
def test_note_names(name, midi):
    assert note_number(name) == midi


def _recordings(folder, keys=(69, 72), seconds=3.0, rate=48000):
    """Sustained harmonic tones named like tonejs-instruments' files, at another rate than the output."""
    names = {69: "A4", 72: "C5"}
    (folder / "violin").mkdir(parents=True)
    t = np.arange(int(seconds * rate)) / rate
    for key in keys:
        frequency = 440.0 * 2 ** ((key - 69) / 12)
        tone = sum(np.sin(2 * np.pi * h * frequency * t) / h for h in range(1, 6))
        sf.write(folder / "violin" / f"{names[key]}.wav", 0.3 * tone, rate)
    return folder


def test_a_key_between_recordings_is_the_nearest_one_transposed(tmp_path):
    library = SampleLibrary(_recordings(tmp_path / "rec"))
    program = BY_NAME["violin"].program
    assert library.has_program(program) and not library.has_program(BY_NAME["flute"].program)
    for key in (67, 70, 71, 74):  # from A4 down 2, up 1; from C5 down 1, up 2
        audio = library.render(program, single_note(VARIANT_BY_NAME["plain"], key, 100, np.random.default_rng(0)))
        assert abs(_cents_off(audio, key)) < 5.0


def test_keys_too_far_from_every_recording_are_silence(tmp_path):
    library = SampleLibrary(_recordings(tmp_path / "rec"))
    plain, rng = VARIANT_BY_NAME["plain"], np.random.default_rng(0)
    program = BY_NAME["violin"].program
    near = library.render(program, single_note(plain, 72 + MAX_STRETCH_SEMITONES, 100, rng))
    far = library.render(program, single_note(plain, 72 + MAX_STRETCH_SEMITONES + 1, 100, rng))
    assert not is_silent(near) and not far.any()


def test_the_note_off_fades_the_recording_out_and_velocity_sets_the_level(tmp_path):
    library = SampleLibrary(_recordings(tmp_path / "rec"))
    program, plain = BY_NAME["violin"].program, VARIANT_BY_NAME["plain"]
    loud = library.render(program, single_note(plain, 69, 120, np.random.default_rng(0)))
    soft = library.render(program, single_note(plain, 69, 40, np.random.default_rng(0)))
    released = int((plain.hold_s + RELEASE_FADE_S) * RATE) + 1
    assert np.abs(loud[int(0.5 * RATE):int(0.9 * RATE)]).max() > 0.2 and not loud[released:].any()
    assert np.abs(soft).max() == pytest.approx(np.abs(loud).max() * (40 / 120) ** 1.5, rel=0.02)


def test_vibrato_bends_the_recording(tmp_path):
    library = SampleLibrary(_recordings(tmp_path / "rec"))
    program = BY_NAME["violin"].program
    audio = library.render(program, single_note(VARIANT_BY_NAME["vibrato"], 69, 100, np.random.default_rng(3)))
    lags = []
    for start in range(int(0.4 * RATE), int(1.4 * RATE), RATE // 50):  # 20 ms steps over a second
        segment = audio[start:start + 1024].astype(np.float64)
        correlation = np.correlate(segment, segment, "full")[len(segment) - 1:]
        lag = 80 + int(np.argmax(correlation[80:120]))  # 440 Hz is a lag of 100.2 samples
        a, b, c = correlation[lag - 1:lag + 2]
        lags.append(lag + 0.5 * (a - c) / (a - 2 * b + c))
    assert 1200 * np.log2(max(lags) / min(lags)) > 15.0  # the depth is drawn from 20-40 cents


def test_render_command_on_a_folder_of_recordings(tmp_path):
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-m", "training.data", "render", "--samples", str(_recordings(tmp_path / "mine")),
                    "--out", str(out), "--max-notes-per-class", "4", "--phrases-per-class", "1", "--jobs", "1"],
                   check=True, capture_output=True)
    with open(out / "metadata.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and {(row["class"], row["library"]) for row in rows} == {("violin", "mine")}
    assert all(69 - MAX_STRETCH_SEMITONES <= int(row["midi"]) <= 72 + MAX_STRETCH_SEMITONES for row in rows)
    with open(out / "dropped.csv", newline="") as handle:  # the keys beyond reach: counted, never written
        assert all(not 65 <= int(row["midi"]) <= 76 for row in csv.DictReader(handle))
    missing = subprocess.run([sys.executable, "-m", "training.data", "render", "--samples", str(tmp_path / "none"),
                              "--out", str(out)], capture_output=True, text=True, check=False)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        (f"error: recordings folder not found: {tmp_path / 'none'} "
         "(training/fetch_tonejs.sh fetches data/sources/tonejs)")]


def test_an_unreadable_recording_is_one_line(tmp_path):
    folder = _recordings(tmp_path / "rec")
    (folder / "violin" / "D5.wav").write_bytes(b"not audio")
    library = SampleLibrary(folder)
    with pytest.raises(SamplerError, match=r"^cannot read .*D5\.wav"):
        library.render(BY_NAME["violin"].program, single_note(VARIANT_BY_NAME["plain"], 74, 100,
                                                                np.random.default_rng(0)))
