"""Enrolment on an unseen library: OA on its notes before and after enrolling 30 s of its phrases per class.

    python -m benchmarks.enrolment                       # the leave-one-library-out rotations
    python -m benchmarks.enrolment --seconds 10 --json
    python -m benchmarks.enrolment --model benchmarks/results/accuracy/lolo-generaluser/prototypes.pt \\
        --library GeneralUserGS                          # any model on a library it never heard

For each rotation the model never heard the test library.  Its legato phrases (``data/<library>/phrases``,
never among the scored notes) stand in for a performer's takes: up to ``--seconds`` of them per class are
enrolled with :func:`training.enrol.enrol` (all classes at once), and every note of the library is scored
before and after.  The models are the rotations' runs (``runs/<study>/model.pt``) where trained, else the
kept ones in ``benchmarks/results/accuracy``; ``--model`` and ``--library`` measure any model on a library it never
heard instead (the run's folder names its row).  Writes ``enrolment.json`` and ``enrolment.md`` to ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.accuracy import STUDIES, _config
from benchmarks.tables import keep_table, show_table
from engine.config import AnalysisConfig
from engine.modelfile import load_model
from training.enrol import enrol, write_enrolled
from training.evaluate import evaluate
from training.features import load_clips
from training.layouts import scan_phrases

ROTATIONS = tuple(study for study in STUDIES if study.startswith("lolo-"))
DATA = Path("data")
CACHE = Path("data/cache")


def rotation_model(study: str) -> Path:
    trained = Path(_config(study)["output"]) / "model.pt"
    return trained if trained.exists() else Path(f"benchmarks/results/accuracy/{study}/prototypes.pt")


def takes_of(root: Path, analysis: AnalysisConfig, seconds: float, cache: Path = CACHE) -> dict[str, list[np.ndarray]]:
    """Up to ``seconds`` of the phrases under ``root`` per class, in file order, as log-mel frames."""
    phrases = sorted(scan_phrases(root), key=lambda phrase: str(phrase.item.path))
    clips = load_clips([phrase.item for phrase in phrases], analysis, cache, progress=False, jobs=2)
    takes: dict[str, list[np.ndarray]] = {}
    budget = seconds * analysis.frame_rate
    for item, frames in zip(clips.items, clips.features, strict=True):
        taken = takes.setdefault(item.label, [])
        left = int(budget - sum(len(f) for f in taken))
        if left > 0:
            taken.append(frames[:left])
    return takes


def measure(study: str, model_path: Path, library: str, seconds: float, out: Path) -> dict:
    """Enrol ``seconds`` of ``library``'s phrases per class into the model at ``model_path`` (which never heard
    that library); the enrolled file goes to ``out/<study>-enrolled.pt``."""
    model = load_model(model_path)
    takes = takes_of(DATA / library, model.metadata.analysis, seconds)
    started = time.perf_counter()
    prototypes = enrol(model, takes)
    adapt_s = time.perf_counter() - started
    enrolled_path = out / f"{study}-enrolled.pt"
    write_enrolled(model, prototypes, enrolled_path, {"phrases_of": library, "seconds_per_class": seconds})
    scores = {name: evaluate(str(path), DATA / library, cache=CACHE, progress=False)  # every note of it
              for name, path in (("before", model_path), ("after", enrolled_path))}
    row = {"study": study, "library": library, "model": str(model_path), "seconds_per_class": seconds,
           "enrolled_s": round(sum(len(c) for clips in takes.values() for c in clips)
                               / model.metadata.analysis.frame_rate, 1),
           "adapt_s": round(adapt_s, 1),
           **{name: {"OA": r["OA"], "AA": r["AA"]} for name, r in scores.items()}}
    print(json.dumps(row), flush=True)
    return row


def kept_with(kept: Path, rows: list[dict]) -> list[dict]:
    """The rows already in ``kept`` with ``rows`` in place of those for the same model and library (or added):
    one measurement does not drop the others from the table."""
    merged = {(row["study"], row["library"]): row for row in (json.loads(kept.read_text()) if kept.is_file() else [])}
    merged.update({(row["study"], row["library"]): row for row in rows})
    return list(merged.values())


def markdown(rows: list[dict]) -> str:
    lines = [("| rotation | unseen library | enrolled (s, all classes) | adaptation s "
              "| OA / AA before | OA / AA after |"),
             "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['study']} | {row['library']} | {row['enrolled_s']:.0f} | {row['adapt_s']:.1f} | "
                     f"{row['before']['OA']:.1f} / {row['before']['AA']:.1f} | "
                     f"{row['after']['OA']:.1f} / {row['after']['AA']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.enrolment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=ROTATIONS, default=ROTATIONS, help="rotations to measure")
    parser.add_argument("--model", type=Path, help="a model file to measure instead of the rotations' (with "
                        "--library)")
    parser.add_argument("--library", help="with --model: the library under data/ that the model never heard")
    parser.add_argument("--seconds", type=float, default=30.0, help="phrases enrolled per class (default 30)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--keep", type=Path, default=Path("benchmarks/results/enrolment"),
                        help="folder for enrolment.json, enrolment.md and the enrolled model files")
    args = parser.parse_args(argv)
    if (args.model is None) != (args.library is None):
        parser.error("--model and --library go together: the model and the library it never heard")
    if args.model is not None:
        if not args.model.is_file():
            parser.error(f"no model file at {args.model}")
        if not (DATA / args.library / "phrases").is_dir():
            parser.error(f"no phrases in {DATA / args.library} (render the library with `python -m training.data`)")
        measured = [(args.model.parent.name, args.model, args.library)]
    else:
        measured = [(study, rotation_model(study), _config(study)["data"]["test_library"]) for study in args.only]
    args.keep.mkdir(parents=True, exist_ok=True)
    rows = [measure(study, model, library, args.seconds, args.keep) for study, model, library in measured]
    rows = kept_with(args.keep / "enrolment.json", rows)
    keep_table(args.keep, "enrolment", rows, markdown(rows))
    show_table(rows, markdown(rows), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
