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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.config import AnalysisConfig
from engine.frontend import frame_level_db
from engine.identify import DEFAULT_GATE_DB
from engine.mel import LOG_SCALE
from engine.model import PrototypeModel, scripted_dilations, semitones
from engine.modelfile import LoadedModel, ModelFileError, ModelMetadata, load_model, save_model
from training.baselines import majority_mapping


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
        dynamic_range_db=float(getattr(module, "dynamic_range", 0.0)) * 10.0 * LOG_SCALE)  # none: written before it
    model.load_state_dict(weights)
    model.mels_per_log = float(module.mels_per_log)  # as written, not recomputed from float32 centres
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.export",
        description="Write a model file again with this engine's TorchScript code, keeping its weights and "
                    "metadata (a model exported before a change to the streaming step gets the new step).",
        epilog="example: python -m training.export presets/orchestra.pt --out /tmp/orchestra.pt")
    parser.add_argument("model", type=Path, help="a model file (.pt) written by training")
    parser.add_argument("--out", type=Path, required=True, help="where to write it (never the input itself)")
    args = parser.parse_args(argv)
    try:
        if args.out.resolve() == args.model.resolve():
            raise ModelFileError(f"--out {args.out} is the input itself; write elsewhere, then move it")
        source = load_model(args.model)
        try:
            model = rescripted(source)
        except (KeyError, IndexError, AttributeError, RuntimeError) as error:
            raise ModelFileError(f"{args.model} does not hold a prototype model this code can rebuild "
                                 f"({error.__class__.__name__}: {str(error).splitlines()[0][:120]})") from None
        save_model(model, source.metadata, args.out)
    except (ModelFileError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
