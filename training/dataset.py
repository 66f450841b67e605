"""Plan and render a dataset of single notes and legato phrases from one SoundFont into a folder.

Layout written under the output folder:
    <class>/<class>-<midi>-v<velocity>-<variant>.wav      single notes (mono, PCM 16-bit)
    metadata.csv                                           one row per written note
    phrases/<class>/<class>-phrase-<n>.wav (+ .notes.csv)  legato phrases and their notes (onset_s, offset_s, midi)
    phrases/metadata.csv                                   one row per written phrase
    dropped.csv                                            every render dropped as silent, with its level
    summary.json                                           settings and per-class counts
Every random choice is drawn from a generator seeded by (seed, class, note, variant), so a file's content
depends only on the seed and its own identity, not on which other files are rendered or in what order.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.atomic import replacing, write_text
from training.instruments import INSTRUMENTS, VELOCITIES, Instrument
from training.performance import VARIANTS, Performance, PhraseNote, Variant, random_phrase, single_note
from training.render import Renderer
from training.silence import is_silent, level_dbfs, trim_trailing_silence

METADATA_COLUMNS = ["path", "class", "midi", "velocity", "variant", "library", "duration_s",
                    "program", "peak_dbfs", "rms"]
PHRASE_COLUMNS = ["path", "notes_path", "class", "n_notes", "library", "duration_s", "peak_dbfs", "rms"]
DROPPED_COLUMNS = ["kind", "class", "midi", "velocity", "variant", "library", "peak_dbfs", "rms_dbfs"]
PROBE_VELOCITY = 80


class OutputError(Exception):
    """The output folder cannot be created or written."""


@dataclass(frozen=True)
class NoteJob:
    instrument: Instrument
    midi: int
    velocity: int
    variant: str
    relpath: str
    performance: Performance


@dataclass(frozen=True)
class PhraseJob:
    instrument: Instrument
    index: int
    relpath: str
    performance: Performance
    notes: tuple[PhraseNote, ...]


@dataclass
class ClassReport:
    notes: int = 0
    dropped: int = 0
    phrases: int = 0
    dropped_phrases: int = 0
    duration_s: float = 0.0
    rms_sum: float = 0.0

    @property
    def mean_rms(self) -> float:
        """Mean RMS of the written single notes (a loudness figure to compare libraries by)."""
        return self.rms_sum / self.notes if self.notes else 0.0


@dataclass
class DatasetReport:
    library: str
    classes: dict[str, ClassReport] = field(default_factory=dict)
    wall_s: float = 0.0


def _rng(seed: int, inst: Instrument, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, INSTRUMENTS.index(inst), *key])


def _evenly(items: list, limit: int | None) -> list:
    """At most `limit` items spread evenly over the list, so a tiny dataset still spans the range."""
    if limit is None or len(items) <= limit:
        return items
    idx = np.unique(np.round(np.linspace(0, len(items) - 1, limit)).astype(int))
    return [items[i] for i in idx]


def plan_notes(inst: Instrument, seed: int, max_notes: int | None = None) -> list[NoteJob]:
    """Every key in range: plain notes at each velocity, plus each expressive variant at a seeded velocity."""
    jobs: list[NoteJob] = []
    for midi in inst.keys:
        for v_index, variant in enumerate(VARIANTS):
            rng = _rng(seed, inst, midi, v_index)
            velocities = VELOCITIES if variant.name == "plain" else (int(rng.choice(VELOCITIES)),)
            for velocity in velocities:
                jobs.append(_note_job(inst, midi, velocity, variant, rng))
    return _evenly(jobs, max_notes)


def _note_job(inst: Instrument, midi: int, velocity: int, variant: Variant,
              rng: np.random.Generator) -> NoteJob:
    relpath = f"{inst.name}/{inst.name}-{midi:03d}-v{velocity:03d}-{variant.name}.wav"
    return NoteJob(inst, midi, velocity, variant.name, relpath, single_note(variant, midi, velocity, rng))


def playable_keys(library: Renderer, inst: Instrument) -> list[int]:
    """Keys in the instrument's range that the SoundFont actually sounds (probed at mf)."""
    variant = VARIANTS[0]
    rng = np.random.default_rng(0)  # a plain note draws nothing from it
    return [midi for midi in inst.keys
            if not is_silent(library.render(inst.program, single_note(variant, midi, PROBE_VELOCITY, rng)))]


def plan_phrases(inst: Instrument, keys: list[int], seed: int, count: int) -> list[PhraseJob]:
    """`count` seeded legato phrases over the given (playable) keys."""
    jobs = []
    for index in range(count):
        performance, notes = random_phrase(_rng(seed, inst, 1000 + index), keys)
        relpath = f"phrases/{inst.name}/{inst.name}-phrase-{index:03d}.wav"
        jobs.append(PhraseJob(inst, index, relpath, performance, tuple(notes)))
    return jobs


def check_writable(out_dir: Path) -> None:
    """Create the folder and prove a file can be written there, before any time is spent rendering."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write to output folder {out_dir}: {exc.strerror or exc}") from exc


def write_notes_csv(path: Path, notes: Iterable[PhraseNote]) -> None:
    with replacing(path) as temporary, open(temporary, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["onset_s", "offset_s", "midi"])
        for n in notes:
            writer.writerow([f"{n.onset_s:.6f}", f"{n.offset_s:.6f}", n.midi])


@dataclass(frozen=True)
class _Context:
    library: Renderer
    out_dir: Path
    library_name: str


# Set in the parent before worker processes fork, so workers share the loaded SoundFont's samples.
_CONTEXT: _Context | None = None


def _run_job(job: NoteJob | PhraseJob) -> tuple[NoteJob | PhraseJob, dict | None, dict | None]:
    """Render, check, trim and write one job; returns (job, written row or None, dropped row or None)."""
    assert _CONTEXT is not None
    ctx = _CONTEXT
    sample_rate = ctx.library.sample_rate
    audio = ctx.library.render(job.instrument.program, job.performance)
    peak_db, rms_db = level_dbfs(audio)
    silent = is_silent(audio)
    if isinstance(job, PhraseJob) and not silent:
        silent = any(is_silent(_segment(audio, n, sample_rate)) for n in job.notes)
    if silent:
        return job, None, _dropped_row(job, ctx.library_name, peak_db, rms_db)
    audio = trim_trailing_silence(audio, sample_rate)
    path = ctx.out_dir / job.relpath
    with replacing(path) as temporary:
        sf.write(temporary, audio, sample_rate, subtype="PCM_16")
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    row = {"path": job.relpath, "class": job.instrument.name, "library": ctx.library_name,
           "duration_s": f"{len(audio) / sample_rate:.4f}", "peak_dbfs": f"{peak_db:.2f}",
           "rms": f"{rms:.6f}"}
    if isinstance(job, NoteJob):
        row |= {"midi": job.midi, "velocity": job.velocity, "variant": job.variant,
                "program": job.instrument.program}
    else:
        notes_path = path.with_suffix(".notes.csv")
        write_notes_csv(notes_path, job.notes)
        row |= {"notes_path": notes_path.relative_to(ctx.out_dir).as_posix(), "n_notes": len(job.notes)}
    return job, row, None


def _segment(audio: np.ndarray, note: PhraseNote, sample_rate: int) -> np.ndarray:
    return audio[int(note.onset_s * sample_rate):int(note.offset_s * sample_rate)]


def _dropped_row(job: NoteJob | PhraseJob, library_name: str, peak_db: float, rms_db: float) -> dict:
    is_note = isinstance(job, NoteJob)
    return {"kind": "note" if is_note else "phrase", "class": job.instrument.name,
            "midi": job.midi if is_note else "", "velocity": job.velocity if is_note else "",
            "variant": job.variant if is_note else "phrase", "library": library_name,
            "peak_dbfs": f"{peak_db:.2f}", "rms_dbfs": f"{rms_db:.2f}"}


def _results(jobs: list, n_workers: int) -> Iterator[tuple]:
    if n_workers <= 1 or len(jobs) < 2:
        yield from map(_run_job, jobs)
        return
    # fork: workers inherit the loaded SoundFont instead of each reading it again.
    with multiprocessing.get_context("fork").Pool(n_workers) as pool:
        yield from pool.imap(_run_job, jobs, chunksize=8)


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with replacing(path) as temporary, open(temporary, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def render_dataset(library: Renderer, library_name: str, out_dir: Path, instruments: list[Instrument],
                   seed: int = 0, max_notes: int | None = None, phrases_per_class: int = 8,
                   workers: int = 1, progress: Callable[[Iterable, int], Iterable] | None = None,
                   ) -> DatasetReport:
    """Render notes and phrases of each instrument into out_dir; returns per-class counts.

    `progress` wraps the result iterator (e.g. a tqdm bar) given the total number of jobs.
    """
    global _CONTEXT  # noqa: PLW0603 - set before the workers fork, so they inherit it instead of a pickled copy
    start = time.perf_counter()
    check_writable(out_dir)
    jobs: list[NoteJob | PhraseJob] = []
    for inst in instruments:
        jobs += plan_notes(inst, seed, max_notes)
        if phrases_per_class > 0:
            jobs += plan_phrases(inst, playable_keys(library, inst), seed, phrases_per_class)
    _CONTEXT = _Context(library, out_dir, library_name)
    report = DatasetReport(library_name, {inst.name: ClassReport() for inst in instruments})
    notes, phrases, dropped = [], [], []
    results: Iterable = _results(jobs, workers)
    if progress is not None:
        results = progress(results, len(jobs))
    for job, row, drop in results:
        counts = report.classes[job.instrument.name]
        is_note = isinstance(job, NoteJob)
        if drop is not None:
            dropped.append(drop)
            if is_note:
                counts.dropped += 1
            else:
                counts.dropped_phrases += 1
            continue
        counts.duration_s += float(row["duration_s"])
        if is_note:
            notes.append(row)
            counts.notes += 1
            counts.rms_sum += float(row["rms"])
        else:
            phrases.append(row)
            counts.phrases += 1
    _write_csv(out_dir / "metadata.csv", METADATA_COLUMNS, notes)
    if phrases:  # their folder exists: the phrase files were written into it
        _write_csv(out_dir / "phrases" / "metadata.csv", PHRASE_COLUMNS, phrases)
    _write_csv(out_dir / "dropped.csv", DROPPED_COLUMNS, dropped)
    report.wall_s = time.perf_counter() - start
    summary = {"library": library_name, "soundfont": str(library.path), "sample_rate": library.sample_rate,
               "seed": seed, "max_notes_per_class": max_notes, "phrases_per_class": phrases_per_class,
               "classes": {name: asdict(c) | {"mean_rms": c.mean_rms} for name, c in report.classes.items()}}
    write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return report
