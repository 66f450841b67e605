"""The live readout through whole phrases: how often it is right, how often it flickers, how it ends.

    python -m benchmarks.readout                                  # presets/orchestra.pt, its libraries' phrases
    python -m benchmarks.readout --ratios 1 1.5 2 --phrases 2 --json
    python -m benchmarks.readout --model runs/orchestra/model.pt --data data/FluidR3_GM data/TimGM6mb

A performer plays phrases, not single notes: between notes and at their ends the readout must not flicker
between two similar instruments, and when the phrase ends it should show what the clip decision says.  This
benchmark plays the legato phrases rendered with each of the model's training libraries (``<library>/phrases``,
never training items: a validation set from the training sources, not a test set) through the model and the
engine's own :class:`engine.identify.StreamingIdentifier` once per ``switch_ratio`` (the posterior a challenger
needs over the class shown, ``engine.identify.DEFAULT_SWITCH_RATIO``), everything else at the engine's defaults.

Per ratio: the live OA after 0.25 s and 1 s of sound (a phrase it names nothing for counts as wrong), the share
of sounding frames it names the true class and names nothing, the switches per phrase (one named class replaced
by another), and the share of phrases whose last named class is the clip decision and is the true class.
Writes ``readout.json`` and ``readout.md`` to ``--keep``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchmarks.tables import keep_table, show_table
from engine.errors import ProtophoneError
from engine.identify import DEFAULT_GATE_DB, SoundingGate
from engine.modelfile import load_model
from engine.preset import load_preset
from training.config import load_config
from training.features import load_clips
from training.layouts import DatasetError, scan_phrases
from training.scoring import STREAMING_CHECKPOINTS_S, ClipReader, ClipReadout, live_after

SHIPPED_CONFIG = Path("training/configs/orchestra.yaml")
DEFAULT_RATIOS = (1.0, 1.25, 1.5, 2.0, 3.0)


def phrase_figures(readout: ClipReadout, truth: int, class_index: dict[str, int], frame_rate: float) -> dict:
    """One phrase's figures (see the module docstring) from its readout and its true class."""
    sounding = SoundingGate(frame_rate)(readout.levels_db)
    named = readout.live[readout.live >= 0]
    switches = int(np.count_nonzero(np.diff(named))) if len(named) else 0
    last = int(named[-1]) if len(named) else -1
    clip = -1 if readout.clip is None else class_index[readout.clip]
    figures = {f"live {s:g} s": live_after(readout, math.ceil(s * frame_rate), DEFAULT_GATE_DB) == truth
               for s in STREAMING_CHECKPOINTS_S}
    heard = readout.live[sounding]
    return {**figures, "right frames": float(np.mean(heard == truth)) if len(heard) else 0.0,
            "unnamed frames": float(np.mean(heard < 0)) if len(heard) else 1.0, "switches": switches,
            "ends on the clip decision": last == clip, "ends right": last == truth}


def measure(model_path: Path, roots: list[Path], ratios: tuple[float, ...], per_class: int,
            cache: Path) -> list[dict]:
    """A row per ratio over up to ``per_class`` phrases of each class of each root (in file order)."""
    model = load_model(model_path)
    reader = ClipReader(model, DEFAULT_GATE_DB)
    class_index = {name: index for index, name in enumerate(model.metadata.class_names)}
    phrases = []
    for root in roots:
        found = sorted(scan_phrases(root), key=lambda phrase: str(phrase.item.path))
        kept: dict[str, int] = {}
        for phrase in found:
            if phrase.item.label in class_index and kept.get(phrase.item.label, 0) < per_class:
                kept[phrase.item.label] = kept.get(phrase.item.label, 0) + 1
                phrases.append(phrase.item)
    clips = load_clips(phrases, model.metadata.analysis, cache, progress=False, jobs=2)
    rows: dict[float, list[dict]] = {ratio: [] for ratio in ratios}
    for item, clip in tqdm(list(zip(clips.items, clips.features, strict=True)), desc="phrases", leave=False):
        errors = reader.errors(clip)
        for ratio in ratios:
            readout = reader.read(clip, errors, switch_ratio=ratio)
            rows[ratio].append(phrase_figures(readout, class_index[item.label], class_index,
                                              model.metadata.analysis.frame_rate))
    return [{"switch_ratio": ratio, "phrases": len(figures),
             **{name: 100.0 * float(np.mean([f[name] for f in figures])) for name in figures[0] if name != "switches"},
             "switches per phrase": float(np.mean([f["switches"] for f in figures]))}
            for ratio, figures in rows.items()]


def markdown(rows: list[dict]) -> str:
    header = ("| switch ratio | live 0.25 s OA | live 1 s OA | frames named right | frames named nothing | "
              "switches per phrase | ends on the clip decision | ends right |")
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {row['switch_ratio']:g} | {row['live 0.25 s']:.1f} | {row['live 1 s']:.1f} | "
              f"{row['right frames']:.1f} | {row['unnamed frames']:.1f} | {row['switches per phrase']:.2f} | "
              f"{row['ends on the clip decision']:.1f} | {row['ends right']:.1f} |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.readout", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="identify", help="preset name, preset YAML or model file (default: "
                        "identify, the shipped presets/orchestra.pt)")
    parser.add_argument("--data", type=Path, nargs="+", help="library folders with phrases/ (default: the shipped "
                        "config's training libraries)")
    parser.add_argument("--ratios", type=float, nargs="+", default=DEFAULT_RATIOS,
                        help=f"switch ratios to compare (default {' '.join(f'{r:g}' for r in DEFAULT_RATIOS)})")
    parser.add_argument("--phrases", type=int, default=3, help="phrases per class and library (default 3)")
    parser.add_argument("--cache", type=Path, default=Path("data/cache"), help="feature cache folder")
    parser.add_argument("--keep", type=Path, default=Path("benchmarks/results/readout"),
                        help="folder for readout.json and readout.md")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    if min(args.ratios) < 1.0 or args.phrases < 1:
        parser.error("ratios must be at least 1 and --phrases at least 1")
    roots = args.data or list(load_config(SHIPPED_CONFIG).data.roots)
    try:
        rows = measure(load_preset(args.model).model, roots, tuple(args.ratios), args.phrases, args.cache)
    except (ProtophoneError, DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    keep_table(args.keep, "readout", rows, markdown(rows))
    show_table(rows, markdown(rows), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
