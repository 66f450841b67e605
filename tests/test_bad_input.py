"""Bad input and bad conditions, as a new user meets them: every case through the real command line or API.

Each case asserts the exit status, one line that names the problem (never a traceback), and that nothing
was lost: inputs and earlier outputs unchanged, no half-written file, no temporary file left behind.  A
full disk is a file-size limit (``RLIMIT_FSIZE``) on the child process: the same failed write, without
needing a full file system.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from tiny_model import write_tiny_model

from engine.atomic import OutputPathError, check_output, replacing
from engine.audiofile import AudioFileWarning
from engine.modelfile import METADATA_NAME, quiet_torchscript
from engine.processor import ConcurrentUseError, Processor
from realtime import live
from training import train

REPO = Path(__file__).resolve().parent.parent
TIMGM = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
TINY_TRAIN = {"prototypes_per_class": 1, "channels": 16, "dilations": [1, 2], "epochs": 2, "batch_size": 8,
              "crop_frames": 24, "scored_frames": 8, "batches_per_epoch": 2, "patience": 1, "warmup_batches": 2}


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (hidden ones included) with its content: what 'nothing lost' compares."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def hidden_files(folder: Path) -> list[str]:
    return [path.name for path in folder.rglob(".*")]


@pytest.fixture()
def studio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with a tiny preset (found by name), a 24-bit take and an earlier output."""
    presets = tmp_path / "presets"
    presets.mkdir()
    write_tiny_model(presets / "tiny.pt")
    (presets / "tiny.yaml").write_text("model: tiny.pt\nmode: transfer\ntarget: square\n")
    monkeypatch.setenv("PROTOPHONE_PRESETS", str(presets))
    rate = 48000
    tone = 0.5 * np.sin(2 * np.pi * 220 * np.arange(rate) / rate)
    sf.write(tmp_path / "take.wav", tone, rate, subtype="PCM_24")
    sf.write(tmp_path / "earlier.wav", tone[:1000], rate)
    return tmp_path


def run_live(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    """``python -m realtime.live ARGS`` in this process: exit status and the lines on stderr (stdout is kept
    in ``run_live.stdout``)."""
    status = live.main(list(args))
    captured = capsys.readouterr()
    run_live.stdout = captured.out
    return status, captured.err.strip().splitlines()


def model_with_metadata(folder: Path, change: dict) -> Path:
    """The tiny model with its metadata edited (``None`` drops a key): a damaged or hand-edited model file."""
    path = write_tiny_model(folder / "edited.pt")
    extra = {METADATA_NAME: ""}
    with quiet_torchscript():
        module = torch.jit.load(str(path), _extra_files=extra)
        metadata = json.loads(extra[METADATA_NAME])
        for key, value in change.items():
            metadata.pop(key) if value is None else metadata.__setitem__(key, value)
        torch.jit.save(module, str(path), _extra_files={METADATA_NAME: json.dumps(metadata)})
    return path


def preset_with(folder: Path, line: str) -> Path:
    path = folder / "edited.yaml"
    path.write_text(f"model: presets/tiny.pt\nmode: transfer\ntarget: square\n{line}\n")
    return path


PRESET_VALUES = [
    ("mix: 5", "mix (0 = dry input only, 1 = transferred sound only) must be from 0 to 1, got 5"),
    ("transpose: 100", "transpose (pitch shift of the transferred sound) must be from -48 to 48 semitones"),
    ("gain_db: 60", "gain_db (output gain) must be from -96 to 24 dB, got 60"),
    ("time_constant_s: 0", "time_constant_s (smoothing of the live identification) must be above 0"),
    ("gate_db: .nan", "gate_db (frames quieter than this are ignored) must be from -120 to 0 dB, got nan"),
    ("hold_s: .inf", "hold_s (silence before the readout names nothing) must be from 0 to 10 s, got inf"),
    ("mix: loud", "mix must be a number from 0 to 1, got 'loud'"),
    ("target: banjo", "unknown target 'banjo'; this model knows: sine, sawtooth, square"),
]


@pytest.mark.parametrize(("line", "expected"), PRESET_VALUES, ids=[line for line, _ in PRESET_VALUES])
def test_out_of_range_preset_values_are_one_line(studio, capsys, line, expected):
    before = snapshot(studio)
    status, err = run_live(capsys, "--preset", str(preset_with(studio, line)), "--input", str(studio / "take.wav"),
                           "--output", str(studio / "out.wav"))
    assert status == 2 and len(err) == 1 and expected in err[0], err
    assert snapshot(studio) == before | {"edited.yaml": (studio / "edited.yaml").read_bytes()}


METADATA = [
    ({"hop": 0}, "hop must divide n_fft"), ({"sample_rate": 0}, "sample_rate must be 1000..384000 Hz"),
    ({"n_fft": 16}, "hop must divide n_fft (16)"), ({"lookahead": -3}, "lookahead must be a whole number of frames"),
    ({"lookahead": 10000}, "disagree on the number of prototypes, bands or look-ahead frames"),
    ({"class_names": None}, "missing class_names"), ({"n_mels": "x"}, "n_mels must be a whole number"),
]


@pytest.mark.parametrize(("change", "expected"), METADATA, ids=[str(change) for change, _ in METADATA])
def test_bad_model_metadata_is_one_line(studio, capsys, change, expected):
    status, err = run_live(capsys, "--preset", str(model_with_metadata(studio, change)), "--input", "demo")
    assert status == 2 and len(err) == 1 and expected in err[0], err


def test_the_input_is_never_overwritten(studio, capsys):
    take = studio / "take.wav"
    os.link(take, studio / "same-take.wav")
    (studio / "link.wav").symlink_to(take)
    before = snapshot(studio)
    for output in ("take.wav", "same-take.wav", "link.wav", "./take.wav"):
        status, err = run_live(capsys, "--preset", "tiny", "--input", str(take), "--output", str(studio / output))
        assert status == 2 and len(err) == 1 and "is the input" in err[0] and "never replaces" in err[0], err
    with pytest.raises(OutputPathError, match="is the input"):
        Processor.from_preset("tiny").process_file(take, studio / "link.wav")
    assert snapshot(studio) == before
    assert sf.info(take).subtype == "PCM_24"


@pytest.mark.parametrize(("args", "expected"), [
    (["--output", "{studio}"], "is a folder; give a file name"),
    (["--preset", "../presets/tiny"], "is neither a preset name (see --list-presets) nor a preset file"),
    (["--preset", "{studio}/broken.yaml"], "is not valid YAML: expected ',' or ']', but got ':' at line 3"),
    (["--input", "{studio}/slow.wav"], ("is sampled at 4000 Hz, outside the 8000..384000 Hz Protophone plays; "
                                        "add --sample-rate 48000")),
    (["--input", "{studio}/fast.wav"], "is sampled at 400000 Hz"),
])
def test_bad_paths_rates_and_files_are_one_line_before_any_work(studio, capsys, args, expected):
    (studio / "broken.yaml").write_text("model: tiny.pt\nmix: [1\n  2: 3\n")
    sf.write(studio / "slow.wav", np.zeros(4000), 4000)
    sf.write(studio / "fast.wav", np.zeros(40000), 400000)
    before = snapshot(studio)
    defaults = {"--preset": "tiny", "--input": str(studio / "take.wav"), "--output": str(studio / "out.wav")}
    given = dict(zip(args[::2], (value.format(studio=studio) for value in args[1::2]), strict=True))
    status, err = run_live(capsys, *[part for item in {**defaults, **given}.items() for part in item])
    assert status == 2 and len(err) == 1 and expected in err[0], err
    assert snapshot(studio) == before


def test_a_truncated_file_is_played_with_a_warning_and_keeps_its_bit_depth(studio, capsys):
    cut = studio / "cut.wav"
    cut.write_bytes((studio / "take.wav").read_bytes()[:60000])
    with pytest.warns(AudioFileWarning, match="cut.wav is truncated"):
        status, _ = run_live(capsys, "--preset", "tiny", "--input", str(cut), "--output", str(studio / "out.wav"))
    assert status == 0
    assert sf.info(studio / "out.wav").subtype == "PCM_24" and sf.info(studio / "out.wav").frames == (60000 - 44) // 3


def test_clipping_is_counted_and_reported(studio, capsys):
    loud = studio / "loud.wav"
    sf.write(loud, np.sign(np.sin(2 * np.pi * 220 * np.arange(48000) / 48000)), 48000, subtype="PCM_16")
    gain = preset_with(studio, "gain_db: 24\nmix: 0")  # the dry square wave, 24 dB up: must clip in 16 bits
    status, _ = run_live(capsys, "--preset", str(gain), "--input", str(loud), "--output", str(studio / "out.wav"),
                         "--json")
    assert status == 0 and json.loads(run_live.stdout)["clipped_samples"] > 40000
    status, _ = run_live(capsys, "--preset", str(gain), "--input", str(loud), "--output", str(studio / "out.wav"))
    assert "samples clipped at full scale: lower --mix or the preset's gain_db" in run_live.stdout
    result = Processor.from_preset(gain).process_file(loud, studio / "api.wav")
    assert result["clipped_samples"] > 40000 and sf.info(studio / "api.wav").subtype == "PCM_16"
    assert Processor.from_preset(gain).process_file(loud, studio / "float.flac")["clipped_samples"] > 40000
    sf.write(studio / "float.wav", np.sign(np.sin(np.arange(4800))), 48000, subtype="FLOAT")
    assert Processor.from_preset(gain).process_file(studio / "float.wav", studio / "out4.wav")["clipped_samples"] == 0


def test_broken_presets_are_listed_as_unusable(studio, capsys):
    presets = studio / "presets"
    (presets / "nomodel.yaml").write_text("model: missing.pt\n")
    (presets / "cut.pt").write_bytes((presets / "tiny.pt").read_bytes()[:5000])
    (presets / "cutmodel.yaml").write_text("model: cut.pt\n")
    (presets / "wrongtarget.yaml").write_text("model: tiny.pt\nmode: transfer\ntarget: oboe\n")
    status, _ = run_live(capsys, "--list-presets")
    listing = dict(line.split(maxsplit=1) for line in run_live.stdout.splitlines())
    assert status == 0 and not listing["tiny"].startswith("(unusable")
    assert listing["nomodel"].startswith("(unusable: model file not found")
    assert listing["cutmodel"].startswith("(unusable:") and "is not a Protophone model file" in listing["cutmodel"]
    assert listing["wrongtarget"] == "(unusable: its target 'oboe' is not one of its model's classes)"


# --- the engine as a library ---------------------------------------------------------------------------

def test_two_threads_in_one_processor_get_a_clear_error_never_a_crash(studio):
    proc = Processor.from_preset("tiny")
    proc.prepare(48000, 256)
    block = np.zeros(256, dtype=np.float32)
    reentered: list[Exception] = []

    def tap(*_: object) -> None:  # runs inside process(): a second call now is a second thread's call
        try:
            proc.process(block)
        except ConcurrentUseError as error:
            reentered.append(error)

    proc.tap = tap
    proc.process(np.sin(np.arange(4096, dtype=np.float32) * 0.06))
    assert reentered and "another thread was using the same Processor" in str(reentered[0])
    proc.tap = None
    outcomes: list[str] = []

    def hammer() -> None:
        for _ in range(200):
            try:
                out = proc.process(block)
                outcomes.append("ok" if out.shape == (256,) and np.isfinite(out).all() else "bad")
            except ConcurrentUseError:
                outcomes.append("refused")

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 400 and "bad" not in outcomes


def test_channels_first_blocks_are_refused_with_the_fix(studio):
    proc = Processor.from_preset("tiny")
    proc.prepare(48000, 256)
    with pytest.raises(ValueError, match=r"shape \(2, 256\) has more than 64 channels: is it channels-first"):
        proc.process(np.zeros((2, 256), dtype=np.float32))
    assert proc.process(np.zeros((256, 2), dtype=np.float32)).shape == (256,)


def test_replacing_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "result.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), replacing(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["result.txt"]
    with replacing(target) as temporary:
        temporary.write_text("new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["result.txt"]
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()
    with pytest.raises(OutputPathError, match="is a folder"):
        check_output(tmp_path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --- full disks and signals, in child processes ------------------------------------------------------------

def _limited(limit_bytes: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return apply


def _child(args: list[str], limit_bytes: int | None = None, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
                          preexec_fn=_limited(limit_bytes) if limit_bytes else None,
                          env={**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'tests'}"}, **kwargs)


def test_a_full_disk_keeps_the_earlier_output_and_says_so(studio):
    before = snapshot(studio)
    run = _child(["-m", "realtime.live", "--preset", "tiny", "--input", "demo", "--output",
                  str(studio / "earlier.wav")], limit_bytes=100_000)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.count("\n") == 1 and "cannot write" in run.stderr and "earlier file there is untouched" in \
        run.stderr
    assert snapshot(studio) == before


def test_sigterm_ends_a_file_run_like_ctrl_c_with_a_complete_file(studio):
    out = studio / "out.wav"
    engine = subprocess.Popen([sys.executable, "-m", "realtime.live", "--preset", "tiny", "--input", "demo",
                               "--output", str(out), "--realtime", "--json"], cwd=REPO, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    deadline = time.monotonic() + 120
    stderr_lines: list[str] = []
    while engine.poll() is None and time.monotonic() < deadline:  # the per-second log: a second was played
        line = engine.stderr.readline()
        stderr_lines.append(line)
        if re.match(r"\s*1\.\d/[\d.]+s ", line):  # "1.0/6.9s 14 % ...": a second of the file was played
            break
    engine.send_signal(signal.SIGTERM)
    stdout, stderr = engine.communicate(timeout=60)
    assert engine.returncode == 0 and "Traceback" not in stderr, "".join(stderr_lines) + stderr
    summary = json.loads(stdout)
    assert summary["interrupted"] and 1.0 <= summary["duration_s"] < 6.0
    rate = summary["sample_rate"]  # the output is aligned with the input: it lacks the last latency's samples
    heard_and_out = summary["duration_s"] * rate - summary["latency"]["engine_ms"] * rate / 1e3
    assert sf.info(out).frames == pytest.approx(heard_and_out, abs=summary["block_size"])
    assert hidden_files(studio) == []


RECORDER = textwrap.dedent("""
    import os, signal, sys, time
    import numpy as np
    from realtime.recorder import Recorder
    recorder = Recorder(sys.argv[1], 48000, 480)
    block = np.full(480, 0.25, dtype=np.float32)
    for index in range(int(sys.argv[2])):
        recorder.push(block)
        time.sleep(0.002)
        if recorder.error:
            break
    if sys.argv[3] == "kill":
        time.sleep(1.5)  # past a flush
        os.kill(os.getpid(), signal.SIGKILL)
    recorder.close()
    print(recorder.error, recorder.frames_written)
""")


def test_a_recording_survives_a_full_disk_and_a_kill(tmp_path):
    take = tmp_path / "take.wav"
    full = _child(["-c", RECORDER, str(take), "1000", "close"], limit_bytes=200_000)
    assert full.returncode == 0, full.stderr
    frames = int(full.stdout.split()[-1])  # printed: "<error> <frames written>"
    assert " after " in full.stdout and 0 < frames < 1000 * 480, full.stdout
    assert sf.info(take).frames == frames and np.allclose(sf.read(take)[0], 0.25)
    assert hidden_files(tmp_path) == []
    killed = _child(["-c", RECORDER, str(tmp_path / "killed.wav"), "500", "kill"])
    assert killed.returncode == -signal.SIGKILL
    partial = list(tmp_path.glob(".killed.*.partial.wav"))
    assert len(partial) == 1 and sf.info(partial[0]).frames >= 480 * 100  # valid up to the last flush
    assert not (tmp_path / "killed.wav").exists()


# --- training ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def notes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not TIMGM.is_file():
        pytest.skip(f"SOUNDFONT MISSING: {TIMGM} (apt-get install timgm6mb-soundfont); training cases skipped")
    out = tmp_path_factory.mktemp("notes")
    subprocess.run([sys.executable, "-m", "training.data", "render", "--soundfont", str(TIMGM), "--out", str(out),
                    "--classes", "flute,tuba,violin", "--max-notes-per-class", "12", "--phrases-per-class", "0"],
                   check=True, capture_output=True, cwd=REPO)
    return out


def training_config(folder: Path, roots: list[Path], **train_settings: object) -> Path:
    config = {"name": "tiny", "data": {"roots": [str(root) for root in roots], "cache": str(folder / "cache")},
              "train": {**TINY_TRAIN, **train_settings}, "output": str(folder / "run")}
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(("setting", "expected"), [
    ({"epochs": "ten"}, "train.epochs must be a whole number, got 'ten'"),
    ({"lr": -1}, "train.lr must be above 0, got -1"),
    ({"batch_size": 0}, "train.batch_size must be at least 1, got 0"),
    ({"fitted_tilt_db": -6}, "train.fitted_tilt_db must be at least 0, got -6"),
    ({"early_temperature": "yes"}, "train.early_temperature must be true or false, got 'yes'"),
])
def test_bad_training_settings_are_one_line(notes, tmp_path, capsys, setting, expected):
    status = train.main(["--config", str(training_config(tmp_path, [notes], **setting)), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and expected in err[0], err


def test_resume_refuses_a_changed_config_and_a_damaged_checkpoint(notes, tmp_path, capsys):
    """A changed setting and a damaged file are refused in one line; a setting newer than the checkpoint,
    at its default, is not a change."""
    assert train.main(["--config", str(training_config(tmp_path, [notes])), "--no-progress"]) == 0
    capsys.readouterr()
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    kept = checkpoint.read_bytes()
    changed = training_config(tmp_path, [notes], channels=32)
    assert train.main(["--config", str(changed), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the config changed since" in err[0] and "(train.channels)" in err[0], err
    older = torch.load(checkpoint, weights_only=True)  # written before a setting existed: it ran at the default
    del older["settings"]["dynamic_range_db"]
    torch.save(older, checkpoint)
    assert train.main(["--config", str(training_config(tmp_path, [notes])), "--resume", "--no-progress"]) == 0
    capsys.readouterr()
    checkpoint.write_bytes(kept[: len(kept) // 3])
    assert train.main(["--config", str(training_config(tmp_path, [notes])), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot be read" in err[0], err


def test_nan_audio_is_named_skipped_and_never_cached(notes, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(notes, data)
    poisoned = min((data / "flute").glob("*.wav"))
    audio, rate = sf.read(poisoned)
    sf.write(poisoned, np.full_like(audio, np.nan), rate, subtype="FLOAT")
    with pytest.warns(UserWarning, match=f"{poisoned.name}: .* NaN or infinite samples"):
        status = train.main(["--config", str(training_config(tmp_path, [data])), "--no-progress"])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert status == 0 and any(poisoned.name in path for path in summary["skipped_files"])
    assert all(np.isfinite(np.load(entry)).all() for entry in (tmp_path / "cache").rglob("*.npy"))


def test_a_full_disk_while_checkpointing_is_one_line_and_leaves_no_partial_file(notes, tmp_path):
    config = training_config(tmp_path, [notes], channels=64)
    run = _child(["-m", "training.train", "--config", str(config), "--no-progress"], limit_bytes=150_000)
    lines = [line for line in run.stderr.strip().splitlines() if line.startswith("error:")]
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert len(lines) == 1 and "cannot write" in lines[0] and "is the disk full?" in lines[0], run.stderr
    assert hidden_files(tmp_path / "run") == []
