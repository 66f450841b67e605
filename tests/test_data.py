"""Tests for the soundfont data renderer (training.data and the modules it drives).

A tiny dataset (3 classes, a few notes, one phrase each) is rendered from TimGM6mb; FluidR3 is used only
to check that its known silent keys are dropped. Tests that need a soundfont skip, with the path named,
only when that file is missing.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from training.data import main
from training.dataset import playable_keys, render_dataset
from training.instruments import BY_NAME, INSTRUMENTS
from training.performance import RELEASE_S, VARIANT_BY_NAME, random_walk, single_note
from training.render import Library
from training.silence import is_silent, trim_trailing_silence

TIMGM = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
FLUIDR3 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
CLASSES = ("flute", "trumpet", "violin")
REQUIRED_COLUMNS = {"path", "class", "midi", "velocity", "variant", "library", "duration_s"}


def _need(path: Path) -> None:
    if not path.is_file():
        pytest.skip(f"SOUNDFONT MISSING: {path} is not installed (apt-get install "
                    f"{'timgm6mb-soundfont' if path == TIMGM else 'fluid-soundfont-gm'}); render tests skipped")


def _render(out: Path, seed: int = 7, jobs: int = 1) -> None:
    rc = main(["render", "--soundfont", str(TIMGM), "--out", str(out), "--classes", ",".join(CLASSES),
               "--max-notes-per-class", "5", "--phrases-per-class", "1", "--seed", str(seed),
               "--jobs", str(jobs)])
    assert rc == 0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _need(TIMGM)
    out = tmp_path_factory.mktemp("tiny")
    _render(out)
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _median_cents_error(audio: np.ndarray, sr: int, midi: int) -> float:
    """Median pyin pitch of the voiced frames, minus the expected note, in cents."""
    f0, voiced, _ = librosa.pyin(audio, sr=sr, fmin=librosa.midi_to_hz(midi - 12),
                                 fmax=librosa.midi_to_hz(midi + 12), frame_length=4096)
    assert voiced.any(), "no voiced frames"
    return float(100 * (np.median(librosa.hz_to_midi(f0[voiced])) - midi))


def test_layout_and_metadata(tiny: Path) -> None:
    rows = _rows(tiny / "metadata.csv")
    assert set(rows[0]) >= REQUIRED_COLUMNS
    assert {r["class"] for r in rows} == set(CLASSES)
    assert all(r["library"] == "TimGM6mb" for r in rows)
    for cls in CLASSES:
        listed = {r["path"] for r in rows if r["class"] == cls}
        on_disk = {p.relative_to(tiny).as_posix() for p in (tiny / cls).glob("*.wav")}
        assert listed == on_disk and len(listed) == 5
    for r in rows:
        info = sf.info(tiny / r["path"])
        assert info.channels == 1 and info.samplerate == 44100
        assert abs(info.duration - float(r["duration_s"])) < 1e-3
        assert 0.2 < info.duration <= 2.5
        inst = BY_NAME[r["class"]]
        assert inst.low <= int(r["midi"]) <= inst.high
    assert (tiny / "summary.json").is_file() and (tiny / "dropped.csv").is_file()


def test_notes_are_audible_and_in_tune(tiny: Path) -> None:
    for r in _rows(tiny / "metadata.csv"):
        audio, sr = sf.read(tiny / r["path"])
        assert not is_silent(audio), r["path"]
        if r["variant"] in ("plain", "long", "crescendo", "diminuendo") and 48 <= int(r["midi"]) <= 96:
            middle = audio[int(0.2 * sr):int(0.9 * sr)]
            assert abs(_median_cents_error(middle, sr, int(r["midi"]))) < 50, r["path"]


def test_phrases_match_their_notes_files(tiny: Path) -> None:
    rows = _rows(tiny / "phrases" / "metadata.csv")
    assert {r["class"] for r in rows} == set(CLASSES)
    for r in rows:
        audio, sr = sf.read(tiny / r["path"])
        notes = _rows(tiny / r["notes_path"])
        assert Path(r["notes_path"]).name == Path(r["path"]).with_suffix(".notes.csv").name
        assert 6 <= len(notes) == int(r["n_notes"]) <= 12
        onsets = [float(n["onset_s"]) for n in notes]
        offsets = [float(n["offset_s"]) for n in notes]
        assert onsets[0] == 0.0 and onsets[1:] == offsets[:-1]  # legato: each note starts as the last ends
        duration = len(audio) / sr
        assert offsets[-1] <= duration <= offsets[-1] + RELEASE_S + 0.01
    # The benchmark relies on the notes file: check pitch note by note on one phrase.
    audio, sr = sf.read(tiny / rows[0]["path"])
    for n in _rows(tiny / rows[0]["notes_path"]):
        on, off = float(n["onset_s"]), float(n["offset_s"])
        if off - on >= 0.3:
            segment = audio[int((on + 0.08) * sr):int((off - 0.03) * sr)]
            assert abs(_median_cents_error(segment, sr, int(n["midi"]))) < 50


def test_same_seed_gives_identical_files_whatever_the_worker_count(tiny: Path, tmp_path: Path) -> None:
    _render(tmp_path, seed=7, jobs=2)
    files = sorted(p.relative_to(tiny) for p in tiny.rglob("*") if p.suffix in (".wav", ".csv"))
    assert files == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.suffix in (".wav", ".csv"))
    for rel in files:
        assert (tiny / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel


def test_other_seed_gives_other_phrases(tiny: Path, tmp_path: Path) -> None:
    _render(tmp_path, seed=8)
    rel = _rows(tiny / "phrases" / "metadata.csv")[0]["notes_path"]
    assert (tiny / rel).read_bytes() != (tmp_path / rel).read_bytes()


def test_detector_flags_silence_and_one_bit_noise_but_not_quiet_notes() -> None:
    sr = 44100
    rng = np.random.default_rng(0)
    one_bit = rng.integers(-1, 2, sr).astype(np.float32) / 32768
    tone = np.sin(2 * np.pi * 440 * np.arange(sr) / sr).astype(np.float32)
    assert is_silent(np.zeros(sr, np.float32))
    assert is_silent(one_bit)
    assert is_silent(tone * 10 ** (-70 / 20))
    assert not is_silent(tone * 10 ** (-45 / 20))  # the quietest real notes peak near -45 dBFS


def test_trim_keeps_the_note_and_cuts_the_silence() -> None:
    sr = 44100
    note = np.sin(2 * np.pi * 220 * np.arange(sr) / sr).astype(np.float32) * 0.5
    trimmed = trim_trailing_silence(np.concatenate([note, np.zeros(sr, np.float32)]), sr)
    assert sr <= len(trimmed) <= sr + int(0.03 * sr)
    assert np.array_equal(trimmed[: sr - 441], note[: sr - 441])


def test_fluidr3_silent_keys_are_dropped_and_counted(tmp_path: Path) -> None:
    _need(FLUIDR3)
    library = Library(FLUIDR3)
    contrabass = BY_NAME["contrabass"]
    plain = single_note(VARIANT_BY_NAME["plain"], 60, 80, np.random.default_rng(0))
    assert is_silent(library.render(contrabass.program, plain))
    keys = playable_keys(library, contrabass)
    assert not set(range(58, 68)) & set(keys) and 40 in keys
    report = render_dataset(library, "FluidR3_GM", tmp_path, [contrabass], phrases_per_class=1, workers=2)
    assert report.classes["contrabass"].dropped == 10 * 8  # 10 keys x (3 plain velocities + 5 variants)
    dropped = _rows(tmp_path / "dropped.csv")
    assert {int(r["midi"]) for r in dropped} == set(range(58, 68))
    written = {int(r["midi"]) for r in _rows(tmp_path / "metadata.csv")}
    assert not written & set(range(58, 68))
    assert not list((tmp_path / "contrabass").glob("contrabass-06[0-7]-*.wav"))


def test_random_walk_stays_on_allowed_keys() -> None:
    allowed = [k for k in range(28, 68) if not 58 <= k <= 67]
    for seed in range(20):
        melody = random_walk(np.random.default_rng(seed), allowed, 12)
        assert len(melody) == 12 and set(melody) <= set(allowed)


def test_vibrato_stays_within_40_cents() -> None:
    perf = single_note(VARIANT_BY_NAME["vibrato"], 60, 80, np.random.default_rng(3))
    bends = np.array([e.a for e in perf.events if e.kind == "bend"])
    cents = bends / 8192 * 200
    assert 20 * 0.9 < np.abs(cents).max() <= 40 and bends[-1] == 0


def test_ranges_are_sane() -> None:
    assert len(INSTRUMENTS) == 14
    for inst in INSTRUMENTS:
        assert 21 <= inst.low < inst.high <= 108 and 0 <= inst.program < 128


@pytest.mark.parametrize("make_args, message", [
    (lambda tmp: ["--soundfont", str(tmp / "nope.sf2"), "--out", str(tmp / "o")], "soundfont not found"),
    (lambda tmp: ["--soundfont", str(_junk(tmp)), "--out", str(tmp / "o")], "not a readable SoundFont"),
    (lambda tmp: ["--soundfont", str(TIMGM), "--out", str(_junk(tmp) / "sub")], "cannot write to output"),
    (lambda tmp: ["--soundfont", str(TIMGM), "--out", str(tmp / "o"), "--classes", "kazoo"], "unknown class"),
])
def test_user_errors_are_one_line(make_args, message: str, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    _need(TIMGM)
    assert main(["render", *make_args(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err and "Traceback" not in err


def _junk(tmp: Path) -> Path:
    path = tmp / "junk.sf2"
    path.write_bytes(b"this is not a soundfont" * 10)
    return path


def test_help_teaches(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["render", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--max-notes-per-class" in text and "contrabass" in text and "metadata.csv" in text


def test_rebuild_downloads_a_library_s_source_before_rendering_it_and_neither_once_rendered(tmp_path, monkeypatch):
    """The WebAudioFont libraries' files come from one download script, which runs before their render and not
    at all for a library already rendered (the script itself needs the network: recorded here, not run)."""
    from training import rebuild

    calls: list[list[str]] = []
    monkeypatch.setattr(rebuild.subprocess, "run", lambda command, check: calls.append(command))
    (tmp_path / "Aspirin").mkdir()
    (tmp_path / "Aspirin" / "metadata.csv").write_text("path\n")
    rebuild.render_libraries(tmp_path, ["GeneralUserGS", "Aspirin", "freepats"])
    assert calls == [["bash", "training/fetch_webaudiofont.sh"],
                     [sys.executable, "-m", "training.data", "render", "--webaudiofont", "GeneralUserGS", "--out",
                      str(tmp_path / "GeneralUserGS")],
                     [sys.executable, "-m", "training.data", "render", "--patches", "/etc/timidity/freepats.cfg",
                      "--out", str(tmp_path / "freepats")]]


def test_rebuild_renders_what_the_shipped_configs_train_on_and_refuses_what_it_cannot_render(tmp_path):
    from training.rebuild import LIBRARIES, SHIPPED_CONFIGS, trained_libraries

    assert set(trained_libraries(SHIPPED_CONFIGS)) <= set(LIBRARIES)
    config = tmp_path / "config.yaml"
    config.write_text("data:\n  roots: [data/TimGM6mb, data/my-own-recordings]\n")
    with pytest.raises(SystemExit, match=r"trains on \['my-own-recordings'\], which training.rebuild cannot render"):
        trained_libraries((config,))
