"""A plain (not editable) install plays the shipped presets from any directory.

The wheel is built from a copy of the files git tracks (an in-tree build would reuse a stale ``build/``)
and installed into a fresh virtual environment that borrows the dependencies already installed here
(``--system-site-packages``, ``--no-deps``: nothing is downloaded).  The run then happens from an empty
folder, and every package must come from the venv: the development install's finder would otherwise
quietly fill in whatever the wheel lacks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "realtime", "training", "benchmarks", "presets")


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("PROTOPHONE_PRESETS", "PYTHONPATH")}
    return subprocess.run([str(a) for a in args], cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=600, check=False)


def test_installed_wheel_plays_the_demo_from_any_directory(tmp_path: Path) -> None:
    source, wheels, venv, elsewhere = (tmp_path / name for name in ("source", "wheels", "venv", "elsewhere"))
    elsewhere.mkdir()
    tracked = run("git", "-C", REPO, "ls-files", cwd=elsewhere)
    assert tracked.returncode == 0, tracked.stderr
    for name in tracked.stdout.splitlines():
        if (REPO / name).is_file():  # a tracked file deleted in the working tree is not part of it
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, source,
                cwd=elsewhere)
    assert built.returncode == 0, built.stderr
    made = run(sys.executable, "-m", "venv", "--system-site-packages", venv, cwd=elsewhere)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    installed = run(python, "-m", "pip", "install", "--no-deps", *wheels.glob("protophone-*.whl"), cwd=elsewhere)
    assert installed.returncode == 0, installed.stderr

    where = "; ".join(f"import {p}; print({p}.__file__)" for p in (*PACKAGES, "realtime.live", "training.train"))
    origin = run(python, "-c", f"{where}; import presets; print(presets.demo_file())", cwd=elsewhere)
    assert origin.returncode == 0, origin.stderr
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    found = [Path(line) for line in origin.stdout.split()]
    assert all(path.is_relative_to(site) for path in found), origin.stdout
    demo = found[-1]

    listed = run(python, "-m", "realtime.live", "--list-presets", cwd=elsewhere)
    assert listed.returncode == 0 and "violin" in listed.stdout, listed.stderr
    played = run(python, "-m", "realtime.live", "--input", "demo", "--output", "x.wav", "--json", cwd=elsewhere)
    assert played.returncode == 0, played.stderr
    summary = json.loads(played.stdout)
    assert summary["clip_label"] == "cello"
    audio, rate = sf.read(elsewhere / "x.wav")
    assert len(audio) == sf.info(demo).frames and rate == sf.info(demo).samplerate
