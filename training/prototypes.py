"""Listen to and look at a model's prototypes.

    python -m training.prototypes --preset identify --out prototypes/
    python -m training.prototypes --preset runs/orchestra/model.pt --out prototypes/ --data data/TimGM6mb

Writes one WAV per prototype (``<index>-<class>.wav``: the prototype's mel frame held for 2 s, inverted
to a magnitude and given phase by offline Griffin-Lim, peak-normalised to -3 dBFS so that quiet
prototypes can be heard too), ``bank.png`` (every prototype as a spectrum, grouped by class) and, with
``--data``, ``typical.png``: for each class, the mean of its winning prototype *as transformed* over the
class's frames — what the model actually renders for that instrument.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from engine.audiofile import write_audio
from engine.errors import ProtophoneError
from engine.frontend import frame_level_db
from engine.identify import DEFAULT_GATE_DB
from engine.modelfile import LoadedModel, load_model
from engine.preset import load_preset
from engine.synth import MelToMagnitude, griffin_lim
from training.features import load_clips
from training.layouts import DatasetError, scan
from training.plotting import pyplot, save

SECONDS = 2.0
PEAK_DBFS = -3.0


def prototype_audio(model: LoadedModel, index: int, seconds: float = SECONDS) -> np.ndarray:
    """A prototype held for ``seconds``, through the mel inverse and 32 iterations of Griffin-Lim."""
    analysis = model.metadata.analysis
    frame = model.module.prototypes[index].detach().cpu().numpy()
    magnitude = MelToMagnitude(analysis)(frame[None])
    n_frames = int(seconds * analysis.frame_rate)
    audio = griffin_lim(np.tile(magnitude, (n_frames, 1)), analysis.n_fft, analysis.hop)
    peak = np.abs(audio).max()
    return (audio / peak * 10 ** (PEAK_DBFS / 20) if peak > 0 else audio).astype(np.float32)


def typical_frames(model: LoadedModel, clips: list[np.ndarray], labels: list[str]) -> dict[str, np.ndarray]:
    """Per class: the mean over its active frames of the best prototype as transformed for that frame."""
    metadata = model.metadata
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    with torch.no_grad():
        for clip, label in zip(clips, labels, strict=True):
            params, errors = model.module(torch.from_numpy(clip)[None])
            active = frame_level_db(clip, metadata.analysis) >= DEFAULT_GATE_DB
            if not active.any():
                continue
            winners = errors[0].argmin(dim=1)
            rendered = model.module.render(params[0])[torch.arange(len(clip)), winners].numpy()
            sums[label] = sums.get(label, 0.0) + rendered[active].sum(axis=0)
            counts[label] = counts.get(label, 0) + int(active.sum())
    return {label: sums[label] / counts[label] for label in sums}


def draw_spectra(spectra: list[tuple[str, np.ndarray]], centres_hz: np.ndarray, title: str, path: Path) -> None:
    """One row per (name, frame) pair: the mel spectrum in dB against frequency."""
    rows = len(spectra)
    figure, axes = pyplot().subplots(rows, 1, figsize=(8, 1.0 + 0.9 * rows), sharex=True, squeeze=False)
    for axis, (name, frame) in zip(axes[:, 0], spectra, strict=True):
        axis.plot(centres_hz, 170.0 * np.asarray(frame) - 100.0, linewidth=1)
        axis.set_ylabel(name, rotation=0, ha="right", fontsize=8)
        axis.set_xscale("log")
        axis.set_yticks([])
    axes[-1, 0].set_xlabel("frequency (Hz)")
    figure.suptitle(title)
    save(figure, path, dpi=90)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.prototypes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", required=True, help="preset name, preset YAML or engine model file")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--data", type=Path,
                        help="labelled audio to compute each class's typical transformed prototype")
    parser.add_argument("--cache", type=Path, default=Path("data/cache"), help="feature cache folder")
    args = parser.parse_args(argv)
    try:
        model = load_model(load_preset(args.preset).model)
        metadata = model.metadata
        args.out.mkdir(parents=True, exist_ok=True)
        names = [metadata.class_names[c] for c in metadata.prototype_classes]
        for index, name in enumerate(names):
            write_audio(args.out / f"{index:02d}-{name}.wav", prototype_audio(model, index), metadata.sample_rate)
        bank = model.module.prototypes.detach().cpu().numpy()
        order = np.argsort(metadata.prototype_classes, kind="stable")
        draw_spectra([(f"{i}: {names[i]}", bank[i]) for i in order], metadata.analysis.band_centres_hz,
                     f"{len(names)} prototypes", args.out / "bank.png")
        if args.data:
            items = [item for item in scan(args.data) if item.label in metadata.class_names]
            clips = load_clips(items, metadata.analysis, args.cache)
            typical = typical_frames(model, clips.features, clips.labels)
            draw_spectra(sorted(typical.items()), metadata.analysis.band_centres_hz,
                         "typical transformed prototype per class", args.out / "typical.png")
    except (ProtophoneError, DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(names)} prototype WAVs and pictures to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
