"""Enrolment: a tiny model trained on TimGM6mb meets FluidR3 (a library it never heard); enrolling
FluidR3's phrases must move the recall of its worst class up, and the command line must write a preset
that every tool accepts without ever overwriting an input.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_training import CLASSES, TINY_TRAIN, _config, dataset  # noqa: F401  (dataset is a fixture)
from tiny_model import build_tiny_model

import benchmarks.enrolment as enrolment_benchmark
from benchmarks.enrolment import takes_of
from engine.config import AnalysisConfig
from engine.modelfile import load_model, save_model
from engine.preset import load_preset
from engine.processor import Processor
from training.enrol import compared_frames, enrol, write_enrolled
from training.enrol import main as enrol_main
from training.evaluate import evaluate
from training.features import load_clips
from training.layouts import scan_phrases
from training.train import main as train_main

FLUIDR3 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")


@pytest.fixture(scope="module")
def unseen(tmp_path_factory) -> Path:
    """FluidR3 notes (scored) and phrases (enrolled) of the same three classes."""
    if not FLUIDR3.is_file():
        pytest.skip(f"SOUNDFONT MISSING: {FLUIDR3} (apt-get install fluid-soundfont-gm); enrolment tests skipped")
    out = tmp_path_factory.mktemp("unseen")
    subprocess.run([sys.executable, "-m", "training.data", "render", "--soundfont", str(FLUIDR3), "--out", str(out),
                    "--classes", CLASSES, "--max-notes-per-class", "24", "--phrases-per-class", "3", "--seed", "5"],
                   check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def tiny_model(dataset, tmp_path_factory) -> Path:  # noqa: F811 - pytest passes the imported fixture by name
    folder = tmp_path_factory.mktemp("tiny-run")  # the gain fitted, as the shipped identification model fits it
    assert train_main(["--config", str(_config(folder, dataset, fitted_gain=True)), "--no-progress"]) == 0
    return folder / "run" / "model.pt"


def _recalls(model: Path, data: Path, cache: Path) -> dict[str, float]:
    return evaluate(str(model), data, cache=cache, progress=False)["per_class_recall"]


def test_enrolling_an_unseen_library_moves_its_worst_class_up(tiny_model, unseen, tmp_path):
    before = _recalls(tiny_model, unseen, tmp_path / "cache")
    worst = min(before, key=before.get)
    assert before[worst] < 100.0, before  # otherwise there is nothing to show
    model = load_model(tiny_model)
    phrases = scan_phrases(unseen)
    clips = load_clips([p.item for p in phrases], model.metadata.analysis, tmp_path / "cache", progress=False)
    takes: dict[str, list[np.ndarray]] = {}
    for item, frames in zip(clips.items, clips.features, strict=True):
        takes.setdefault(item.label, []).append(frames)
    prototypes = enrol(model, takes)
    shipped = model.module.prototypes.detach().numpy()
    assert not np.allclose(prototypes, shipped) and np.isfinite(prototypes).all()
    write_enrolled(model, prototypes, tmp_path / "enrolled.pt", {"test": True})
    assert np.array_equal(model.module.prototypes.detach().numpy(), shipped)  # the source model is untouched
    after = _recalls(tmp_path / "enrolled.pt", unseen, tmp_path / "cache")
    assert after[worst] > before[worst], (before, after)


def test_enrol_command_writes_a_preset_every_tool_accepts(tiny_model, unseen, tmp_path, capsys):
    takes = sorted((unseen / "phrases" / "flute").glob("*.wav"))
    out = tmp_path / "my-flute.yaml"
    argv = ["--preset", str(tiny_model), "--class", "flute", "--out", str(out)]
    assert enrol_main([*argv, *(arg for take in takes for arg in ("--audio", str(take)))]) == 0
    assert "enrolled flute" in capsys.readouterr().out
    preset = load_preset(out)
    assert preset.model == (tmp_path / "my-flute.pt").resolve()
    proc = Processor.from_preset(str(out))
    proc.prepare(44100, 512)
    assert proc.process(np.zeros(4096, np.float32)).shape == (4096,)
    source_bytes = tiny_model.read_bytes()
    # An output that is an input is refused before any work, and the input is left as it was.
    code = enrol_main(["--preset", str(tiny_model), "--class", "flute", "--audio", str(takes[0]),
                       "--out", str(tiny_model.with_suffix(".yaml"))])
    assert code == 2 and "is one of the inputs" in capsys.readouterr().err
    assert tiny_model.read_bytes() == source_bytes


@pytest.mark.parametrize("args, message", [
    (["--class", "kazoo"], "class 'kazoo' is not in this model"),
    (["--class", "flute", "--steps", "1"], "at least 5 s"),
])
def test_enrol_command_errors_are_one_line(tiny_model, unseen, tmp_path, capsys, args, message):
    note = min((unseen / "flute").glob("*short*.wav"))  # a 0.15 s note: far too little to enrol
    code = enrol_main(["--preset", str(tiny_model), "--audio", str(note), "--out", str(tmp_path / "x.yaml"), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.yaml").exists() and not (tmp_path / "x.pt").exists()


def test_the_benchmark_enrols_at_most_the_asked_seconds_of_each_class(unseen, tmp_path):
    analysis = AnalysisConfig()
    takes = takes_of(unseen, analysis, 2.0, cache=tmp_path / "cache")
    assert set(takes) == set(CLASSES.split(","))
    for clips in takes.values():
        frames = sum(len(clip) for clip in clips)
        assert 0 < frames <= int(2.0 * analysis.frame_rate) and frames >= int(2.0 * analysis.frame_rate) - 1


def test_the_benchmark_measures_any_model_on_a_library_it_never_heard_beside_the_kept_rows(
        tiny_model, unseen, tmp_path, monkeypatch):
    monkeypatch.setattr(enrolment_benchmark, "DATA", unseen.parent)
    monkeypatch.setattr(enrolment_benchmark, "CACHE", tmp_path / "cache")
    keep = tmp_path / "kept"
    keep.mkdir()
    earlier = {"study": "lolo-x", "library": "X", "enrolled_s": 1.0, "adapt_s": 1.0,
               "before": {"OA": 1.0, "AA": 1.0}, "after": {"OA": 2.0, "AA": 2.0}}
    (keep / "enrolment.json").write_text(json.dumps([earlier]))
    argv = ["--model", str(tiny_model), "--library", unseen.name, "--seconds", "3", "--keep", str(keep)]
    assert enrolment_benchmark.main(argv) == 0
    rows = json.loads((keep / "enrolment.json").read_text())
    assert rows[0] == earlier and len(rows) == 2
    assert rows[1]["study"] == tiny_model.parent.name and rows[1]["library"] == unseen.name
    assert rows[1]["after"]["OA"] != rows[1]["before"]["OA"]  # the enrolled prototypes moved decisions
    assert (keep / f"{tiny_model.parent.name}-enrolled.pt").is_file()
    with pytest.raises(SystemExit):
        enrolment_benchmark.main(["--model", str(tiny_model)])  # the library it never heard is needed too


@pytest.mark.parametrize("dynamic_range_db", [0.0, 40.0])
def test_enrolment_compares_frames_as_the_model_does(tmp_path, dynamic_range_db):
    """A model that floors its frames is enrolled on floored frames; one that does not, on the frames."""
    module, metadata = build_tiny_model(dynamic_range_db=dynamic_range_db)
    model = load_model(save_model(module, metadata, tmp_path / "tiny.pt"))
    frames = np.random.default_rng(0).random((20, metadata.n_mels), dtype=np.float32) * 0.7
    compared = compared_frames(model, frames).numpy()
    floor = frames.max(axis=1, keepdims=True) - dynamic_range_db / 170.0
    expected = np.maximum(frames, floor) if dynamic_range_db else frames
    np.testing.assert_allclose(compared, expected, rtol=0, atol=1e-7)
