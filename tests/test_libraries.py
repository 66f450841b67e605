"""The libraries that are not SoundFonts: the physically modelled ones (Csound's waveguides, the Synthesis
ToolKit), a GUS patch set played by TiMidity++ (Freepats) and a synthesiser's own wavetable (Sonivox
EAS).  Every voice writes non-silent, in-tune audio, the render command writes labelled notes and phrases in
the dataset layout, and a class the library lacks is refused in one line."""

from __future__ import annotations

import csv
import ctypes.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from training import csound, sonivox, stk, timidity
from training.instruments import BY_NAME
from training.performance import VARIANT_BY_NAME, random_phrase, single_note
from training.silence import is_silent

FREEPATS_CLASSES = ("accordion", "alto_sax", "bassoon", "cello", "clarinet", "flute", "horn", "oboe", "trombone",
                    "trumpet", "tuba", "violin")
#: library -> (renderer, its classes, the program it needs, how the render command names it)
LIBRARIES = {"csound": (csound.CsoundLibrary, tuple(csound.VOICES), "csound", ["--physical", "csound"]),
             "stk": (stk.StkLibrary, tuple(stk.VOICES), "stk-demo", ["--physical", "stk"]),
             "freepats": (timidity.PatchLibrary, FREEPATS_CLASSES, "timidity",
                          ["--patches", str(timidity.FREEPATS)]),
             "sonivox": (sonivox.SonivoxLibrary, tuple(BY_NAME), "libsonivox", ["--wavetable", "sonivox"])}
VOICES = [(library, name) for library, (_, voices, *_) in LIBRARIES.items() for name in sorted(voices)]


def _needs(library: str) -> None:
    program = LIBRARIES[library][2]
    found = ctypes.util.find_library("sonivox") if library == "sonivox" else shutil.which(program)
    if found is None or (library == "freepats" and not timidity.FREEPATS.is_file()):
        pytest.skip(f"{program.upper()} OR ITS DATA MISSING (./install.sh installs it): the {library} library is "
                    "not tested")


def _cents_off(audio: np.ndarray, midi: int, sample_rate: int = 44100) -> float:
    """Pitch of the steady part (autocorrelation with parabolic interpolation) against ``midi``, in cents."""
    segment = audio[int(0.3 * sample_rate):int(0.8 * sample_rate)].astype(np.float64)
    expected = 440.0 * 2 ** ((midi - 69) / 12)
    correlation = np.correlate(segment, segment, "full")[len(segment) - 1:]
    low, high = int(sample_rate / (expected * 1.4)), int(sample_rate / (expected / 1.4))
    lag = low + int(np.argmax(correlation[low:high]))
    a, b, c = correlation[lag - 1:lag + 2]
    lag = lag + 0.5 * (a - c) / (a - 2 * b + c)
    return 1200 * np.log2(sample_rate / lag / expected)


@pytest.mark.parametrize("library, name", VOICES)
def test_each_voice_sounds_in_tune(library, name):
    _needs(library)
    inst = BY_NAME[name]
    midi = (inst.low + inst.high) // 2
    renderer = LIBRARIES[library][0]()
    audio = renderer.render(inst.program, single_note(VARIANT_BY_NAME["plain"], midi, 80, np.random.default_rng(0)))
    assert not is_silent(audio) and np.isfinite(audio).all() and np.abs(audio).max() < 1.0
    assert abs(_cents_off(audio, midi)) < 35.0


@pytest.mark.parametrize("library", sorted(LIBRARIES))
def test_a_phrase_plays_every_note(library):
    _needs(library)
    inst = BY_NAME["clarinet"]
    performance, notes = random_phrase(np.random.default_rng(1), list(inst.keys)[10:30])
    audio = LIBRARIES[library][0]().render(inst.program, performance)
    assert all(not is_silent(audio[int(n.onset_s * 44100):int(n.offset_s * 44100)]) for n in notes)


@pytest.mark.parametrize("library", sorted(LIBRARIES))
def test_render_command_writes_labelled_notes_and_phrases(library, tmp_path):
    _needs(library)
    out = tmp_path / library
    subprocess.run([sys.executable, "-m", "training.data", "render", *LIBRARIES[library][3], "--out", str(out),
                    "--max-notes-per-class", "3", "--phrases-per-class", "1", "--jobs", "2"],
                   check=True, capture_output=True)
    with open(out / "metadata.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["class"] for row in rows} == set(LIBRARIES[library][1])
    assert {row["library"] for row in rows} == {library}
    for row in rows:
        audio, rate = sf.read(out / row["path"])
        assert rate == 44100 and not is_silent(audio.astype(np.float32))
        assert Path(row["path"]).parts[0] == row["class"]
    phrases = sorted((out / "phrases").glob("*/*.wav"))
    assert len(phrases) == len(LIBRARIES[library][1]) and all(p.with_suffix(".notes.csv").is_file() for p in phrases)


def test_a_class_without_a_model_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "training.data", "render", "--physical", "csound",
                             "--classes", "tuba", "--out", str(tmp_path / "x")], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: csound has no instrument for: tuba (leave them out with --classes)"


def test_the_patch_set_lists_only_its_melodic_bank(tmp_path):
    config = tmp_path / "set.cfg"
    config.write_text("dir /nowhere\ndrumset 0\n 35\tDrum/035_Kick.pat\nbank 0\n 40\tTone/040_Violin.pat amp=90\n"
                      " 73\tTone/073_Flute.pat\nbank 1\n 41\tTone/041_Viola.pat\n")
    assert timidity.melodic_programs(config) == {40, 73}
