"""Is a library independent of the others, or built from the same recordings?  Measured, not assumed.

Two libraries that share a recording play the same waveform for the same note, up to level, a start
offset and perhaps resampling.  For every class two libraries share, this takes the same plain note
(same key, velocity 80) from each, and reports the highest normalised cross-correlation of their
waveforms over lags of up to 50 ms, in the first 0.5 s of sound.  A shared recording scores near 1
(the same note of one library against itself: 1.00); unrelated recordings of the same instrument
score far lower, because their partials' phases drift apart.  The table gives each pair's median
over notes, and the classes whose own median says they share recordings (>= SHARED) or may be
derived from one another (>= RELATED: low brass, for one, correlates well by nature).

    python -m benchmarks.independence data/freepats data/FluidR3_GM data/TimGM6mb data/sf_GMbank
"""

from __future__ import annotations

import argparse
import csv
import json
from itertools import combinations
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.atomic import write_text

VELOCITY = 80
WINDOW_S = 0.5
MAX_LAG_S = 0.05
RESULTS = Path("benchmarks/results/independence")
SHARED = 0.95
RELATED = 0.75


def plain_notes(folder: Path) -> dict[tuple[str, int], Path]:
    """(class, key) -> file of the plain note at VELOCITY."""
    with open(folder / "metadata.csv", newline="") as f:
        return {(row["class"], int(row["midi"])): folder / row["path"] for row in csv.DictReader(f)
                if row["variant"] == "plain" and int(row["velocity"]) == VELOCITY}


def sound(path: Path) -> tuple[np.ndarray, int]:
    """WINDOW_S of audio from the note's onset (the first sample above -40 dB of its peak)."""
    audio, rate = sf.read(str(path), dtype="float64")
    onset = int(np.argmax(np.abs(audio) > 0.01 * np.abs(audio).max()))
    return audio[onset : onset + int(WINDOW_S * rate)], rate


def similarity(a: np.ndarray, b: np.ndarray, max_lag: int) -> float:
    """Highest normalised cross-correlation over lags within ``max_lag`` samples (FFT)."""
    n = len(a) + len(b)
    spectrum = np.fft.rfft(a, n) * np.conj(np.fft.rfft(b, n))
    correlation = np.fft.irfft(spectrum, n)
    lags = np.concatenate((correlation[: max_lag + 1], correlation[-max_lag:]))
    return float(np.abs(lags).max() / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def compare(first: Path, second: Path) -> dict:
    notes_a, notes_b = plain_notes(first), plain_notes(second)
    by_class: dict[str, list[float]] = {}
    for key in sorted(set(notes_a) & set(notes_b)):
        a, rate = sound(notes_a[key])
        b, rate_b = sound(notes_b[key])
        if rate == rate_b and len(a) == len(b):
            by_class.setdefault(key[0], []).append(similarity(a, b, int(MAX_LAG_S * rate)))
    scores = [score for class_scores in by_class.values() for score in class_scores]
    class_medians = {name: round(float(np.median(values)), 3) for name, values in by_class.items()}
    return {"libraries": [first.name, second.name], "notes": len(scores), "classes": len(by_class),
            "median": float(np.median(scores)) if scores else None, "class_medians": class_medians,
            "shared": sorted(name for name, m in class_medians.items() if m >= SHARED),
            "related": sorted(name for name, m in class_medians.items() if RELATED <= m < SHARED)}


def measured_rows(path: Path) -> list[dict]:
    """The pairs a results file holds (none when there is no file yet)."""
    return json.loads(path.read_text()) if path.is_file() else []


def kept_with(kept: list[dict], measured: list[dict]) -> list[dict]:
    """``kept`` with each pair ``measured`` again replaced, then the new pairs: a run over some libraries keeps
    the pairs of libraries that are not on this machine any more (the table is the project's record)."""
    fresh = {tuple(row["libraries"]): row for row in measured}
    rows = [fresh.pop(tuple(row["libraries"]), row) for row in kept]
    return rows + list(fresh.values())


def markdown(rows: list[dict]) -> str:
    lines = [(f"| libraries | classes | notes | median similarity | shared recordings (class median >= {SHARED}) "
              f"| related? (>= {RELATED}) |"), "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {' / '.join(row['libraries'])} | {row['classes']} | {row['notes']} | {row['median']:.2f} | "
                     f"{', '.join(row['shared']) or 'none'} | {', '.join(row['related']) or 'none'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.independence", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="rendered library folders (with metadata.csv)")
    args = parser.parse_args(argv)
    missing = [str(f) for f in args.folders if not (f / "metadata.csv").is_file()]
    if missing:
        parser.error(f"not a rendered library (no metadata.csv): {', '.join(missing)}")
    self_check = compare(args.folders[0], args.folders[0]) | {"libraries": [args.folders[0].name] * 2}
    rows = kept_with(measured_rows(RESULTS / "independence.json"),
                     [self_check] + [compare(a, b) for a, b in combinations(args.folders, 2)])
    write_text(RESULTS / "independence.json", json.dumps(rows, indent=1) + "\n")
    write_text(RESULTS / "independence.md", markdown(rows) + "\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
