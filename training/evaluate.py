"""Score a preset, an engine model file or a baseline file on labelled audio.

    python -m training.evaluate --preset identify --data data/TimGM6mb --json
    python -m training.evaluate --preset runs/orchestra/model.pt --data data/FluidR3_GM \\
        --split runs/orchestra/split.csv --out runs/orchestra/eval-fluidr3
    python -m training.evaluate --preset runs/orchestra/model.pt --data data \\
        --split runs/orchestra/split.csv --library TimGM6mb          # one library's held-out notes
    python -m training.evaluate --preset runs/orchestra/cnn.pt --data data/TimGM6mb     # a baseline

Folder names (or the layout's labels) are the class names.  With ``--split`` only that split's test side
is scored; without it, every file under ``--data``.  Reports OA, AA (mean per-class recall), per-class
recall and the confusion matrix; for prototype models also the live decision after 0.25 s and 1 s of
sound.  ``--out`` writes ``metrics.json`` and ``confusion.png`` there.

The examples' ``data/`` is rendered by ``python -m training.rebuild --data-only`` (about 3 minutes) and their
``runs/orchestra`` by ``python -m training.train --config training/configs/orchestra.yaml``; a shipped preset
(``--preset identify``) and any folder of labelled audio need neither.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from engine.atomic import write_text
from engine.errors import ModelFileError, ProtophoneError
from engine.identify import DEFAULT_GATE_DB, DEFAULT_MIN_CONFIDENCE
from engine.modelfile import load_model
from engine.parameters import SETTINGS
from engine.preset import load_preset
from training.allocator import keep_freed_memory
from training.baselines import AutoencoderKMeans, CnnClassifier, accuracy_metrics
from training.features import load_clips
from training.layouts import DatasetError, Item, scan
from training.plotting import pyplot, save
from training.scoring import clip_decisions
from training.splits import SplitError, read_split


class EvaluationError(ValueError):
    """Data and model that cannot be scored together."""


def evaluation_items(data: Path, split: Path | None, layout: str, library: str | None = None) -> list[Item]:
    """Every item under ``data``, or the test side of ``split``; optionally one sample library only."""
    items = scan(data, layout) if split is None else read_split(split, data)["test"]
    if library is not None:
        items = [item for item in items if item.library == library]
        if not items:
            raise EvaluationError(f"no items of library {library!r} to evaluate under {data}")
    return items


def load_scorer(spec: str, device: str):
    """An engine model (from a preset or model file) or a baseline; returns ``(kind, object)``."""
    path = Path(spec)
    try:
        return "prototypes", load_model(load_preset(spec).model, device)
    except ProtophoneError as error:
        if not path.is_file():
            raise
        engine_error = error
    for kind, loader in (("cnn", CnnClassifier.load), ("autoencoder+kmeans", AutoencoderKMeans.load)):
        try:
            return kind, loader(path, device=device)
        except ValueError:
            continue
    raise ModelFileError(f"{path} is neither an engine model nor a baseline file ({engine_error})")


def evaluate(spec: str, data: Path, split: Path | None = None, layout: str = "auto", cache: Path = Path("data/cache"),
             device: str = "cpu", gate_db: float = DEFAULT_GATE_DB, progress: bool = True,
             library: str | None = None, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> dict:
    kind, scorer = load_scorer(spec, device)
    class_names = list(scorer.metadata.class_names if kind == "prototypes" else scorer.class_names)
    analysis = scorer.metadata.analysis if kind == "prototypes" else scorer.analysis
    items = evaluation_items(data, split, layout, library)
    unknown = sorted({item.label for item in items} - set(class_names))
    if unknown:
        raise EvaluationError(f"labels {', '.join(unknown)} are not classes of this model "
                              f"({', '.join(class_names)}); folder names must be class names")
    clips = load_clips(items, analysis, cache, progress=progress, jobs=2)
    truth = np.array([class_names.index(label) for label in clips.labels])
    n_classes = len(class_names)
    result: dict = {"model": spec, "kind": kind, "data": str(data), "split": None if split is None else str(split),
                    "library": library,
                    "clips": len(truth), "skipped": [f"{p}: {why}" for p, why in clips.skipped],
                    "classes": class_names}
    if kind == "prototypes":
        decisions = clip_decisions(scorer, clips.features, gate_db, min_confidence)
        result["min_confidence"] = min_confidence
        result.update(_named(accuracy_metrics(decisions["clip"], truth, n_classes), class_names))
        result["streaming"] = {name: _live_summary(decisions[name], truth, n_classes)
                               for name in decisions if name != "clip"}
    else:
        result.update(_named(accuracy_metrics(scorer.predict(clips.features), truth, n_classes), class_names))
    return result


def _live_summary(decisions: np.ndarray, truth: np.ndarray, n_classes: int) -> dict:
    """OA / AA of the live readout (a clip it names nothing for counts as wrong), the share of clips it names
    nothing for ("nothing confident" or silence), and the OA of those it names: a model less sure of itself
    abstains more, which lowers the first figure and not the last."""
    metrics = accuracy_metrics(decisions, truth, n_classes)
    named = decisions >= 0
    return {"OA": metrics["OA"], "AA": metrics["AA"], "undecided": 100.0 * float(np.mean(~named)),
            "OA of named": 100.0 * float(np.mean(decisions[named] == truth[named])) if named.any() else None}


def _named(metrics: dict, class_names: list[str]) -> dict:
    recall = metrics["per_class_recall"]
    metrics["per_class_recall"] = {name: (None if np.isnan(r) else r)
                                   for name, r in zip(class_names, recall, strict=True)}
    metrics["confusion"] = np.asarray(metrics["confusion"]).tolist()
    return metrics


def draw_confusion(result: dict, path: Path) -> None:
    confusion = np.asarray(result["confusion"], dtype=float)
    rows = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    names = result["classes"]
    figure, axes = pyplot().subplots(figsize=(1 + 0.5 * len(names), 1 + 0.5 * len(names)))
    axes.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(names)), names, rotation=90)
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"{Path(result['model']).name}: OA {result['OA']:.1f}  AA {result['AA']:.1f}")
    save(figure, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", required=True, help="preset name, preset YAML, engine model or baseline file")
    parser.add_argument("--data", required=True, type=Path, help="labelled audio folder (one sub-folder per class)")
    parser.add_argument("--split", type=Path, help="score only the test side of this split file")
    parser.add_argument("--library", help="score only items of this sample library (e.g. TimGM6mb)")
    parser.add_argument("--layout", default="auto", help="data layout: auto, folder, tinysol, sol, librispeech")
    parser.add_argument("--cache", type=Path, default=Path("data/cache"), help="feature cache folder")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    readout = SETTINGS["min_confidence"]
    parser.add_argument(readout.flag, type=readout.parse_flag, default=DEFAULT_MIN_CONFIDENCE,
                        help=f"{readout.meaning}, {readout.bounds} (default {DEFAULT_MIN_CONFIDENCE:g}, the "
                             "engine's): the live figures at another threshold; the clip decision has none")
    parser.add_argument("--out", type=Path, help="folder for metrics.json and confusion.png")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    args = parser.parse_args(argv)
    keep_freed_memory()  # each clip's tensors reuse the last clip's pages (training.allocator)
    try:
        result = evaluate(args.preset, args.data, args.split, args.layout, args.cache, args.device,
                          progress=not args.json, library=args.library, min_confidence=args.min_confidence)
    except (ProtophoneError, DatasetError, SplitError, EvaluationError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        write_text(args.out / "metrics.json", json.dumps(result, indent=1))
        draw_confusion(result, args.out / "confusion.png")
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"{result['model']} on {result['data']}: {result['clips']} clips, "
              f"OA {result['OA']:.1f}  AA {result['AA']:.1f}")
        for name, figures in result.get("streaming", {}).items():
            print(f"  live decision {name.replace('_', ' ')}: OA {figures['OA']:.1f}  AA {figures['AA']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
