"""benchmarks.accuracy's bookkeeping: training time from the run logs, the kept results folder."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.accuracy import keep_results, markdown, training_seconds


def _run(folder: Path, epoch_seconds: list[float]) -> Path:
    folder.mkdir(parents=True)
    lines = ["epoch,stage,loss,seconds,reassigned"]
    lines += [f"{i + 1},prototypes,0.1,{s},0" for i, s in enumerate(epoch_seconds)]
    (folder / "log.csv").write_text("\n".join(lines) + "\n")
    (folder / "model.pt").write_bytes(b"model " + folder.name.encode())
    return folder / "model.pt"


def test_training_time_sums_every_epoch_and_reads_the_baselines(tmp_path: Path) -> None:
    models = {"prototypes": _run(tmp_path / "study", [8.0, 8.5, 9.0]),
              "clustering": _run(tmp_path / "study-clustering", [7.0, 7.0])}
    (tmp_path / "study" / "baselines.json").write_text(json.dumps({"cnn_seconds": 176.04,
                                                                   "autoencoder_seconds": 114.0}))
    assert training_seconds(models) == {"prototypes": 25.5, "clustering": 14.0, "cnn": 176.0,
                                        "autoencoder+kmeans": 114.0}


def test_kept_results_hold_every_scored_model_and_the_table(tmp_path: Path) -> None:
    models = {"prototypes": _run(tmp_path / "runs" / "a", [1.0]),
              "autoencoder+kmeans": _run(tmp_path / "runs" / "b", [2.0])}
    rows = [{"study": "a", "test": "all of X", "prototypes": {"OA": 50.0, "AA": 40.0},
             "autoencoder+kmeans": {"OA": 20.0, "AA": 10.0}, "train_seconds": {"prototypes": 1.0}}]
    keep_results(tmp_path / "kept", {"a": models}, rows)
    kept = tmp_path / "kept"
    assert (kept / "a" / "prototypes.pt").read_bytes() == b"model a"
    assert (kept / "a" / "autoencoder-kmeans.pt").read_bytes() == b"model b"
    assert json.loads((kept / "accuracy.json").read_text()) == rows
    table = (kept / "accuracy.md").read_text()
    assert "| a | all of X | 50.0 / 40.0 | 20.0 / 10.0 |" in table and "| a | 1 |" in table
    assert table == markdown(rows) + "\n"
