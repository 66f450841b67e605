"""benchmarks.accuracy's bookkeeping: training time from the run logs, the kept results folder, the rotations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from benchmarks.accuracy import (
    CONFIGS,
    ROTATION_VARIANTS,
    SHIPPED_STUDY,
    keep_results,
    markdown,
    rotation_config,
    rotations_markdown,
    training_seconds,
)


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


def test_training_time_of_a_cnn_trained_alone(tmp_path: Path) -> None:
    models = {"prototypes": _run(tmp_path / "rotation", [10.0]), "cnn": tmp_path / "rotation" / "cnn.pt"}
    (tmp_path / "rotation" / "baselines.json").write_text(json.dumps({"cnn_seconds": 350.04, "only": "cnn"}))
    assert training_seconds(models) == {"prototypes": 10.0, "cnn": 350.0}


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


def test_a_rotation_is_the_shipped_recipe_with_the_library_and_its_relatives_never_heard(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configs = Path(__file__).parents[1] / CONFIGS
    shipped = yaml.safe_load((configs / f"{SHIPPED_STUDY}.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("benchmarks.accuracy.CONFIGS", configs)
    config = yaml.safe_load(rotation_config("TimGM6mb").read_text())
    assert config["data"]["test_library"] == "TimGM6mb" and config["data"]["split"] == "library"
    assert "data/sf_GMbank" in shipped["data"]["roots"] and "data/sf_GMbank" not in config["data"]["roots"]
    assert "data/TimGM6mb" in config["data"]["roots"]  # the split file names its notes as the test side
    assert config["train"] == shipped["train"] and config["augment"] == shipped["augment"]
    assert "export" not in config and config["output"] == "runs/rotation/TimGM6mb"
    assert yaml.safe_load(rotation_config("Aspirin").read_text())["data"]["roots"] == shipped["data"]["roots"]
    variant = yaml.safe_load(rotation_config("TimGM6mb", "tilt").read_text())  # a change, on the same notes
    assert variant["train"] == {**shipped["train"], **ROTATION_VARIANTS["tilt"]} != shipped["train"]
    assert variant["data"]["split_file"] == "runs/rotation/TimGM6mb/split.csv"
    assert variant["output"] == "runs/rotation-tilt/TimGM6mb" and variant["data"]["roots"] == config["data"]["roots"]


def test_the_rotation_table_sets_the_prototypes_beside_the_cnn_with_the_mean() -> None:
    rows = [{"library": "A", "left out with it": [], "prototypes": {"OA": 50.0, "AA": 49.0},
             "prototypes live 1s": {"OA": 40.0, "AA": 39.0, "undecided": 20.0}, "cnn": {"OA": 60.0, "AA": 61.0}},
            {"library": "B", "left out with it": ["C"], "prototypes": {"OA": 70.0, "AA": 69.0},
             "prototypes live 1s": {"OA": 60.0, "AA": 59.0, "undecided": 10.0}, "cnn": {"OA": 65.0, "AA": 64.0}}]
    table = rotations_markdown(rows)
    assert "| A | 50.0 / 49.0 | 40.0 (20 %) | 60.0 / 61.0 | -10.0 |" in table
    assert "| B (C) | 70.0 / 69.0 | 60.0 (10 %) | 65.0 / 64.0 | +5.0 |" in table
    assert "| **mean of 2** | **60.0** | | **62.5** | -2.5 |" in table


def test_every_rotation_variant_pins_the_settings_the_shipped_recipe_has_changed() -> None:
    """A variant's rows were measured against the shipped recipe of their day: each names its length, its band
    convolution and its last stage's schedule itself, so that a later shipped config does not change what it
    retrains."""
    pinned = {"epochs", "validate_every", "band_channels", "finetune_lr_scale", "finetune_schedule"}
    for name, recipe in ROTATION_VARIANTS.items():
        assert pinned <= recipe.keys(), name
