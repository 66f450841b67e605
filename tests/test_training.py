"""Training end to end on a tiny dataset rendered from the TimGM6mb sample library.

Three instruments, a few notes each, tiny model settings: a supervised model must separate them well
above chance, a killed run must resume to exactly the state of an uninterrupted one, a corrupt file in
the data must be named and skipped, and the run must work under torchrun (DDP, gloo, 2 processes).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from second_attempt import retry_if_disturbed

from engine.config import AnalysisConfig
from engine.modelfile import load_model, load_streaming_model
from training.config import load_config
from training.evaluate import evaluate
from training.train import load_split, training_clips
from training.train import main as train_main
from training.trainer import Trainer, TrainSettings, draw_weights

TIMGM = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
CLASSES = "flute,tuba,violin"
TINY_TRAIN = {"prototypes_per_class": 1, "channels": 16, "dilations": [1, 2], "epochs": 24, "batch_size": 16,
              "crop_frames": 24, "scored_frames": 8, "batches_per_epoch": 8, "patience": 1,
              "warmup_batches": 10, "lr": 0.003}


NEEDS_CUDA = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA GPU on this machine: training on CUDA is not run")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    rendered = os.environ.get("PROTOPHONE_TINY_DATASET")
    if rendered:  # the same command's output, rendered on another machine (a GPU machine without FluidSynth)
        return Path(rendered)
    if not TIMGM.is_file():
        pytest.skip(f"SOUNDFONT MISSING: {TIMGM} (apt-get install timgm6mb-soundfont); training tests skipped")
    out = tmp_path_factory.mktemp("tiny-orchestra")
    command = [sys.executable, "-m", "training.data", "render", "--soundfont", str(TIMGM), "--out", str(out),
               "--classes", CLASSES, "--max-notes-per-class", "30", "--phrases-per-class", "0", "--seed", "3"]
    subprocess.run(command, check=True, capture_output=True)
    return out


def _config(folder: Path, dataset: Path, data: dict | None = None, augment: dict | None = None, **train) -> Path:
    config = {"name": "tiny", "data": {"roots": [str(dataset)], "cache": str(folder / "cache"), **(data or {})},
              "train": {**TINY_TRAIN, **train}, "output": str(folder / "run")}
    if augment is not None:
        config["augment"] = augment
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_supervised_model_separates_three_instruments(dataset, tmp_path):
    config = _config(tmp_path, dataset)
    assert train_main(["--config", str(config), "--no-progress"]) == 0
    run = tmp_path / "run"
    log = (run / "log.csv").read_text().splitlines()
    assert len(log) == 1 + TINY_TRAIN["epochs"]
    result = evaluate(str(run / "model.pt"), dataset, run / "split.csv", cache=tmp_path / "cache", progress=False)
    assert result["clips"] >= 6
    # chance is 33 %.  Over seeds 1-8 these settings (30 notes per class, 24 epochs) scored 83-94 % on the
    # 18 test clips; 16 notes and 12 epochs dipped to 67 % on 9 clips (another machine acts like a seed).
    assert result["OA"] > 70.0, result
    assert set(result["streaming"]) == {"after_0.25s", "after_1s"}
    for live in result["streaming"].values():  # a clip the readout names nothing for counts as wrong
        named = 1.0 - live["undecided"] / 100.0
        assert live["OA"] == pytest.approx((live["OA of named"] or 0.0) * named)
    # the readout's threshold moves the live figures only: none names every sounding clip, the highest fewer
    loose, strict = (evaluate(str(run / "model.pt"), dataset, run / "split.csv", cache=tmp_path / "cache",
                              progress=False, min_confidence=value) for value in (0.0, 0.99))
    assert loose["OA"] == strict["OA"] == result["OA"]
    assert loose["streaming"]["after_1s"]["undecided"] == 0.0
    assert strict["streaming"]["after_1s"]["undecided"] > result["streaming"]["after_1s"]["undecided"]
    # the file a stream on the CPU reads without torch: it carries the fused kernels' numbers
    assert load_streaming_model(run / "model.pt").module is None
    # each class's playing range (register: target) is that of its training notes
    metadata = load_model(run / "model.pt").metadata
    train = load_split(load_config(config))["train"]
    for name, playing_range in zip(metadata.class_names, metadata.class_ranges, strict=True):
        notes = [item.midi for item in train if item.label == name]
        assert playing_range == pytest.approx(tuple(np.percentile(notes, [5, 95])), abs=0.05), name


def _trainer(config_path: Path) -> Trainer:
    config = load_config(config_path)
    clips = training_clips(config, load_split(config), progress=False)
    names = sorted(set(clips.labels))
    labels = np.array([names.index(label) for label in clips.labels])
    return Trainer(config.train, config.analysis.band_centres_hz, clips.features, labels, len(names), config.output)


class _Killed(Exception):
    pass


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_resume_after_a_kill_equals_an_uninterrupted_run(dataset, tmp_path, schedule):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    settings = {"epochs": 6, "max_stage_epochs": 1, "finetune_schedule": schedule}  # killed in the last stage
    uninterrupted = _trainer(_config(tmp_path / "a", dataset, **settings))
    uninterrupted.initialise()
    uninterrupted.fit(progress=False)

    killed = _trainer(_config(tmp_path / "b", dataset, **settings))
    killed.initialise()

    def kill_after_fifth_epoch(row: dict) -> None:
        if row["epoch"] == 5:
            raise _Killed

    with pytest.raises(_Killed):
        killed.fit(progress=False, on_epoch=kill_after_fifth_epoch)
    resumed = _trainer(_config(tmp_path / "b", dataset, **settings))
    resumed.load_checkpoint()
    resumed.truncate_log()
    assert resumed.state.epoch == 5
    resumed.fit(progress=False)

    for name, value in uninterrupted.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=0, atol=0, msg=name)
    assert uninterrupted.state == resumed.state
    assert (tmp_path / "a/run/log.csv").read_text().count("\n") == (tmp_path / "b/run/log.csv").read_text().count("\n")


def test_cosine_finetune_falls_from_its_scale_to_zero(dataset, tmp_path):
    settings = {"epochs": 8, "max_stage_epochs": 1, "finetune_lr_scale": 0.5, "finetune_schedule": "cosine"}
    trainer = _trainer(_config(tmp_path, dataset, **settings))
    trainer.initialise()
    rates: list[tuple[str, float]] = []
    step = trainer.optimizer.step

    def recording_step(*args, **kwargs):
        rates.append((trainer.stage_name, trainer.optimizer.param_groups[0]["lr"]))  # the prototypes' group
        return step(*args, **kwargs)

    trainer.optimizer.step = recording_step  # type: ignore[method-assign]
    trainer.fit(progress=False)
    finetune = [rate for stage, rate in rates if stage == "finetune"]
    assert trainer.state.finetune_start == 4  # one epoch in each of the four stages before it
    assert len(finetune) == 4 * TINY_TRAIN["batches_per_epoch"]
    assert finetune[0] == pytest.approx(0.5 * TINY_TRAIN["lr"])
    assert all(later < earlier for earlier, later in pairwise(finetune))
    assert finetune[-1] < 0.01 * TINY_TRAIN["lr"]
    assert all(rate == TINY_TRAIN["lr"] for stage, rate in rates if stage == "prototypes")


def test_initial_weights_follow_the_seed_not_the_global_generator(dataset, tmp_path):
    """Two processes with the same config must start from the same predictor (session 3 found the seed
    set after the model was built: runs diverged once the predictor started learning)."""
    config = _config(tmp_path, dataset)
    weights = []
    for draws in (1, 1000):
        torch.rand(draws)
        weights.append(_trainer(config).model.state_dict())
    for name, value in weights[0].items():
        torch.testing.assert_close(weights[1][name], value, rtol=0, atol=0, msg=name)


def test_corrupt_audio_is_named_and_skipped(dataset, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(dataset, data)
    broken = data / "flute" / "broken.wav"
    broken.write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio")
    config = _config(tmp_path, data, epochs=1, batches_per_epoch=2)
    with pytest.warns(UserWarning, match="broken.wav"):
        assert train_main(["--config", str(config), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    if any("broken.wav" in path for path in summary["skipped_files"]):
        assert "skipped 1 unreadable file" in capsys.readouterr().err
    else:  # the split drew the broken file into the test side: the evaluation must skip it instead
        result = evaluate(str(tmp_path / "run" / "model.pt"), data, tmp_path / "run" / "split.csv",
                          cache=tmp_path / "cache", progress=False)
        assert any("broken.wav" in line for line in result["skipped"])


def test_existing_run_needs_resume_and_bad_config_is_one_line(dataset, tmp_path, capsys):
    config = _config(tmp_path, dataset, epochs=1, batches_per_epoch=1)
    assert train_main(["--config", str(config), "--no-progress"]) == 0
    assert train_main(["--config", str(config), "--no-progress"]) == 2
    assert "--resume" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {roots: [x]}\ntrain: {learning_rate: 1}\n")
    assert train_main(["--config", str(bad)]) == 2
    assert "unknown key(s) in 'train': learning_rate" in capsys.readouterr().err
    bad.write_text("data: {roots: [x]}\ntrain: {lookahead: 31}\n")
    assert train_main(["--config", str(bad)]) == 2
    assert "train.lookahead must be 0 to 30 frames" in capsys.readouterr().err


@NEEDS_CUDA
def test_training_on_cuda_separates_three_instruments_and_writes_the_same_model_file(dataset, tmp_path):
    config = _config(tmp_path, dataset)
    assert train_main(["--config", str(config), "--no-progress", "--device", "cuda"]) == 0
    run = tmp_path / "run"
    assert json.loads((run / "summary.json").read_text())["device"] == "cuda"
    result = evaluate(str(run / "model.pt"), dataset, run / "split.csv", cache=tmp_path / "cache", progress=False)
    assert result["OA"] > 70.0, result  # the CPU test's bar (test_supervised_model_separates_three_instruments)
    assert load_streaming_model(run / "model.pt").fused_step  # a stream on the CPU reads it without torch


def test_training_on_cuda_is_refused_in_one_line_without_a_gpu_or_under_torchrun(tmp_path, capsys, monkeypatch):
    config = tmp_path / "absent.yaml"  # the device is checked first: no config is read
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert train_main(["--config", str(config), "--device", "cuda"]) == 2
    assert "run it without torchrun" in capsys.readouterr().err
    monkeypatch.delenv("WORLD_SIZE")
    if torch.cuda.is_available():
        return
    assert train_main(["--config", str(config), "--device", "cuda"]) == 2
    assert capsys.readouterr().err.strip() == ("error: device 'cuda' was requested but no CUDA GPU is available; "
                                               "use --device cpu")


def _torchrun(config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "training.train", "--config", str(config), "--no-progress"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )


def _rank_errors(stderr: str) -> str:
    """torchrun's own summary (the tail) names only the signal; the ranks' messages come earlier."""
    pattern = re.compile(r"rror|terminate|what\(\)|Fatal|[Aa]bort|Exception")
    lines = [line for line in stderr.splitlines() if pattern.search(line)]
    return "error lines from the ranks:\n" + "\n".join(lines[:40]) + "\n--- head of stderr ---\n" + stderr[:3000]


def test_torchrun_ddp_with_two_cpu_processes(dataset, tmp_path):
    """Two gloo processes train and export together.

    One CI run (session 1) saw rank 1 killed by SIGABRT with nothing of its own in the log; 16 local runs
    never did.  A rank killed by a signal is therefore retried once, loudly (a warning carrying the
    ranks' messages, see second_attempt.py); a Python error in a rank, or a second crash, fails the test.
    """
    config = _config(tmp_path, dataset, epochs=2, batches_per_epoch=2)

    def attempt() -> subprocess.CompletedProcess:
        shutil.rmtree(tmp_path / "run", ignore_errors=True)
        return _torchrun(config)

    def killed_by_signal(result: subprocess.CompletedProcess) -> str | None:
        if result.returncode != 0 and re.search(r"exitcode\s*:\s*-\d+", result.stderr):
            return "torchrun: a rank was killed by a signal. " + _rank_errors(result.stderr)
        return None

    result = retry_if_disturbed(attempt, killed_by_signal)
    if result.returncode != 0:
        pytest.fail("torchrun failed; " + _rank_errors(result.stderr))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["epochs"] == 2
    assert (tmp_path / "run" / "model.pt").is_file()


def test_baselines_train_on_the_same_split_and_evaluate_with_the_same_command(dataset, tmp_path):
    from training.train_baselines import main as baselines_main

    config = _config(tmp_path, dataset)
    assert baselines_main(["--config", str(config), "--cnn-epochs", "3", "--ae-epochs", "1", "--no-progress"]) == 0
    run = tmp_path / "run"
    assert (run / "split.csv").is_file()
    for name, kind in (("cnn.pt", "cnn"), ("autoencoder-kmeans.pt", "autoencoder+kmeans")):
        result = evaluate(str(run / name), dataset, run / "split.csv", cache=tmp_path / "cache", progress=False)
        assert result["kind"] == kind and result["clips"] >= 6
        assert 0.0 <= result["OA"] <= 100.0 and len(result["confusion"]) == 3


def test_validation_keeps_the_best_epoch_and_the_chain_trains(dataset, tmp_path):
    """Held-out training notes, scored every ``validate_every`` epochs and after the last, choose the exported
    epoch; a recording chain runs inside training; a predictor with a band convolution trains and its file runs
    fused."""
    chain = {"level_db": 24, "tilt_db_per_octave": 3, "resonances": 2, "lowpass_probability": 0.3,
             "reverb_probability": 0.5, "noise_probability": 0.5}
    config = _config(tmp_path, dataset, data={"validation_fraction": 0.2}, augment=chain, epochs=6, band_channels=2,
                     validate_every=4)
    assert train_main(["--config", str(config), "--no-progress"]) == 0
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["validation_clips"] >= 3 and summary["augment"]["level_db"] == 24
    rows = (run / "log.csv").read_text().splitlines()[1:]
    scores = {int(r.split(",")[0]): float(r.split(",")[-1]) for r in rows if r.split(",")[-1]}
    assert set(scores) == {4, 6}  # every fourth epoch and the last
    assert summary["best_validation_oa"] == max(scores.values())
    assert summary["best_epoch"] == min(e for e, oa in scores.items() if oa == max(scores.values()))
    split = load_split(load_config(config))
    held = {item.path for item in split["validation"]}
    assert held and not held & {item.path for item in split["train"]}  # never trained on
    best = torch.load(run / "best.pt", weights_only=True)["prototypes"]
    assert torch.equal(load_model(run / "model.pt").module.prototypes.detach(), best)
    assert load_streaming_model(run / "model.pt").weights.band_in_w.shape[0] == 2


def test_augment_section_errors_name_the_key(dataset, tmp_path, capsys):
    config = _config(tmp_path, dataset, augment={"reverb_probability": 2})
    assert train_main(["--config", str(config), "--no-progress"]) == 2
    assert "augment.reverb_probability" in capsys.readouterr().err
    config = _config(tmp_path, dataset, augment={"echo": 1})
    assert train_main(["--config", str(config), "--no-progress"]) == 2
    assert "unknown key(s) in 'augment': echo" in capsys.readouterr().err


def test_balanced_sources_draw_every_class_and_library_pair_equally():
    """``train.balance: sources``: each class equally, each of its libraries equally within it, whatever the
    number of notes; ``clips`` keeps the uniform draw (None: the old generator calls, so old runs reproduce)."""
    labels = np.array([0] * 30 + [0] * 3 + [1] * 5 + [2] * 12)
    libraries = ["big"] * 30 + ["small"] * 3 + ["big"] * 5 + ["small"] * 12
    weights = draw_weights(labels, libraries, "sources")
    assert weights.sum() == pytest.approx(1.0)
    shares = {(int(c), lib): weights[(labels == c) & (np.array(libraries) == lib)].sum()
              for c, lib in {(int(c), lib) for c, lib in zip(labels, libraries, strict=True)}}
    assert shares == pytest.approx({(0, "big"): 1 / 6, (0, "small"): 1 / 6, (1, "big"): 1 / 3, (2, "small"): 1 / 3})
    assert draw_weights(labels, libraries, "clips") is None
    with pytest.raises(ValueError, match=r"^train\.balance must be one of clips, sources, got 'classes'$"):
        TrainSettings(balance="classes")


def test_a_predictor_needs_at_least_one_block():
    with pytest.raises(ValueError, match=r"^train\.dilations must list one dilation \(1 or more\) per block"):
        TrainSettings(dilations=())


def test_rebuild_trains_side_by_side_and_a_reused_split_waits_for_the_run_that_writes_it(dataset, tmp_path, capsys):
    """``training.rebuild`` trains one config per core: the config reusing another's split starts only once
    that run has finished (and so trains on its split), and a failing run stops what waits for it, not the
    others, and is named at the end with where its output is."""
    import threading

    from training.rebuild import PORTABLE_KERNELS, RebuildError, train_all

    for folder in "abcd":
        (tmp_path / folder).mkdir()
    writer = _config(tmp_path / "a", dataset, epochs=2)
    reuser = _config(tmp_path / "b", dataset, data={"split_file": str(tmp_path / "a/run/split.csv")}, epochs=2)
    broken = _config(tmp_path / "c", dataset, data={"roots": [str(tmp_path / "no-such-library")]}, epochs=2)
    stranded = _config(tmp_path / "d", dataset, data={"split_file": str(tmp_path / "c/run/split.csv")}, epochs=2)
    raised: list[Exception] = []

    def rebuild() -> None:
        try:
            train_all((reuser, stranded, broken, writer), sorted(os.sched_getaffinity(0))[:2])
        except RebuildError as error:
            raised.append(error)

    watched = threading.Thread(target=rebuild, daemon=True)
    watched.start()
    watched.join(timeout=900)  # a scheduler that waits forever fails here instead of hanging the suite
    assert not watched.is_alive(), "train_all did not return"
    assert len(raised) == 1, "a failed run must be raised"
    message = str(raised[0])
    assert f"{broken} failed" in message and "c/run.log" in message and f"{stranded} not trained" in message
    printed = capsys.readouterr().out
    assert printed.index(f"{writer}: trained") < printed.index(f"training {reuser}"), printed
    assert f"{reuser}: trained" in printed and f"training {stranded}" not in printed
    rebuild_kernels = _kernels_under(os.environ | PORTABLE_KERNELS)
    for folder in "ab":
        assert (tmp_path / folder / "run/model.pt").is_file()
        assert "trained tiny: 2 epochs" in (tmp_path / folder / "run.log").read_text()
        assert json.loads((tmp_path / folder / "run/summary.json").read_text())["kernels"] == rebuild_kernels
    assert not (tmp_path / "b/run/split.csv").exists()  # it trained on the writer's split
    assert "no-such-library" in (tmp_path / "c/run.log").read_text()


def _kernels_under(environment: dict[str, str]) -> str:
    """The vector kernels torch picks on this CPU in a process started with ``environment``."""
    probe = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    return subprocess.run([sys.executable, "-c", probe], env=environment, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_the_two_orchestra_models_draw_the_same_split_so_the_rebuild_starts_them_together(dataset, tmp_path):
    """The shipped low-latency model holds out exactly the shipped orchestra model's notes (their held-out
    figures compare), by drawing its split the same way rather than reading the other run's file: two configs
    with the same data settings and other analyses write the same split, and no shipped run waits for another."""
    from training.rebuild import SHIPPED_CONFIGS, split_sources

    shipped = {config.stem: load_config(config) for config in SHIPPED_CONFIGS}
    orchestra, lowlatency = shipped["orchestra"], shipped["orchestra-lowlatency"]
    assert orchestra.data == lowlatency.data and orchestra.analysis != lowlatency.analysis
    assert set(split_sources(SHIPPED_CONFIGS).values()) == {None}
    splits = []
    for folder, analysis in (("a", None), ("b", {"sample_rate": 44100, "n_fft": 1024, "hop": 256, "n_mels": 128})):
        (tmp_path / folder).mkdir()
        config = load_config(_config(tmp_path / folder, dataset, data={"validation_fraction": 0.2}))
        if analysis is not None:
            config = replace(config, analysis=AnalysisConfig(**analysis))
        load_split(config)
        splits.append(sorted((config.output / "split.csv").read_text().splitlines()))
    assert splits[0] == splits[1] and len(splits[0]) > 10


def test_rebuild_holds_every_cpu_to_the_same_kernels():
    """A rebuild's runs compute with AVX2 kernels even on a CPU that has wider ones (this project's machines
    have had AVX2 and AVX-512), as the machine that trained the shipped files did: measured, a rebuild on
    AVX-512 kernels trained other weights, held at AVX2 exactly the shipped ones."""
    from training.rebuild import PORTABLE_KERNELS

    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    if not re.search(r"\bavx2\b", flags):
        pytest.skip("SKIPPED LOUDLY: this CPU has no AVX2, so it computes with its own kernels either way")
    assert _kernels_under(os.environ | PORTABLE_KERNELS) == "AVX2"


def test_rebuild_refuses_splits_that_wait_on_one_another_and_lets_a_run_reuse_its_own(dataset, tmp_path):
    from training.rebuild import RebuildError, split_sources, train_all

    for folder in "abc":
        (tmp_path / folder).mkdir()
    first = _config(tmp_path / "a", dataset, data={"split_file": str(tmp_path / "b/run/split.csv")})
    second = _config(tmp_path / "b", dataset, data={"split_file": str(tmp_path / "a/run/split.csv")})
    own = _config(tmp_path / "c", dataset, data={"split_file": str(tmp_path / "c/run/split.csv")})
    assert split_sources((first, second, own)) == {first: second, second: first, own: None}
    with pytest.raises(RebuildError, match="wait on one another"):
        train_all((first, second), [0])
    assert not (tmp_path / "a/run").exists() and not (tmp_path / "b/run").exists()  # nothing started
