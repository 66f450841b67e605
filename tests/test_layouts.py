"""Tests for dataset scanning (training.layouts) and splits (training.splits) on hand-made folder trees.

Files are tiny synthetic tones written with soundfile; no soundfont or real corpus is needed.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from training.layouts import (
    DatasetError,
    Item,
    detect_layout,
    pitch_to_midi,
    scan,
    scan_folder,
    scan_librispeech,
    scan_phrases,
    scan_sol,
    scan_tinysol,
)
from training.splits import SplitError, leave_library_out, load_or_create_split, read_split, split_items, write_split


def _tone(path: Path, seconds: float = 0.05, sample_rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    sf.write(path, 0.1 * np.sin(2 * np.pi * 440 * t), sample_rate)
    return path


def _labels(items: list[Item]) -> Counter:
    return Counter(item.label for item in items)


# --- scanners ------------------------------------------------------------------------------------------

def test_scan_folder_any_depth_any_case_and_skips_phrases(tmp_path: Path) -> None:
    _tone(tmp_path / "violin" / "a.wav")
    _tone(tmp_path / "violin" / "take2" / "deep" / "b.WAV")
    _tone(tmp_path / "flute" / "c.flac")
    (tmp_path / "flute" / "notes.txt").write_text("not audio")
    _tone(tmp_path / "phrases" / "flute" / "flute-phrase-000.wav")
    items = scan_folder(tmp_path)
    assert _labels(items) == {"violin": 2, "flute": 1}
    assert all(item.path.is_absolute() and item.library == tmp_path.name for item in items)
    assert detect_layout(tmp_path) == "folder"


def test_scan_folder_reads_renderer_metadata(tmp_path: Path) -> None:
    _tone(tmp_path / "cello" / "cello-048-v080-vibrato.wav")
    _tone(tmp_path / "cello" / "extra.wav")  # not in metadata: still scanned, without midi
    with open(tmp_path / "metadata.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "class", "midi", "velocity", "variant", "library", "duration_s"])
        writer.writerow(["cello/cello-048-v080-vibrato.wav", "cello", 48, 80, "vibrato", "FluidR3_GM", 0.05])
    by_name = {item.path.name: item for item in scan(tmp_path)}
    assert by_name["cello-048-v080-vibrato.wav"] == Item(tmp_path / "cello" / "cello-048-v080-vibrato.wav",
                                                         "cello", "FluidR3_GM", 48, "vibrato")
    assert by_name["extra.wav"].midi is None and by_name["extra.wav"].library == tmp_path.name


def test_scan_phrases_pairs_notes_files(tmp_path: Path) -> None:
    _tone(tmp_path / "flute" / "n.wav")
    wav = _tone(tmp_path / "phrases" / "flute" / "flute-phrase-000.wav")
    wav.with_suffix(".notes.csv").write_text("onset_s,offset_s,midi\n0.0,0.05,69\n")
    _tone(tmp_path / "phrases" / "oboe" / "oboe-phrase-000.wav")
    phrases = {p.item.label: p for p in scan_phrases(tmp_path)}
    assert phrases["flute"].notes_path == wav.with_suffix(".notes.csv")
    assert phrases["oboe"].notes_path is None


def test_scan_tinysol(tmp_path: Path) -> None:
    _tone(tmp_path / "Brass" / "Tbn" / "ordinario" / "Tbn-ord-A#1-ff-N-N.wav")
    _tone(tmp_path / "Brass" / "Tbn" / "ordinario" / "Tbn-ord-C4-pp-N-N.wav")
    _tone(tmp_path / "Strings" / "Vn" / "ordinario" / "Vn-ord-G3-mf-4c-N.wav")
    _tone(tmp_path / "Winds" / "ClBb" / "ordinario" / "ClBb-ord-Bb3-p-N-N.wav")
    assert detect_layout(tmp_path) == "tinysol"
    items = {item.path.name: item for item in scan(tmp_path)}
    assert items["Tbn-ord-A#1-ff-N-N.wav"] == Item(tmp_path / "Brass/Tbn/ordinario/Tbn-ord-A#1-ff-N-N.wav",
                                                   "trombone", "TinySOL", 34, "ff")
    assert items["Tbn-ord-C4-pp-N-N.wav"].midi == 60
    assert (items["Vn-ord-G3-mf-4c-N.wav"].label, items["Vn-ord-G3-mf-4c-N.wav"].midi) == ("violin", 55)
    assert (items["ClBb-ord-Bb3-p-N-N.wav"].label, items["ClBb-ord-Bb3-p-N-N.wav"].midi) == ("clarinet", 58)
    assert len(scan_tinysol(tmp_path)) == 4


def test_pitch_names() -> None:
    assert [pitch_to_midi(n) for n in ("A0", "A#0", "C4", "A4", "Bb3", "C8")] == [21, 22, 60, 69, 58, 108]
    assert pitch_to_midi("ff") is None and pitch_to_midi("N") is None


def test_scan_sol_labels_instrument_and_technique(tmp_path: Path) -> None:
    _tone(tmp_path / "Strings" / "Violoncello" / "ordinario" / "Vc-ord-C2-mf-4c.wav")
    _tone(tmp_path / "Strings" / "Violoncello" / "pizzicato-l-vib" / "Vc-pizz-C3-ff-2c.wav")
    _tone(tmp_path / "Brass" / "Trumpet-C" / "flatterzunge" / "TpC-flatt-G4-mf.wav")
    _tone(tmp_path / "README.wav")  # too shallow to be a SOL sample: ignored
    assert detect_layout(tmp_path) == "sol"
    items = {item.path.name: item for item in scan(tmp_path)}
    assert set(items) == {"Vc-ord-C2-mf-4c.wav", "Vc-pizz-C3-ff-2c.wav", "TpC-flatt-G4-mf.wav"}
    assert items["Vc-ord-C2-mf-4c.wav"].label == "Violoncello-ordinario"
    assert items["Vc-pizz-C3-ff-2c.wav"].label == "Violoncello-pizzicato-l-vib"
    assert (items["TpC-flatt-G4-mf.wav"].label, items["TpC-flatt-G4-mf.wav"].midi) == ("Trumpet-C-flatterzunge", 67)
    assert {item.library for item in scan_sol(tmp_path)} == {"SOL"}


def test_scan_librispeech_keeps_speakers_with_most_audio(tmp_path: Path) -> None:
    for speaker, n_files in (("19", 1), ("103", 3), ("250", 2)):
        for i in range(n_files):
            _tone(tmp_path / speaker / "1240" / f"{speaker}-1240-{i:04d}.flac", seconds=0.1)
    (tmp_path / "103" / "1240" / "103-1240.trans.txt").write_text("transcript")
    assert detect_layout(tmp_path) == "librispeech"
    items = scan(tmp_path, n_speakers=2)
    assert _labels(items) == {"103": 3, "250": 2}
    assert _labels(scan_librispeech(tmp_path, 3))["19"] == 1
    assert _labels(scan_librispeech(tmp_path, 4)) == {"19": 1, "103": 3, "250": 2}  # fewer than asked: all
    assert {item.variant for item in items} == {"1240"}  # the chapter, which a chapter split keeps together


@pytest.mark.parametrize("layout", ["auto", "folder", "tinysol", "sol", "librispeech"])
def test_empty_or_missing_folder_is_a_clear_error(tmp_path: Path, layout: str) -> None:
    (tmp_path / "empty").mkdir()
    expected = "auto" if layout == "auto" else layout
    for folder in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(DatasetError, match=str(folder)) as error:
            scan(folder, layout=layout)
        assert isinstance(error.value, ValueError)
        if folder.name == "missing":
            assert expected in str(error.value)


def test_unknown_layout_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown layout"):
        scan(tmp_path, layout="nsynth")


# --- splits --------------------------------------------------------------------------------------------

def _items(counts: dict[str, int], library: str = "lib", root: Path = Path("/data")) -> list[Item]:
    return [Item(root / label / f"{label}-{i:03d}.wav", label, library, 60 + i, "plain")
            for label, n in counts.items() for i in range(n)]


def test_split_is_stratified_and_deterministic() -> None:
    items = _items({"violin": 10, "flute": 5, "oboe": 2, "horn": 1})
    split = split_items(items, test_fraction=0.2, seed=3)
    assert _labels(split["test"]) == {"violin": 2, "flute": 1, "oboe": 1}
    assert _labels(split["train"]) == {"violin": 8, "flute": 4, "oboe": 1, "horn": 1}
    assert set(split["train"]).isdisjoint(split["test"])
    assert set(split["train"]) | set(split["test"]) == set(items)
    assert split_items(list(reversed(items)), test_fraction=0.2, seed=3) == split
    assert split_items(items, test_fraction=0.2, seed=4) != split


def test_split_round_trip_through_file(tmp_path: Path) -> None:
    for label in ("violin", "flute"):
        for i in range(4):
            _tone(tmp_path / "data" / label / f"{i}.wav")
    items = scan(tmp_path / "data")
    split = split_items(items, seed=0)
    split_file = tmp_path / "splits" / "split.csv"
    write_split(split_file, split, tmp_path / "data")
    assert "violin/" in split_file.read_text()  # paths are relative to the data root
    assert read_split(split_file, tmp_path / "data") == split


def test_load_or_create_split_reuses_the_file(tmp_path: Path) -> None:
    for i in range(5):
        _tone(tmp_path / "data" / "violin" / f"{i}.wav")
        _tone(tmp_path / "data" / "flute" / f"{i}.wav")
    items = scan(tmp_path / "data")
    split_file = tmp_path / "split.csv"
    first = load_or_create_split(split_file, items, lambda its: split_items(its, seed=1))
    again = load_or_create_split(split_file, items, lambda its: split_items(its, seed=99))
    assert again == first


def test_reading_a_split_with_a_missing_file_names_it(tmp_path: Path) -> None:
    wav = _tone(tmp_path / "violin" / "a.wav")
    _tone(tmp_path / "violin" / "b.wav")
    split = split_items(scan(tmp_path), seed=0)
    write_split(tmp_path / "split.csv", split, tmp_path)
    wav.unlink()
    with pytest.raises(SplitError, match=r"a\.wav"):
        read_split(tmp_path / "split.csv", tmp_path)


def test_leave_one_library_out() -> None:
    items = _items({"violin": 3, "flute": 2}, "FluidR3_GM") + _items({"violin": 2}, "TimGM6mb", Path("/t"))
    split = leave_library_out(items, "TimGM6mb")
    assert {item.library for item in split["train"]} == {"FluidR3_GM"} and len(split["train"]) == 5
    assert {item.library for item in split["test"]} == {"TimGM6mb"} and len(split["test"]) == 2
    with pytest.raises(SplitError, match="MuseScore"):
        leave_library_out(items, "MuseScore")
