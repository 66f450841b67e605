"""Scan a user's audio folder into a flat list of labelled items, whatever its layout.

Every trainer, split and feature cache works on :class:`Item` lists, so supporting a new corpus means
writing one scanner here and nothing else.  Layouts (docs/design.md section 3):

- ``folder``: ``root/<class>/**/<audio>``; label = the class folder.  When ``root/metadata.csv`` (written by
  ``training.data render``) exists, library, midi and variant come from it.  A top-level ``phrases/``
  folder holds legato phrases, not notes: it is left out here and read by :func:`scan_phrases`.
- ``tinysol``: ``root/<Family>/<Abbreviation>/ordinario/<Abbr>-ord-<Pitch>-<dyn>-....wav``.
- ``sol``: SOL 0.9 HQ, ``root/[<Family>/]<Instrument>/<technique>/*.wav``; label ``<Instrument>-<technique>``.
- ``librispeech``: ``root/<speaker>/<chapter>/*.flac``; the N speakers with the most audio.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from engine.audiofile import AUDIO_EXTENSIONS

LAYOUTS = ("folder", "tinysol", "sol", "librispeech")
PHRASES_DIR = "phrases"

# TinySOL instrument folders (Ircam abbreviations) -> Protophone class names (training.instruments).
TINYSOL_CLASSES = {
    "Acc": "accordion", "ASax": "alto_sax", "Bn": "bassoon", "Vc": "cello", "ClBb": "clarinet",
    "Cb": "contrabass", "Fl": "flute", "Hn": "horn", "Ob": "oboe", "Tbn": "trombone", "TpC": "trumpet",
    "BTb": "tuba", "Va": "viola", "Vn": "violin",
}
ORDINARIO = "ordinario"

_PITCH = re.compile(r"^([A-Ga-g])([#b]?)(-?\d)$")
_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_DYNAMICS = frozenset({"ppp", "pp", "p", "mp", "mf", "f", "ff", "fff"})


class DatasetError(ValueError):
    """A dataset folder that is missing, empty or not in the expected layout; the message says which."""


@dataclass(frozen=True)
class Item:
    """One audio file and its label.  ``path`` is absolute; ``midi``/``variant`` are known for rendered
    and SOL-family data only (``variant`` holds the performance variant or, for SOL data, the dynamic)."""

    path: Path
    label: str
    library: str = ""
    midi: int | None = None
    variant: str = ""


@dataclass(frozen=True)
class Phrase:
    """A legato phrase and its notes file (``onset_s, offset_s, midi``), or None where it has none."""

    item: Item
    notes_path: Path | None


def pitch_to_midi(name: str) -> int | None:
    """Scientific pitch name to MIDI (``C4`` = 60, ``A#0`` = 22, ``Bb3`` = 58); None if not a pitch."""
    match = _PITCH.match(name)
    if match is None:
        return None
    letter, accidental, octave = match.groups()
    shift = {"#": 1, "b": -1, "": 0}[accidental]
    return 12 * (int(octave) + 1) + _PITCH_CLASS[letter.upper()] + shift


def _is_audio(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_EXTENSIONS and not path.name.startswith(".") and path.is_file()


def _audio_below(folder: Path) -> Iterator[Path]:
    """Audio files at any depth below ``folder``, in a stable (sorted) order."""
    return (p for p in sorted(folder.rglob("*")) if _is_audio(p))


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _require_folder(root: Path, layout: str) -> Path:
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist (layout {layout}: expected "
                           f"{_LAYOUT_HINTS[layout]})")
    return root


def _require_items(items: list, root: Path, layout: str) -> list:
    if not items:
        raise DatasetError(f"no audio found in {root} for the {layout} layout (expected "
                           f"{_LAYOUT_HINTS[layout]}; extensions {', '.join(sorted(AUDIO_EXTENSIONS))})")
    return items


_LAYOUT_HINTS = {
    "folder": "one sub-folder per class, audio files at any depth below it",
    "tinysol": "<Family>/<Abbreviation>/ordinario/*.wav, e.g. Brass/Tbn/ordinario/Tbn-ord-A#1-ff-N-N.wav",
    "sol": "[<Family>/]<Instrument>/<technique>/*.wav, e.g. Strings/Violoncello/ordinario/Vc-ord-C2-mf-4c.wav",
    "librispeech": "<speaker>/<chapter>/*.flac with numeric speaker and chapter folders",
    "auto": "a class-folder, TinySOL, SOL 0.9 HQ or LibriSpeech layout",
}


# --- folder layout (and our renderer's metadata) -------------------------------------------------------

def _read_metadata(csv_path: Path, root: Path) -> dict[Path, dict[str, str]]:
    """Rows of a renderer metadata file keyed by absolute file path; empty when the file is absent."""
    if not csv_path.is_file():
        return {}
    with open(csv_path, newline="") as f:
        return {(root / row["path"]).resolve(): row for row in csv.DictReader(f) if row.get("path")}


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text not in (None, "") else None


def scan_folder(root: str | Path) -> list[Item]:
    """Items of a folder with one sub-folder per class (label = sub-folder name), audio at any depth.

    Library defaults to the root folder's name; rows of ``root/metadata.csv`` (our renderer's) override
    library and supply midi and variant.  The top-level ``phrases/`` folder is left out (see
    :func:`scan_phrases`).
    """
    root = _require_folder(root, "folder")
    metadata = _read_metadata(root / "metadata.csv", root)
    items = []
    for class_dir in _subfolders(root):
        if class_dir.name == PHRASES_DIR:
            continue
        for path in _audio_below(class_dir):
            row = metadata.get(path, {})
            items.append(Item(path, class_dir.name, row.get("library") or root.name,
                              _int_or_none(row.get("midi")), row.get("variant", "")))
    return _require_items(items, root, "folder")


def scan_phrases(root: str | Path) -> list[Phrase]:
    """The legato phrases under ``root/phrases/<class>/`` with the ``.notes.csv`` beside each.

    Uses ``root/phrases/metadata.csv`` for the library when present; a phrase without a notes file gets
    ``notes_path=None``.
    """
    root = _require_folder(root, "folder")
    phrases_dir = root / PHRASES_DIR
    if not phrases_dir.is_dir():
        raise DatasetError(f"no {PHRASES_DIR}/ folder in {root} (render one with `python -m training.data "
                           f"render --phrases-per-class N`)")
    metadata = _read_metadata(phrases_dir / "metadata.csv", root)
    phrases = []
    for class_dir in _subfolders(phrases_dir):
        for path in _audio_below(class_dir):
            row = metadata.get(path, {})
            notes = path.with_suffix(".notes.csv")
            phrases.append(Phrase(Item(path, class_dir.name, row.get("library") or root.name),
                                  notes if notes.is_file() else None))
    return _require_items(phrases, phrases_dir, "folder")


# --- TinySOL and SOL 0.9 HQ ----------------------------------------------------------------------------

def _ircam_fields(path: Path) -> tuple[int | None, str]:
    """(midi, dynamic) from an Ircam file name such as ``Tbn-ord-A#1-ff-N-N`` (fields after the
    instrument and technique); either is missing when no field parses as one."""
    fields = path.stem.split("-")[2:]
    midi = next((m for m in map(pitch_to_midi, fields) if m is not None), None)
    dynamic = next((f for f in fields if f in _DYNAMICS), "")
    return midi, dynamic


def scan_tinysol(root: str | Path) -> list[Item]:
    """TinySOL: ``<Family>/<Abbreviation>/ordinario/*.wav`` found at any depth below root.

    Labels are Protophone class names (``Tbn`` -> ``trombone``); an abbreviation outside the 14 known
    ones keeps its folder name as label.  midi comes from the pitch field of the file name, variant is
    the dynamic (``pp`` .. ``ff``).
    """
    root = _require_folder(root, "tinysol")
    items = []
    for technique_dir in sorted(root.rglob(ORDINARIO)):
        if not technique_dir.is_dir():
            continue
        abbreviation = technique_dir.parent.name
        label = TINYSOL_CLASSES.get(abbreviation, abbreviation)
        for path in _audio_below(technique_dir):
            midi, dynamic = _ircam_fields(path)
            items.append(Item(path, label, "TinySOL", midi, dynamic))
    return _require_items(items, root, "tinysol")


def scan_sol(root: str | Path) -> list[Item]:
    """SOL 0.9 HQ: every ``<Instrument>/<technique>/`` folder that holds audio is one class.

    ASSUMPTION (no copy of SOL is available here to check against): the archive is laid out as
    ``SOL_0.9_HQ/<Family>/<Instrument>/<technique>/<Abbr>-<tech>-<Pitch>-<dyn>-....wav``, e.g.
    ``Strings/Violoncello/ordinario/Vc-ord-C2-mf-4c.wav``, as paths quoted in public code show; a root
    without the family level works too.  The label is ``<Instrument>-<technique>`` taken from the two
    folders directly above each file, so it does not depend on the family level.  The paper's 33 classes
    are the instrument+technique pairs of its copy; how many a given copy yields is whatever it holds
    (filter the returned items by label to reproduce a published class list).
    """
    root = _require_folder(root, "sol")
    items = []
    for path in _audio_below(root):
        relative = path.relative_to(root).parts
        if len(relative) < 3:  # needs <Instrument>/<technique>/<file>
            continue
        midi, dynamic = _ircam_fields(path)
        items.append(Item(path, f"{relative[-3]}-{relative[-2]}", "SOL", midi, dynamic))
    return _require_items(items, root, "sol")


# --- LibriSpeech ---------------------------------------------------------------------------------------

def _frames(path: Path) -> int:
    """Length in samples from the file header (0 for an unreadable file; it is reported when loaded)."""
    try:
        return sf.info(str(path)).frames
    except (sf.LibsndfileError, RuntimeError):
        return 0


def scan_librispeech(root: str | Path, n_speakers: int) -> list[Item]:
    """LibriSpeech ``<speaker>/<chapter>/*.flac``: the ``n_speakers`` speakers with the most audio (all of
    them where there are fewer: the paper's 128 of train-clean-360, the 28 of the synthetic stand-in).

    "Most audio" is the total number of samples read from the file headers (ties broken by speaker id),
    so the choice is the same on every machine.  Label = speaker id (folder name); ``variant`` = chapter,
    which ``data.split: chapter`` keeps on one side of a split.
    """
    if n_speakers < 1:
        raise ValueError(f"n_speakers must be at least 1, got {n_speakers}")
    root = _require_folder(root, "librispeech")
    by_speaker: dict[str, list[tuple[Path, str]]] = defaultdict(list)
    for speaker_dir in _subfolders(root):
        for chapter_dir in _subfolders(speaker_dir):
            by_speaker[speaker_dir.name] += [(p, chapter_dir.name) for p in _audio_below(chapter_dir)
                                             if p.suffix.lower() == ".flac"]
    totals = {speaker: sum(_frames(path) for path, _ in files) for speaker, files in by_speaker.items() if files}
    _require_items(list(totals), root, "librispeech")
    chosen = sorted(totals, key=lambda s: (-totals[s], s))[:n_speakers]
    return [Item(path, speaker, "LibriSpeech", variant=chapter) for speaker in sorted(chosen)
            for path, chapter in by_speaker[speaker]]


# --- detection -----------------------------------------------------------------------------------------

def detect_layout(root: str | Path) -> str:
    """Guess the layout from folder names only (no audio is read).

    TinySOL: an ``<Abbreviation>/ordinario`` folder with a known abbreviation, two levels down.
    SOL: any other ``ordinario`` folder two or three levels down (Ircam's name for ordinary playing).
    LibriSpeech: numeric speaker folders holding numeric chapter folders.  Otherwise: class folders.
    """
    root = _require_folder(root, "auto")
    ordinario = [p for depth in ("*/*", "*/*/*") for p in root.glob(f"{depth}/{ORDINARIO}") if p.is_dir()]
    if any(p.parent.name in TINYSOL_CLASSES for p in ordinario):
        return "tinysol"
    if ordinario:
        return "sol"
    speakers = _subfolders(root)
    if speakers and all(s.name.isdigit() for s in speakers):
        chapters = _subfolders(speakers[0])
        if chapters and all(c.name.isdigit() for c in chapters):
            return "librispeech"
    return "folder"


def scan(root: str | Path, layout: str = "auto", n_speakers: int = 128) -> list[Item]:
    """Items of a dataset folder in the given layout (``auto`` detects it, see :func:`detect_layout`).

    ``n_speakers`` applies to LibriSpeech only.  Raises :class:`DatasetError` for a missing or empty
    folder, naming the folder and the layout expected.
    """
    if layout not in (*LAYOUTS, "auto"):
        raise DatasetError(f"unknown layout {layout!r}; choose one of auto, {', '.join(LAYOUTS)}")
    if layout == "auto":
        layout = detect_layout(root)
    if layout == "librispeech":
        return scan_librispeech(root, n_speakers)
    return {"folder": scan_folder, "tinysol": scan_tinysol, "sol": scan_sol}[layout](root)
