"""Listen to and look at a model's prototypes.

    python -m training.prototypes --preset identify --html gallery/       # then open gallery/index.html
    python -m training.prototypes --preset identify --out prototypes/
    python -m training.prototypes --preset runs/orchestra/model.pt --html gallery/ --data data/TimGM6mb

Writes one WAV per prototype (``<index>-<class>.wav``: the prototype's mel frame held for 2 s, inverted
to a magnitude and given phase by offline Griffin-Lim, peak-normalised to -3 dBFS so that quiet
prototypes can be heard too), ``bank.png`` (every prototype as a spectrum, grouped by class) and, with
``--data``, ``typical.png`` and one ``typical-<class>.wav`` per class: the mean of the class's winning
prototype *as transformed* over its frames — what the model actually renders for that instrument.
``--html`` writes all that and ``index.html`` beside it, the gallery (``training.gallery``): per class its
prototypes' spectra on one dB scale, a player each, the reference pitch, and with ``--data`` the confusion
matrix.  ``--data`` takes a folder of labelled audio (``python -m training.rebuild --data-only`` renders
``data/``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from engine.atomic import write_text
from engine.audiofile import write_audio
from engine.errors import ProtophoneError
from engine.frontend import frame_level_db
from engine.identify import DEFAULT_GATE_DB
from engine.mel import x_to_db
from engine.model import prototype_bodies, prototype_spectra
from engine.modelfile import LoadedModel, load_model
from engine.preset import load_preset
from engine.synth import MelToMagnitude, griffin_lim
from training.baselines import accuracy_metrics
from training.features import load_clips
from training.gallery import Sound, confusion_table, gallery_page, note_name
from training.layouts import DatasetError, scan
from training.plotting import pyplot, save
from training.scoring import clip_decisions

SECONDS = 2.0
PEAK_DBFS = -3.0


def held_audio(model: LoadedModel, frame: np.ndarray, seconds: float = SECONDS) -> np.ndarray:
    """A log-mel frame held for ``seconds``, through the mel inverse and 32 iterations of Griffin-Lim."""
    analysis = model.metadata.analysis
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
        axis.plot(centres_hz, x_to_db(frame), linewidth=1)
        axis.set_ylabel(name, rotation=0, ha="right", fontsize=8)
        axis.set_xscale("log")
        axis.set_yticks([])
    axes[-1, 0].set_xlabel("frequency (Hz)")
    figure.suptitle(title)
    save(figure, path, dpi=90)


@dataclass
class DataView:
    """What labelled data adds: each class's typical transformed prototype, and the clip decisions' scores."""

    typical: dict[str, np.ndarray]
    metrics: dict


def look_at_data(model: LoadedModel, data: Path, cache: Path) -> DataView:
    """Typical transformed prototypes and the confusion matrix of ``model`` on the labelled audio in ``data``."""
    class_names = list(model.metadata.class_names)
    items = [item for item in scan(data) if item.label in class_names]
    if not items:
        raise DatasetError(f"no audio under {data} is labelled with a class of this model ({', '.join(class_names)})")
    clips = load_clips(items, model.metadata.analysis, cache)
    truth = np.array([class_names.index(label) for label in clips.labels])
    decisions = clip_decisions(model, clips.features, DEFAULT_GATE_DB)["clip"]
    return DataView(typical_frames(model, clips.features, clips.labels),
                    accuracy_metrics(decisions, truth, len(class_names)))


def write_gallery(model: LoadedModel, title: str, out: Path, view: DataView | None) -> Path:
    """``out/index.html``: the page for the WAVs already written beside it."""
    metadata = model.metadata
    spectra = prototype_spectra(model.module).detach().cpu().numpy()
    bodies = prototype_bodies(model.module).detach().cpu().numpy()
    bodied = bool(np.any(bodies))
    classes: dict[str, list[Sound]] = {}
    for index in np.argsort(metadata.prototype_classes, kind="stable"):
        name = metadata.class_names[metadata.prototype_classes[index]]
        classes.setdefault(name, []).append(Sound(
            f"prototype {index}", spectra[index], f"{index:02d}-{name}.wav", SECONDS,
            f"reference pitch {note_name(metadata.reference_pitch[index])}", bodies[index] if bodied else None))
    summary = (f"{len(spectra)} prototypes of {len(classes)} classes · {metadata.sample_rate} Hz, "
               f"{metadata.n_mels} mel bands · each prototype held {SECONDS:g} s (Griffin-Lim, peak -3 dBFS)")
    if bodied:
        summary += " · dashed: each prototype's body, in dB, which stays at its frequencies when it is transposed"
    typical, confusion = {}, ""
    if view is not None:
        typical = {name: Sound("typical transformed prototype", frame, f"typical-{name}.wav", SECONDS,
                               "its winning prototype as rendered, mean over its frames")
                   for name, frame in view.typical.items()}
        summary += f" · on the data: OA {view.metrics['OA']:.1f} %, AA {view.metrics['AA']:.1f} %"
        confusion = confusion_table(np.asarray(view.metrics["confusion"]), list(metadata.class_names))
    page = gallery_page(title, summary, classes, typical, metadata.analysis.band_centres_hz, confusion)
    path = out / "index.html"
    write_text(path, page)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.prototypes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", required=True, help="preset name, preset YAML or engine model file")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, metavar="FOLDER", help="folder for the WAVs and pictures")
    where.add_argument("--html", type=Path, metavar="FOLDER",
                       help="folder for the gallery page (index.html) with the WAVs and pictures beside it")
    parser.add_argument("--data", type=Path, metavar="FOLDER",
                        help="labelled audio: adds each class's typical transformed prototype and the confusion matrix")
    parser.add_argument("--cache", type=Path, default=Path("data/cache"), help="feature cache folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    out = args.html or args.out
    try:
        if out.exists() and not out.is_dir():
            raise ProtophoneError(f"{out} is a file; give a folder for the prototypes (it is made if missing)")
        model = load_model(load_preset(args.preset).model)
        metadata = model.metadata
        view = look_at_data(model, args.data, args.cache) if args.data else None
        out.mkdir(parents=True, exist_ok=True)
        names = [metadata.class_names[c] for c in metadata.prototype_classes]
        spectra = prototype_spectra(model.module).detach().cpu().numpy()
        typical = view.typical if view else {}
        sounds = [(f"{i:02d}-{name}.wav", spectra[i]) for i, name in enumerate(names)]
        sounds += [(f"typical-{name}.wav", frame) for name, frame in typical.items()]
        for file_name, frame in tqdm(sounds, desc="Griffin-Lim", unit="sound", disable=args.no_progress):
            write_audio(out / file_name, held_audio(model, frame), metadata.sample_rate)
        order = np.argsort(metadata.prototype_classes, kind="stable")
        draw_spectra([(f"{i}: {names[i]}", spectra[i]) for i in order], metadata.analysis.band_centres_hz,
                     f"{len(names)} prototypes", out / "bank.png")
        if typical:
            draw_spectra(sorted(typical.items()), metadata.analysis.band_centres_hz,
                         "typical transformed prototype per class", out / "typical.png")
        page = write_gallery(model, f"Prototypes of {args.preset}", out, view) if args.html else None
    except (ProtophoneError, DatasetError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(sounds)} WAVs and pictures to {out}" + (f"; open {page} in a browser" if page else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
