"""The measurement behind benchmarks/results/accuracy/seed-ensemble (kept beside its output; not a tool).

Whether models of one recipe trained from several seeds name more notes together than each alone, and whether
another clip decision rule names more than the engine's (lowest mean class error over the sounding frames):

    python benchmarks/results/accuracy/seed-ensemble/measure.py MODEL[:MODEL...] test|validation

``test``: every note of FluidR3_GM (the rotation's unseen library); ``validation``: the held-out notes of the
training libraries that chose each run's epoch (drawn as ``training.train`` draws them).  An ensemble decides
each clip by the members' mean class errors, by those errors z-normalised per member and clip, or by a vote of
the members' decisions.  With one model, the other rules: a vote of the frames, the mean posterior, the median
and the mean of the lowest 80 % of each class's frame errors.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import mode

from engine.frontend import frame_level_db
from engine.identify import DEFAULT_GATE_DB, ClassMap
from engine.modelfile import LoadedModel, load_model
from training.config import load_config
from training.features import load_clips
from training.layouts import scan
from training.splits import read_split, split_items

RULES = ("vote", "posterior", "median", "lowest 80 %")


def clip_class_errors(model: LoadedModel, clips: list[np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per clip, each class's mean error over the sounding frames (NaN for a clip without any), and each of the
    other RULES' decision."""
    metadata = model.metadata
    class_map = ClassMap(metadata.class_names, metadata.prototype_classes)
    temperature = float(model.module.temperature().detach())
    rows, decisions = [], {name: [] for name in RULES}
    for clip in clips:
        with torch.no_grad():
            _, errors = model.module(torch.from_numpy(clip)[None])
        class_errors = class_map.class_errors(errors[0].numpy())
        active = frame_level_db(clip, metadata.analysis) >= DEFAULT_GATE_DB
        heard = class_errors[active] if active.any() else class_errors
        logits = -temperature * heard
        posterior = np.exp(logits - logits.max(axis=1, keepdims=True))
        posterior /= posterior.sum(axis=1, keepdims=True)
        decisions["vote"].append(np.bincount(heard.argmin(axis=1), minlength=heard.shape[1]).argmax())
        decisions["posterior"].append(posterior.mean(axis=0).argmax())
        decisions["median"].append(np.median(heard, axis=0).argmin())
        decisions["lowest 80 %"].append(np.sort(heard, axis=0)[: max(1, int(0.8 * len(heard)))].mean(axis=0).argmin())
        rows.append(class_errors[active].mean(axis=0) if active.any() else np.full(class_errors.shape[1], np.nan))
    return np.array(rows), {name: np.array(chosen) for name, chosen in decisions.items()}


def main() -> None:
    paths, side = sys.argv[1].split(":"), sys.argv[2]
    run = Path(paths[0]).parent
    config = load_config(run / "config.yaml")
    models = [load_model(path, "cpu") for path in paths]
    names = list(models[0].metadata.class_names)
    if side == "test":
        items = scan(Path("data/FluidR3_GM"), "auto")
    else:
        train = read_split(run / "split.csv", Path("data"))["train"]
        items = split_items(train, config.data.validation_fraction, config.data.seed)["test"]
    clips = load_clips(items, models[0].metadata.analysis, Path("data/cache"), progress=False, jobs=1)
    truth = np.array([names.index(label) for label in clips.labels])

    def oa(decisions: np.ndarray) -> float:
        return round(100.0 * float(np.mean(decisions == truth)), 2)

    scored = [clip_class_errors(model, clips.features) for model in models]
    errors = np.stack([np.nan_to_num(clip_errors, nan=np.inf) for clip_errors, _ in scored])
    result: dict = {"models": paths, "side": side, "clips": len(truth),
                    "members": [oa(member.argmin(axis=1)) for member in errors]}
    if len(models) > 1:
        finite = np.where(np.isfinite(errors), errors, np.nan)
        z = (finite - np.nanmean(finite, axis=2, keepdims=True)) / np.nanstd(finite, axis=2, keepdims=True)
        result["ensemble"] = {"mean errors": oa(errors.mean(axis=0).argmin(axis=1)),
                              "z-normalised errors": oa(np.nan_to_num(z.mean(axis=0), nan=np.inf).argmin(axis=1)),
                              "vote": oa(mode(errors.argmin(axis=2), axis=0).mode)}
    else:
        result["rules"] = {name: oa(decisions) for name, decisions in scored[0][1].items()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
