"""From a trained model to an engine model file: class map, reference pitches, metadata.

Per training clip we find the winning prototype (lowest mean error over frames above the level gate)
and the pitch shift it needed.  That gives:

- each prototype's reference pitch (MIDI): the median over the clips it wins of ``note - shift`` — the
  pitch it sounds at with no transposition, which timbre transfer needs to keep the melody;
- in clustering mode, each prototype's class: the majority label of the training clips it wins
  (docs/design.md section 1: the map is learned on the training split, then used unchanged on the test split).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from engine.config import AnalysisConfig
from engine.frontend import frame_level_db
from engine.identify import DEFAULT_GATE_DB
from engine.mel import LOG_SCALE
from engine.model import PrototypeModel, scripted_dilations, semitones
from engine.modelfile import LoadedModel, ModelFileError, ModelMetadata, load_model, save_metadata, save_model
from training.baselines import majority_mapping
from training.config import ConfigError, load_config
from training.layouts import DatasetError
from training.splits import SplitError


@dataclass(frozen=True)
class ClipWins:
    """Winning prototype of each clip, and the mean pitch shift (semitones) it was rendered with."""

    winners: np.ndarray
    shifts: np.ndarray


def clip_wins(model: PrototypeModel, clips: list[np.ndarray], analysis: AnalysisConfig,
              gate_db: float = DEFAULT_GATE_DB) -> ClipWins:
    model.eval()
    winners, shifts = np.zeros(len(clips), dtype=np.int64), np.zeros(len(clips))
    with torch.no_grad():
        for index, clip in enumerate(clips):
            params, errors = model(torch.from_numpy(clip)[None])
            active = frame_level_db(clip, analysis) >= gate_db
            if not active.any():
                active[:] = True
            winner = int(errors[0, active].mean(dim=0).argmin())
            winners[index] = winner
            shifts[index] = float(semitones(params[0, active, winner, 0].mean()))
    return ClipWins(winners, shifts)


def reference_pitches(wins: ClipWins, notes: list[int | None], n_prototypes: int) -> tuple[float | None, ...]:
    """Median ``note - shift`` over the labelled clips each prototype wins; ``None`` where it wins none."""
    pitches: list[float | None] = []
    for prototype in range(n_prototypes):
        values = [note - shift for winner, shift, note in zip(wins.winners, wins.shifts, notes, strict=True)
                  if winner == prototype and note is not None]
        pitches.append(float(np.median(values)) if values else None)
    return tuple(pitches)


#: A class's playing range: these percentiles of its training notes (a stray extreme note does not widen it).
RANGE_PERCENTILES = (5.0, 95.0)


def class_ranges(labels: np.ndarray, notes: list[int | None], n_classes: int) -> tuple[tuple[float, float] | None, ...]:
    """Per class, the :data:`RANGE_PERCENTILES` of its clips' notes (MIDI); ``None`` for a class without any."""
    ranges: list[tuple[float, float] | None] = []
    for label in range(n_classes):
        pitches = [note for note, clip_label in zip(notes, labels, strict=True)
                   if clip_label == label and note is not None]
        ranges.append(tuple(round(float(v), 1) for v in np.percentile(pitches, RANGE_PERCENTILES))  # type: ignore[misc]
                      if pitches else None)
    return tuple(ranges)


def export_model(model: PrototypeModel, analysis: AnalysisConfig, class_names: list[str],
                 prototype_classes: np.ndarray | None, clips: list[np.ndarray], labels: np.ndarray,
                 notes: list[int | None], path: Path, extra: dict) -> ModelMetadata:
    """Write the engine model file.  ``prototype_classes=None`` (clustering) maps prototypes by majority."""
    wins = clip_wins(model, clips, analysis)
    if prototype_classes is None:
        prototype_classes = majority_mapping(wins.winners, labels, model.n_prototypes)
    metadata = ModelMetadata(
        sample_rate=analysis.sample_rate, n_fft=analysis.n_fft, hop=analysis.hop, n_mels=analysis.n_mels,
        class_names=tuple(class_names), prototype_classes=tuple(int(c) for c in prototype_classes),
        reference_pitch=reference_pitches(wins, notes, model.n_prototypes), lookahead=model.lookahead,
        class_ranges=class_ranges(np.asarray(labels), notes, len(class_names)),
        pitch_mode="linear" if model.linear_pitch else "hz", f_min=analysis.f_min, f_max=analysis.f_max,
        extra=extra,
    )
    save_model(model, metadata, path)
    return metadata


def rescripted(source: LoadedModel) -> PrototypeModel:
    """The model in ``source`` rebuilt with this code's :class:`PrototypeModel`: same weights, so
    :func:`save_model` writes it with this engine's TorchScript (its streaming ``step`` included)."""
    module = source.module
    weights = {name: value for name, value in module.state_dict().items()
               if not name.endswith(".cache") and name not in ("pending", "frames_seen")}
    model = PrototypeModel(
        source.metadata.n_prototypes, module.band_centres.cpu().numpy(), lookahead=source.metadata.lookahead,
        pitch_mode=source.metadata.pitch_mode, channels=weights["predictor.input.weight"].shape[0],
        kernel_size=int(weights["predictor.blocks.0.conv.conv.weight"].shape[2]),
        dilations=scripted_dilations(module),
        dynamic_range_db=float(getattr(module, "dynamic_range", 0.0)) * 10.0 * LOG_SCALE,  # none: written before it
        fitted_gain=bool(getattr(module, "fitted_gain", False)),
        fitted_tilt_db=float(getattr(module, "max_tilt", 0.0)) * 10.0 * LOG_SCALE,
        band_channels=int(getattr(module.predictor, "band_channels", 0)))
    model.load_state_dict(weights)
    model.mels_per_log = float(module.mels_per_log)  # as written, not recomputed from float32 centres
    return model


def training_ranges(config_path: Path, class_names: tuple[str, ...]) -> tuple[tuple[float, float] | None, ...]:
    """:func:`class_ranges` of the notes on the training side of a config's split (no audio is read)."""
    from training.train import load_split  # training.train imports this module: import at use

    items = [item for item in load_split(load_config(config_path))["train"] if item.label in class_names]
    if not items:
        raise ConfigError(f"{config_path}: no training item is of a class of this model")
    labels = np.array([class_names.index(item.label) for item in items])
    return class_ranges(labels, [item.midi for item in items], len(class_names))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.export",
        description="Write a model file again with this engine's TorchScript code, keeping its weights and "
                    "metadata (a model exported before a change to the streaming step gets the new step); or, with "
                    "--keep-code, as it is with what this engine adds to every file (the fused kernels' numbers, "
                    "checked against its step, which let a CPU stream run without torch); or, with --ranges-from, "
                    "as it is with its classes' playing ranges added too.",
        epilog="examples: python -m training.export presets/orchestra.pt --out /tmp/orchestra.pt\n"
               "          python -m training.export presets/speakers.pt --keep-code --out /tmp/speakers.pt\n"
               "          python -m training.export presets/orchestra.pt --ranges-from training/configs/orchestra.yaml "
               "--out /tmp/orchestra.pt",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a model file (.pt) written by training")
    parser.add_argument("--out", type=Path, required=True, help="where to write it (never the input itself)")
    parser.add_argument("--keep-code", action="store_true",
                        help="keep the file's own code, weights and metadata; add the fused kernels' numbers")
    parser.add_argument("--ranges-from", type=Path, metavar="CONFIG",
                        help="as --keep-code, and add each class's playing range "
                             "(register: target needs it), from the notes of the training side of this training "
                             "config's split, as training writes it")
    args = parser.parse_args(argv)
    try:
        if args.out.resolve() == args.model.resolve():
            raise ModelFileError(f"--out {args.out} is the input itself; write elsewhere, then move it")
        source = load_model(args.model)
        if args.ranges_from is not None:
            ranges = training_ranges(args.ranges_from, source.metadata.class_names)
            save_metadata(source, replace(source.metadata, class_ranges=ranges), args.out)
        elif args.keep_code:
            save_metadata(source, source.metadata, args.out)
        else:
            try:
                model = rescripted(source)
            except (KeyError, IndexError, AttributeError, RuntimeError) as error:
                raise ModelFileError(f"{args.model} does not hold a prototype model this code can rebuild "
                                     f"({error.__class__.__name__}: {str(error).splitlines()[0][:120]})") from None
            save_model(model, source.metadata, args.out)
    except (ModelFileError, ConfigError, DatasetError, SplitError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
