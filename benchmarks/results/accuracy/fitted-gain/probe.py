"""The measurement behind benchmarks/results/accuracy/fitted-gain/probe.json (kept beside its output; not a tool).

Before training with a fitted gain: would deciding on errors that ignore level (or level and a spectral tilt)
help a model trained with a predicted gain?  Each prototype's residual against every sounding frame has its
first ``order`` cosine components over the bands removed (order 1: the mean, i.e. the best level; 2: also a
tilt), then the clip decision is the lowest mean class error, as the engine decides.  Run from the repository
root, for a rotation model (trained with the library left out) and that library's folder:

    python benchmarks/results/accuracy/fitted-gain/probe.py MODEL data/LIBRARY 0,1,2
"""

import sys
from pathlib import Path

import numpy as np
import torch

from engine.frontend import frame_level_db
from engine.identify import DEFAULT_GATE_DB
from engine.modelfile import load_model
from training.features import load_clips
from training.layouts import scan


def smooth_projection(n_mels: int, order: int) -> np.ndarray:
    """The projection onto the first ``order`` cosines over the bands (zero for order 0)."""
    if order == 0:
        return np.zeros((n_mels, n_mels))
    u = (np.arange(n_mels) + 0.5) / n_mels
    basis, _ = np.linalg.qr(np.stack([np.cos(np.pi * k * u) for k in range(order)], axis=1))
    return basis @ basis.T


def main(model_path: str, data: str, orders: list[int]) -> None:
    model = load_model(model_path, "cpu")
    metadata = model.metadata
    clips = load_clips(scan(Path(data), "auto"), metadata.analysis, "data/cache", progress=False)
    names = {name: index for index, name in enumerate(metadata.class_names)}
    truth = np.array([names[item.label] for item in clips.items])
    classes = np.asarray(metadata.prototype_classes)
    n_mels = metadata.n_mels
    decisions: dict[int, list[int]] = {order: [] for order in orders}
    with torch.no_grad():
        for clip in clips.features:
            frames = torch.from_numpy(clip)[None]
            params, _ = model.module(frames)
            residual = (model.module.floored(frames).unsqueeze(-2) - model.module.render(params))[0].numpy()
            sounding = frame_level_db(clip, metadata.analysis) >= DEFAULT_GATE_DB
            sounding = sounding if sounding.any() else np.ones_like(sounding)
            for order in orders:
                kept = residual - residual @ smooth_projection(n_mels, order)
                errors = (kept ** 2).mean(-1)[sounding]
                class_errors = np.stack([errors[:, classes == c].min(1) for c in range(len(names))], 1)
                decisions[order].append(int(class_errors.mean(0).argmin()))
    for order in orders:
        print(f"{data} order {order}: OA {100 * np.mean(np.array(decisions[order]) == truth):.1f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], [int(order) for order in sys.argv[3].split(",")])
