"""The measurement behind benchmarks/results/accuracy/clip-decision/probe.json (kept beside its output; not a tool).

Does another way of pooling the frames of a clip name unseen notes better than the engine's clip decision (the
lowest mean class error over the sounding frames)?  A loud, busy frame's errors are larger than a quiet one's,
so the mean lets a few frames decide.  Each rotation model (the shipped recipe with one library never heard)
scores every sounding frame of its validation notes (5 % of the training libraries' notes, drawn as training
drew them: the ground for choosing) and of the library it never heard (the test), and each pooling decides:

- ``mean``: the engine's decision;
- ``vote``: the class that wins the most frames;
- ``log posterior``: the highest mean log ``softmax(-tau e)`` (tau the model's own temperature);
- ``relative``: the lowest mean of each frame's class errors divided by that frame's mean class error;
- ``rank``: the lowest mean rank of the class among the frame's classes.

Run from the repository root (a few minutes per rotation):

    python benchmarks/results/accuracy/clip-decision/probe.py FluidR3_GM TimGM6mb freepats ...
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from engine.atomic import write_text
from engine.frontend import frame_level_db
from engine.identify import DEFAULT_GATE_DB, ClassMap, SoundingGate
from engine.modelfile import load_model
from training.config import load_config
from training.features import load_clips
from training.train import load_split

HERE = Path(__file__).parent


def frame_errors(model, clips: list[np.ndarray]) -> list[np.ndarray]:
    """Per clip: the ``(sounding frames, classes)`` class errors."""
    metadata = model.metadata
    class_map = ClassMap(metadata.class_names, metadata.prototype_classes)
    out = []
    for clip in clips:
        with torch.no_grad():
            _, errors = model.module(torch.from_numpy(clip)[None])
        gate = SoundingGate(metadata.analysis.frame_rate, DEFAULT_GATE_DB)
        sounding = gate(frame_level_db(clip, metadata.analysis))
        out.append(class_map.class_errors(errors[0].numpy().astype(np.float64)[sounding]))
    return out


def decide(errors: np.ndarray, pooling: str, tau: float) -> int:
    if len(errors) == 0:
        return -1
    if pooling == "mean":
        return int(errors.mean(0).argmin())
    if pooling == "vote":
        return int(np.bincount(errors.argmin(1), minlength=errors.shape[1]).argmax())
    if pooling == "log posterior":
        logits = -tau * errors
        logits -= logits.max(1, keepdims=True)
        return int((logits - np.log(np.exp(logits).sum(1, keepdims=True))).mean(0).argmax())
    if pooling == "relative":
        return int((errors / errors.mean(1, keepdims=True)).mean(0).argmin())
    if pooling == "rank":
        return int(errors.argsort(1).argsort(1).mean(0).argmin())
    raise ValueError(pooling)


POOLINGS = ("mean", "vote", "log posterior", "relative", "rank")


def main(libraries: list[str]) -> None:
    results = json.loads((HERE / "probe.json").read_text()) if (HERE / "probe.json").is_file() else {}
    for library in libraries:
        config = load_config(Path(f"runs/rotation/{library}/config.yaml"))
        model = load_model(f"benchmarks/results/accuracy/rotation-{library}/prototypes.pt", "cpu")
        tau = float(model.module.temperature())
        names = {name: index for index, name in enumerate(model.metadata.class_names)}
        split = load_split(config)
        row = {}
        for side, items in (("validation", split["validation"]),
                            ("test", [item for item in split["test"] if item.library == library])):
            clips = load_clips(items, model.metadata.analysis, "data/cache", progress=False)
            truth = np.array([names[label] for label in clips.labels])
            errors = frame_errors(model, clips.features)
            row[side] = {pooling: 100.0 * float(np.mean([decide(e, pooling, tau) for e in errors] == truth))
                         for pooling in POOLINGS}
            print(library, side, json.dumps(row[side]), flush=True)
        results[library] = row
        write_text(HERE / "probe.json", json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
