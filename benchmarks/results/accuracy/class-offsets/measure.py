"""The measurement behind benchmarks/results/accuracy/class-offsets (kept beside its output; not a tool).

Does a per-class offset on the clip's class errors, fitted on the validation notes of the training libraries,
carry over to a library the model never heard?  Run from the repository root:

    python benchmarks/results/accuracy/class-offsets/measure.py MODEL [MODEL ...]

Each MODEL is a FluidR3 rotation run's ``model.pt`` (its ``config.yaml`` and ``split.csv`` beside it).  The
offsets (one per class) are chosen by coordinate search on a grid for the validation notes' balanced accuracy,
then added to the errors of every FluidR3_GM note.
"""

import json
import sys
from pathlib import Path

import numpy as np

sys.path[:0] = [".", "benchmarks/results/accuracy/seed-ensemble"]
from measure import clip_class_errors  # noqa: E402  (the seed-ensemble measurement's per-clip class errors)

from engine.modelfile import LoadedModel, load_model  # noqa: E402
from training.config import load_config  # noqa: E402
from training.features import load_clips  # noqa: E402
from training.layouts import scan  # noqa: E402
from training.splits import read_split, split_items  # noqa: E402

GRID = np.linspace(-0.02, 0.02, 41)  # the errors' median is about 0.014
SWEEPS = 4


def errors_for(model: LoadedModel, run: Path, side: str) -> tuple[np.ndarray, np.ndarray]:
    config = load_config(run / "config.yaml")
    names = list(model.metadata.class_names)
    if side == "test":
        items = scan(Path("data/FluidR3_GM"), "auto")
    else:
        train = read_split(run / "split.csv", Path("data"))["train"]
        items = split_items(train, config.data.validation_fraction, config.data.seed)["test"]
    clips = load_clips(items, model.metadata.analysis, Path("data/cache"), progress=False, jobs=1)
    truth = np.array([names.index(label) for label in clips.labels])
    errors, _ = clip_class_errors(model, clips.features)
    return np.nan_to_num(errors, nan=np.inf), truth


def balanced(decisions: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([np.mean(decisions[truth == c] == c) for c in np.unique(truth)]))


def fit_offsets(errors: np.ndarray, truth: np.ndarray) -> np.ndarray:
    finite = np.isfinite(errors).all(axis=1)
    errors, truth = errors[finite], truth[finite]
    offsets = np.zeros(errors.shape[1])
    best = balanced(errors.argmin(axis=1), truth)
    for _ in range(SWEEPS):
        for c in range(len(offsets)):
            scores = []
            for step in GRID:
                trial = offsets.copy()
                trial[c] += step
                scores.append(balanced((errors + trial).argmin(axis=1), truth))
            if max(scores) > best:
                best = max(scores)
                offsets[c] += GRID[int(np.argmax(scores))]
    return offsets


def main() -> None:
    result = {}
    for path in sys.argv[1:]:
        run = Path(path).parent
        model = load_model(path, "cpu")
        validation, validation_truth = errors_for(model, run, "validation")
        test, test_truth = errors_for(model, run, "test")
        offsets = fit_offsets(validation, validation_truth)
        result[path] = {
            "validation OA before": 100 * np.mean(validation.argmin(1) == validation_truth),
            "validation OA after": 100 * np.mean((validation + offsets).argmin(1) == validation_truth),
            "test OA before": 100 * np.mean(test.argmin(1) == test_truth),
            "test OA after": 100 * np.mean((test + offsets).argmin(1) == test_truth),
            "test AA before": 100 * balanced(test.argmin(1), test_truth),
            "test AA after": 100 * balanced((test + offsets).argmin(1), test_truth),
            "offsets": offsets.round(4).tolist()}
        print(json.dumps(result[path]), flush=True)
    Path(__file__).with_name("result.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
