"""SoundFonts of the WebAudioFont collection played as its player plays them (training.webaudiofont): zones by
key range, transposition from the zone's root and tuning, a sustain loop that holds a short sample for as long
as the note, an MP3 sample whose own rate differs from the SoundFont's, and the render command."""

from __future__ import annotations

import base64
import csv
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_libraries import _cents_off

from training.instruments import BY_NAME
from training.performance import VARIANT_BY_NAME, single_note
from training.sampler import RELEASE_FADE_S
from training.silence import is_silent
from training.webaudiofont import WebAudioFont, WebAudioFontError, read_zones

RATE = 44100
FONT = "GeneralUserGS_sf2_file"
VIOLIN = BY_NAME["violin"].program


def _tone(frequency: float, periods: int, rate: int) -> np.ndarray:
    """Whole periods of a harmonic tone, so that looping all of it is seamless."""
    t = np.arange(round(periods * rate / frequency)) / rate
    return 0.3 * sum(np.sin(2 * np.pi * h * frequency * t) / h for h in range(1, 6))


def _pcm_zone(low: int, high: int, root_cents: int, fine_tune: int, rate: int) -> str:
    """A zone as the collection writes it, its sample 16-bit PCM: a tone at ``root_cents - fine_tune``,
    0.1 s long (far shorter than a note), looped whole."""
    frequency = 440.0 * 2 ** ((root_cents - fine_tune - 6900) / 1200)
    audio = _tone(frequency, round(0.1 * frequency), rate)
    pcm = base64.b64encode((audio * 32767).astype("<i2").tobytes()).decode()
    return (f"{{midi:40,originalPitch:{root_cents},keyRangeLow:{low},keyRangeHigh:{high},loopStart:1,"
            f"loopEnd:{len(audio)},coarseTune:0,fineTune:{fine_tune},sampleRate:{rate},ahdsr:true,sample:'{pcm}'}}")


def _mp3_zone(low: int, high: int, root_cents: int, stored_rate: int, mp3_rate: int) -> str:
    """A zone whose sample is an MP3 at ``mp3_rate`` while its loop points count ``stored_rate`` samples."""
    frequency = 440.0 * 2 ** ((root_cents - 6900) / 1200)
    audio = _tone(frequency, round(0.6 * frequency), mp3_rate)
    encoded = io.BytesIO()
    sf.write(encoded, audio, mp3_rate, format="MP3")
    loop_start = round(0.2 * stored_rate)  # 0.2 s in, 0.3 s long, in the SoundFont's samples
    loop_end = loop_start + round(round(0.3 * frequency) / frequency * stored_rate)
    return (f"{{midi:40,originalPitch:{root_cents},keyRangeLow:{low},keyRangeHigh:{high},loopStart:{loop_start},"
            f"loopEnd:{loop_end},coarseTune:0,fineTune:0,sampleRate:{stored_rate},ahdsr:true,"
            f"file:'{base64.b64encode(encoded.getvalue()).decode()}'}}")


def _font(folder: Path, zones: list[str], program: int = VIOLIN) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    name = f"_tone_{program * 10:04d}_{FONT}"
    (folder / f"{program * 10:04d}_{FONT}.js").write_text(
        f"console.log('load {name}');\nvar {name}={{\n\tzones:[\n\t\t" + "\n\t\t,".join(zones) + "\n\t]\n};\n")
    return folder


def _note(library: WebAudioFont, key: int, variant: str = "plain") -> np.ndarray:
    return library.render(VIOLIN, single_note(VARIANT_BY_NAME[variant], key, 100, np.random.default_rng(0)))


def test_each_key_sounds_its_zone_transposed_from_the_zones_root_and_tuning(tmp_path):
    folder = _font(tmp_path / "sound", [_pcm_zone(0, 64, 6000, -30, 22050), _pcm_zone(65, 80, 7200, 25, 44100)])
    library = WebAudioFont(FONT, folder, RATE)
    assert library.has_program(VIOLIN) and not library.has_program(BY_NAME["flute"].program)
    for key in (55, 60, 64, 65, 72, 80):
        assert abs(_cents_off(_note(library, key), key)) < 5.0
    assert not _note(library, 81).any()  # beyond every zone: silence, which the dataset drops


def test_the_loop_holds_a_short_sample_for_the_whole_note_and_the_note_off_ends_it(tmp_path):
    library = WebAudioFont(FONT, _font(tmp_path / "sound", [_pcm_zone(0, 127, 6900, 0, 44100)]), RATE)
    plain = VARIANT_BY_NAME["plain"]
    audio = _note(library, 69)
    held = audio[int(0.2 * RATE):int(plain.hold_s * RATE)]  # long after the 0.1 s sample ran out
    windows = np.sqrt(np.mean(held[: len(held) // 2205 * 2205].reshape(-1, 2205) ** 2, axis=1))
    assert windows.min() > 0.5 * windows.max() > 0.0
    assert not audio[int((plain.hold_s + RELEASE_FADE_S) * RATE) + 1:].any()


def test_an_mp3_sample_at_its_own_rate_keeps_the_pitch_and_its_loop(tmp_path):
    zones = read_zones(_font(tmp_path / "sound", [_mp3_zone(0, 127, 6900, 30000, 32000)]) / f"0400_{FONT}.js")
    assert zones[0].sample_rate == 32000 and zones[0].loop == (6400, 6400 + round(132 / 440 * 32000))
    library = WebAudioFont(FONT, tmp_path / "sound", RATE)
    audio = _note(library, 74)  # reads the 0.6 s sample in 0.45 s
    assert abs(_cents_off(audio, 74)) < 5.0 and not is_silent(audio[int(0.6 * RATE):int(0.9 * RATE)])


def test_render_command_writes_labelled_notes_and_a_missing_folder_is_one_line(tmp_path):
    folder = _font(tmp_path / "sound", [_pcm_zone(0, 127, 6900, 0, 44100)])
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-m", "training.data", "render", "--webaudiofont", "GeneralUserGS",
                    "--webaudiofont-dir", str(folder), "--out", str(out), "--max-notes-per-class", "4",
                    "--phrases-per-class", "1", "--jobs", "1"], check=True, capture_output=True)
    with open(out / "metadata.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and {(row["class"], row["library"]) for row in rows} == {("violin", "GeneralUserGS")}
    assert all(not is_silent(sf.read(out / row["path"])[0]) for row in rows)
    missing = subprocess.run([sys.executable, "-m", "training.data", "render", "--webaudiofont", "GeneralUserGS",
                              "--webaudiofont-dir", str(tmp_path / "none"), "--out", str(out)],
                             capture_output=True, text=True, check=False)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"error: instruments folder not found: {tmp_path / 'none'} (training/fetch_webaudiofont.sh fetches it)"]


def test_a_file_without_zones_is_one_line(tmp_path):
    folder = tmp_path / "sound"
    folder.mkdir()
    (folder / f"0400_{FONT}.js").write_text("var nothing = 1;")
    with pytest.raises(WebAudioFontError, match=r"is not a WebAudioFont instrument"):
        _note(WebAudioFont(FONT, folder, RATE), 69)
