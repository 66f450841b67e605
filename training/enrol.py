"""Enrol a performer's own instrument: adapt a class's prototypes to 10-60 s of its playing.

    python -m training.enrol --preset identify --class flute --audio my_flute.wav --out presets/my-flute.yaml
    python -m training.enrol --preset violin --class cello --audio take1.wav --audio take2.flac \\
        --out presets/my-cello.yaml
    python -m realtime.live --preset presets/my-flute.yaml           # every tool takes the new preset

Prototypes are exemplars (docs/design.md section 6), so a new instrument needs new exemplars, not a new network.
The transformation predictor stays exactly as shipped: its parameters for the enrolment audio are
computed once, and only the prototypes of the enrolled class move, by the training objective itself
(own-class reconstruction plus cross-entropy against every other prototype, on windows of sounding
frames), with a pull towards the shipped prototypes so that a short take cannot drag them far.  A minute
of audio adapts in seconds on a CPU.

Writes ``OUT.yaml`` (the source preset's settings) and ``OUT.pt`` (the model file with the adapted
prototypes) beside it, each to a temporary name first; neither may be the source preset or its model.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from engine.errors import AudioFileError, ProtophoneError
from engine.frontend import frame_level_db
from engine.identify import SoundingGate
from engine.model import prototype_bodies, residual_errors
from engine.modelfile import LoadedModel, ModelMetadata, load_model, quiet_torchscript, save_model
from engine.preset import Preset, load_preset, save_preset
from training.features import audio_features
from training.objective import supervised_loss

MIN_SECONDS = 5.0


class EnrolmentError(ProtophoneError):
    """Audio or settings that cannot enrol a class."""


@dataclass(frozen=True)
class EnrolSettings:
    """How the prototypes adapt; measured on the leave-one-library-out models (benchmarks.enrolment)."""

    steps: int = 150
    lr: float = 3e-3
    window_frames: int = 16
    #: Windows per step, drawn afresh each step (seeded): a step costs the same for 10 s or 14 classes x 30 s.
    batch_windows: int = 64
    seed: int = 0
    ce_weight: float = 0.1
    #: Weight of ``mean (P - P_shipped)^2``: keeps a short take from dragging a prototype far.
    anchor: float = 0.1


def compared_frames(model: LoadedModel, frames: np.ndarray) -> torch.Tensor:
    """Frames as the model compares them with its prototypes: floored where it floors them (a model file
    exported before the floor existed has no ``floored`` and compares them as they are)."""
    tensor = torch.from_numpy(frames)
    if not hasattr(model.module, "floored"):
        return tensor
    with torch.no_grad():
        return model.module.floored(tensor.to(model.device)).cpu()


def enrolment_windows(model: LoadedModel, takes: dict[str, list[np.ndarray]], window_frames: int
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sounding frames of every take, cut into windows: ``(frames (W, n, F), params (W, n, K, 6), labels (W,))``.

    The predictor runs once over each whole take (its causal context intact); only frames that the
    engine's own gate counts as sounding are kept.
    """
    metadata = model.metadata
    frames, params, labels = [], [], []
    for label, clips in takes.items():
        for clip in (clip for clip in clips if len(clip) >= window_frames):  # shorter: not one window
            with torch.no_grad():
                clip_params, _ = model.module(torch.from_numpy(clip).to(model.device)[None])
            sounding = SoundingGate(metadata.analysis.frame_rate)(frame_level_db(clip, metadata.analysis))
            kept = np.flatnonzero(sounding)
            usable = len(kept) // window_frames * window_frames
            if not usable:
                continue
            kept = kept[:usable]
            frames.append(compared_frames(model, clip[kept]).reshape(-1, window_frames, clip.shape[1]))
            params.append(clip_params[0, kept].cpu().reshape(-1, window_frames, *clip_params.shape[2:]))
            labels += [metadata.class_names.index(label)] * (usable // window_frames)
    if not labels:
        raise EnrolmentError(f"the takes hold no sounding audio (all under the level gate or shorter than "
                             f"{window_frames} frames); record louder or longer")
    return torch.cat(frames), torch.cat(params), torch.tensor(labels)


def enrol(model: LoadedModel, takes: dict[str, list[np.ndarray]], settings: EnrolSettings = EnrolSettings()
          ) -> np.ndarray:
    """Adapted prototypes ``(K, n_mels)``: those of the classes in ``takes`` (log-mel frames per class)
    fitted to them, every other prototype unchanged.  The model itself is not modified."""
    metadata = model.metadata
    frames, params, labels = enrolment_windows(model, takes, settings.window_frames)
    classes = torch.tensor(metadata.prototype_classes)
    enrolled = torch.isin(classes, torch.tensor([metadata.class_names.index(name) for name in takes]))
    membership = classes[None, :] == torch.arange(len(metadata.class_names))[:, None]
    module = model.module.cpu()
    shipped = module.prototypes.detach().clone()
    bodies = prototype_bodies(module).detach()  # the bodies stay: enrolment moves only the prototypes
    indices = torch.nonzero(enrolled).flatten()
    with torch.no_grad():
        temperature = module.temperature()
        fixed_errors = torch.cat([_window_errors(module, shipped, bodies, frames[i:i + 256], params[i:i + 256])
                                  for i in range(0, len(labels), 256)])  # the others' never change
    moving = shipped[indices].clone().requires_grad_(True)
    optimiser = torch.optim.Adam([moving], lr=settings.lr)
    generator = torch.Generator().manual_seed(settings.seed)
    for _ in range(settings.steps):
        batch = torch.randperm(len(labels), generator=generator)[: settings.batch_windows]
        moved = _window_errors(module, moving, bodies[indices], frames[batch], params[batch][:, :, indices])
        errors = fixed_errors[batch].index_copy(1, indices, moved)
        loss = supervised_loss(errors, labels[batch], temperature, membership, settings.ce_weight)
        loss = loss + settings.anchor * (moving - shipped[indices]).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.module.to(model.device)
    return shipped.index_copy(0, indices, moving.detach()).numpy()


def _window_errors(module: torch.nn.Module, prototypes: torch.Tensor, bodies: torch.Tensor, frames: torch.Tensor,
                   params: torch.Tensor) -> torch.Tensor:
    """Mean error of each prototype (with its body) over each window: ``(W, n, F)``, ``(W, n, k, 6)`` →
    ``(W, k)``."""
    rendered = module.transform(prototypes, params) + bodies
    fitted_gain = bool(getattr(module, "fitted_gain", False))  # none: a file written before it, not fitted
    max_tilt = float(getattr(module, "max_tilt", 0.0))  # likewise
    return residual_errors(frames.unsqueeze(-2) - rendered, fitted_gain, max_tilt)[0].mean(1)


def write_enrolled(model: LoadedModel, prototypes: np.ndarray, path: Path, note: dict) -> ModelMetadata:
    """A copy of ``model`` with ``prototypes``, written atomically to ``path``; returns its metadata."""
    with quiet_torchscript():
        module = torch.jit.load(_saved_copy(model), map_location="cpu")
    with torch.no_grad():
        module.prototypes.copy_(torch.from_numpy(prototypes))
    metadata = replace(model.metadata, extra={**model.metadata.extra, "enrolment": note})
    save_model(module, metadata, path)
    return metadata


def _saved_copy(model: LoadedModel) -> io.BytesIO:
    """The scripted module as bytes in memory, so the loaded model is never modified in place."""
    buffer = io.BytesIO()
    with quiet_torchscript():
        torch.jit.save(model.module, buffer)
    buffer.seek(0)
    return buffer


def read_takes(paths: list[Path], model: LoadedModel) -> list[np.ndarray]:
    """Log-mel frames of each take at the model's rate; at least :data:`MIN_SECONDS` in all."""
    analysis = model.metadata.analysis
    clips = [audio_features(path, analysis) for path in paths]
    seconds = sum(len(clip) for clip in clips) / analysis.frame_rate
    if seconds < MIN_SECONDS:
        raise EnrolmentError(f"only {seconds:.1f} s of audio in {', '.join(map(str, paths))}; "
                             f"enrol with at least {MIN_SECONDS:.0f} s (10-60 s of playing is best)")
    return clips


def check_outputs(out: Path, source: Preset, audio: list[Path]) -> tuple[Path, Path]:
    """The preset and model paths to write; refuses any that is an input."""
    if out.suffix not in (".yaml", ".yml"):
        raise EnrolmentError(f"--out must be a preset file ending in .yaml, got {out}")
    model_path = out.with_suffix(".pt")
    inputs = {path.resolve() for path in (source.model, *audio)}
    for written in (out, model_path):
        if written.resolve() in inputs:
            raise EnrolmentError(f"{written} is one of the inputs; choose another --out so nothing is overwritten")
    if not out.parent.is_dir():
        raise EnrolmentError(f"folder {out.parent} does not exist; create it or choose another --out")
    return out, model_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.enrol", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", required=True, help="preset name, preset YAML or model file to adapt")
    parser.add_argument("--class", dest="label", required=True, help="the class your instrument is (e.g. flute)")
    parser.add_argument("--audio", required=True, action="append", type=Path,
                        help="a recording of your instrument (repeat for several; 10-60 s in all)")
    parser.add_argument("--out", required=True, type=Path, help="the new preset, e.g. presets/my-flute.yaml")
    parser.add_argument("--steps", type=int, default=EnrolSettings.steps, help="adaptation steps (default %(default)s)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        preset = load_preset(args.preset)
        preset_path, model_path = check_outputs(args.out, preset, args.audio)
        model = load_model(preset.model)
        if args.label not in model.metadata.class_names:
            raise EnrolmentError(f"class {args.label!r} is not in this model; choose one of "
                                 f"{', '.join(model.metadata.class_names)}")
        takes = read_takes(args.audio, model)
        prototypes = enrol(model, {args.label: takes}, EnrolSettings(steps=args.steps))
        note = {"class": args.label, "audio": [str(p) for p in args.audio], "source": str(preset.model)}
        write_enrolled(model, prototypes, model_path, note)
        description = f"{preset.description} Enrolled: {args.label} from {len(takes)} take(s).".strip()
        save_preset(replace(preset, name=preset_path.stem, model=model_path.resolve(), description=description),
                    preset_path)
    except (ProtophoneError, AudioFileError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    seconds = sum(len(t) for t in takes) / model.metadata.analysis.frame_rate
    print(f"enrolled {args.label} from {seconds:.0f} s of audio in {time.perf_counter() - started:.1f} s: "
          f"{preset_path} (model {model_path.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
