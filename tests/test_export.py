"""Model files: scripted == eager after a round trip, metadata, and clear errors for bad files."""

import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from tiny_model import build_tiny_model

from engine.errors import ModelFileError
from engine.modelfile import load_model, load_streaming_model, save_model
from training.splits import read_split


@pytest.mark.parametrize(("lookahead", "dynamic_range_db"), [(0, 0.0), (2, 0.0), (2, 60.0)])
def test_scripted_model_equals_eager_after_round_trip(tmp_path, lookahead, dynamic_range_db):
    model, metadata = build_tiny_model(lookahead=lookahead, dynamic_range_db=dynamic_range_db)
    path = save_model(model, metadata, tmp_path / "tiny.pt")
    loaded = load_model(path)
    assert loaded.metadata == metadata
    frames = torch.rand(1, 60, metadata.n_mels) * 0.7
    with torch.no_grad():
        eager = model(frames)
        scripted = loaded.module(frames)
        loaded.module.reset()
        model.reset()
        eager_step = model.step(frames[0, :25])
        scripted_step = loaded.module.step(frames[0, :25])
    for a, b in zip(eager + eager_step, scripted + scripted_step, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    with torch.no_grad():
        assert float(loaded.module.temperature()) == pytest.approx(float(model.temperature()))


def test_loading_needs_no_training_code_and_prints_no_deprecation_warning(tmp_path):
    model, metadata = build_tiny_model()
    path = save_model(model, metadata, tmp_path / "tiny.pt")
    script = (
        "import sys, warnings; warnings.simplefilter('always');"
        "from engine.modelfile import load_model; m = load_model(sys.argv[1]);"
        "assert 'training' not in sys.modules; print(m.metadata.class_names)"
    )
    result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True)
    assert "sine" in result.stdout
    assert "deprecated" not in result.stderr.lower()


def test_saving_does_not_leak_deprecation_warnings(tmp_path):
    model, metadata = build_tiny_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        save_model(model, metadata, tmp_path / "tiny.pt")
    assert not [w for w in caught if "deprecated" in str(w.message)]


def test_missing_corrupt_and_foreign_files_give_clear_errors(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "absent.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 this is not a model")
    with pytest.raises(ModelFileError, match="not a Protophone model file"):
        load_model(corrupt)
    truncated = tmp_path / "truncated.pt"
    model, metadata = build_tiny_model()
    save_model(model, metadata, tmp_path / "whole.pt")
    truncated.write_bytes((tmp_path / "whole.pt").read_bytes()[:5000])
    with pytest.raises(ModelFileError):
        load_model(truncated)
    foreign = tmp_path / "foreign.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(foreign))
    with pytest.raises(ModelFileError, match="without Protophone metadata"):
        load_model(foreign)


def test_cuda_request_without_gpu_is_a_clear_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the CUDA path is covered by test_processor's device test")
    model, metadata = build_tiny_model()
    path = save_model(model, metadata, tmp_path / "tiny.pt")
    with pytest.raises(ModelFileError, match="no CUDA GPU"):
        load_model(path, device="cuda")


def test_a_model_file_written_again_keeps_its_numbers_and_never_its_own_path(tmp_path):
    """``python -m training.export MODEL --out NEW`` rescripts with this engine's code, same weights."""
    model, metadata = build_tiny_model(lookahead=2, dynamic_range_db=60.0)
    original = save_model(model, metadata, tmp_path / "tiny.pt")
    again = tmp_path / "again.pt"
    run = subprocess.run([sys.executable, "-m", "training.export", str(original), "--out", str(again)],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    first, second = load_model(original), load_model(again)
    assert second.metadata == first.metadata
    frames = torch.rand(1, 50, metadata.n_mels) * 0.7
    with torch.no_grad():
        for a, b in zip(first.module(frames), second.module(frames), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    refused = subprocess.run([sys.executable, "-m", "training.export", str(original), "--out", str(original)],
                             capture_output=True, text=True, check=False)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"error: --out {original} is the input itself; write elsewhere, then move it"]


def test_a_model_file_written_again_can_learn_its_classes_playing_ranges(tmp_path):
    """``--ranges-from CONFIG``: the ranges ``register: target`` needs, from the notes of the config's training
    side, for a file written before models carried them."""
    model, metadata = build_tiny_model()
    original = save_model(model, metadata, tmp_path / "tiny.pt")
    data = tmp_path / "data"
    notes = {"sine": range(50, 70), "sawtooth": range(60, 62), "square": range(40, 41)}
    rows = ["path,class,midi,variant,library"]  # the renderer's metadata.csv: where a note's pitch comes from
    for label, midis in notes.items():
        (data / label).mkdir(parents=True)
        for midi in midis:
            name = f"{label}/{label}-{midi:03d}.wav"
            sf.write(data / name, np.zeros(4410, dtype=np.float32), 44100)
            rows.append(f"{name},{label},{midi},plain,tiny")
    (data / "metadata.csv").write_text("\n".join(rows) + "\n")
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"name": "tiny", "data": {"roots": [str(data)], "test_fraction": 0.25},
                                      "output": str(tmp_path / "run")}))
    again = tmp_path / "again.pt"
    run = subprocess.run([sys.executable, "-m", "training.export", str(original), "--out", str(again),
                          "--ranges-from", str(config)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    ranges = dict(zip(metadata.class_names, load_model(again).metadata.class_ranges, strict=True))
    train = read_split(tmp_path / "run" / "split.csv", data)["train"]
    for label in notes:
        played = [item.midi for item in train if item.label == label]
        assert ranges[label] == pytest.approx(tuple(np.percentile(played, [5, 95])), abs=0.05), label
    assert ranges["square"] == (40.0, 40.0) and load_model(original).metadata.class_ranges == ()


def test_a_model_file_written_again_with_its_own_code_gains_the_fused_numbers(tmp_path):
    """``--keep-code``: a file from before the fused numbers keeps its TorchScript code and metadata and gains the
    numbers that let a CPU stream run without torch."""
    old = Path(__file__).parent.parent / "benchmarks/results/accuracy/lolo-fluidr3-gm/prototypes.pt"
    assert load_streaming_model(old).module is not None  # no numbers in it: its module has to be loaded
    again = tmp_path / "again.pt"
    run = subprocess.run([sys.executable, "-m", "training.export", str(old), "--keep-code", "--out", str(again)],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    streaming = load_streaming_model(again)
    assert streaming.module is None and streaming.metadata == load_model(old).metadata

    def code(path: Path) -> dict[str, bytes]:
        with zipfile.ZipFile(path) as archive:
            return {name.split("/", 1)[1]: archive.read(name) for name in archive.namelist() if "/code/" in name
                    and name.endswith(".py")}

    assert code(again) == code(old) and code(old)


def test_an_old_model_file_written_again_streams_the_same_numbers(tmp_path):
    """A file from before the frame floor and the row-wise step: the rewritten file's step, chunk by chunk,
    gives what the old file's own step gives."""
    old = Path(__file__).parent.parent / "benchmarks/results/accuracy/lolo-fluidr3-gm/prototypes.pt"
    run = subprocess.run([sys.executable, "-m", "training.export", str(old), "--out", str(tmp_path / "new.pt")],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    first, second = load_model(old), load_model(tmp_path / "new.pt")
    frames = torch.rand(24, first.metadata.n_mels) * 0.7
    with torch.no_grad():
        for start in range(0, 24, 5):
            for a, b in zip(first.module.step(frames[start:start + 5]), second.module.step(frames[start:start + 5]),
                            strict=True):
                torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
