"""The accuracy table: prototype models beside the paper's baselines on the same splits.

    python -m benchmarks.accuracy                  # everything (about 1.5 h on 2 CPU cores)
    python -m benchmarks.accuracy --only orchestra --json

For each study (a training config in ``training/configs``) it trains, unless already trained: the
supervised prototype model, its clustering twin (same split, no labels, ``--clusters`` prototypes), the
direct CNN and the autoencoder + k-means.  Then it scores each on the study's test split with
``training.evaluate`` — per sample library for the held-out-notes study — and prints one table.
Studies: ``orchestra`` (held-out 20 % of the notes of each library), ``lolo-*`` (train on two
libraries, test on the third) and ``orchestra-lookahead`` (the cost of causality).  Needs the rendered
libraries under ``data/`` (``python -m training.rebuild --data-only``).

The scored model files, the table and its rows are copied to ``--keep`` (default
``benchmarks/results/accuracy``), so the figures can be checked again with ``training.evaluate``
without retraining.  Training time is the sum of the epochs' times in each run's ``log.csv`` (a run
resumed after a kill counts every epoch once).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from training.evaluate import evaluate

CONFIGS = Path("training/configs")
LIBRARIES = ("FluidR3_GM", "TimGM6mb", "sf_GMbank")
STUDIES = ("orchestra", "lolo-fluidr3-gm", "lolo-timgm6mb", "lolo-sf-gmbank", "orchestra-lookahead")


def _config(study: str) -> dict:
    return yaml.safe_load((CONFIGS / f"{study}.yaml").read_text())


def split_file(study: str) -> Path:
    config = _config(study)
    return Path(config["data"].get("split_file") or Path(config["output"]) / "split.csv")


def _run(*command: str) -> None:
    print("$", " ".join(command), flush=True)
    subprocess.run([sys.executable, "-m", *command, "--no-progress"], check=True)


def clustering_config(study: str, clusters: int) -> Path:
    """The study's config turned unsupervised, on the same split file; written next to its run."""
    config = _config(study)
    output = Path(config["output"])
    config.update(name=f"{study}-clustering", output=f"{output}-clustering")
    config.pop("export", None)
    config["data"]["split_file"] = str(split_file(study))
    config["train"].update(mode="clustering", n_prototypes=clusters)
    config["train"].pop("prototypes_per_class", None)
    path = Path(f"{output}-clustering") / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def train_study(study: str, clusters: int, with_clustering: bool, with_baselines: bool) -> dict[str, Path]:
    """Train what is missing, continuing a run that was cut short; return the model files to score."""
    config_path = CONFIGS / f"{study}.yaml"
    output = Path(_config(study)["output"])
    models = {"prototypes": output / "model.pt"}
    if not models["prototypes"].exists():
        _run("training.train", "--config", str(config_path), "--resume")
    if with_clustering:
        models["clustering"] = Path(f"{output}-clustering") / "model.pt"
        if not models["clustering"].exists():
            _run("training.train", "--config", str(clustering_config(study, clusters)), "--resume")
    if with_baselines:
        models["cnn"] = output / "cnn.pt"
        models["autoencoder+kmeans"] = output / "autoencoder-kmeans.pt"
        if not models["cnn"].exists() or not models["autoencoder+kmeans"].exists():
            _run("training.train_baselines", "--config", str(config_path))
    return models


def training_seconds(models: dict[str, Path]) -> dict[str, float]:
    """Seconds spent training each model: epoch times from ``log.csv``, baseline times from ``baselines.json``."""
    seconds = {}
    for column, model in models.items():
        log = model.parent / "log.csv"
        if column in ("prototypes", "clustering") and log.is_file():
            with log.open(newline="") as rows:
                seconds[column] = round(sum(float(row["seconds"]) for row in csv.DictReader(rows)), 1)
    baselines = models["prototypes"].parent / "baselines.json"
    if baselines.is_file():
        timing = json.loads(baselines.read_text())
        seconds.update({"cnn": round(timing["cnn_seconds"], 1),
                        "autoencoder+kmeans": round(timing["autoencoder_seconds"], 1)})
    return seconds


def keep_results(folder: Path, studies: dict[str, dict[str, Path]], rows: list[dict]) -> None:
    """Copy every scored model to ``folder/<study>/<column>.pt`` beside the rows and the table."""
    for study, models in studies.items():
        (folder / study).mkdir(parents=True, exist_ok=True)
        for column, model in models.items():
            shutil.copyfile(model, folder / study / f"{column.replace('+', '-')}.pt")
    (folder / "accuracy.json").write_text(json.dumps(rows, indent=1) + "\n")
    (folder / "accuracy.md").write_text(markdown(rows) + "\n")


def score_study(study: str, models: dict[str, Path]) -> list[dict]:
    test_sets = [(f"held-out {lib}", lib) for lib in LIBRARIES] if study.startswith("orchestra") else [
        (f"all of {_config(study)['data']['test_library']}", None)]
    rows, seconds = [], training_seconds(models)
    for label, library in test_sets:
        row = {"study": study, "test": label, "train_seconds": seconds}
        for column, model in models.items():
            result = evaluate(str(model), Path("data"), split_file(study), cache=Path("data/cache"),
                              progress=False, library=library)
            row[column] = {"OA": result["OA"], "AA": result["AA"]}
            if "streaming" in result:
                row[f"{column} live 1s"] = result["streaming"]["after_1s"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    """The accuracy table (clip decision OA / AA) and, below it, each study's training time."""
    columns = [c for c in ("prototypes", "prototypes live 1s", "cnn", "clustering", "autoencoder+kmeans")
               if any(c in row for row in rows)]
    lines = ["| study | test set | " + " | ".join(f"{c} OA / AA" for c in columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{row[c]['OA']:.1f} / {row[c]['AA']:.1f}" if c in row else "" for c in columns]
        lines.append(f"| {row['study']} | {row['test']} | " + " | ".join(cells) + " |")
    timed = ("prototypes", "clustering", "cnn", "autoencoder+kmeans")
    lines += ["", "| study | " + " | ".join(f"{c} training s" for c in timed) + " |", "|---|" + "---|" * len(timed)]
    for study, seconds in {row["study"]: row["train_seconds"] for row in rows}.items():
        lines.append(f"| {study} | " + " | ".join(f"{seconds[c]:.0f}" if c in seconds else "" for c in timed) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accuracy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=STUDIES, default=STUDIES, help="studies to run")
    parser.add_argument("--clusters", type=int, default=28, help="prototypes of the clustering twins")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    parser.add_argument("--keep", type=Path, default=Path("benchmarks/results/accuracy"),
                        help="folder for the scored model files, accuracy.json and accuracy.md")
    args = parser.parse_args(argv)
    rows, studies = [], {}
    for study in args.only:
        lookahead = study.endswith("lookahead")
        studies[study] = train_study(study, args.clusters, with_clustering=not lookahead,
                                     with_baselines=not lookahead)
        rows.extend(score_study(study, studies[study]))
    keep_results(args.keep, studies, rows)
    print(json.dumps(rows, indent=1) if args.json else markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
