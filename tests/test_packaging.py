"""A plain (not editable) install plays the shipped presets from any directory.

The wheel is built from this checkout and installed into a fresh virtual environment that borrows the
dependencies already installed here (``--system-site-packages``, ``--no-deps``: nothing is downloaded).
The run then happens from an empty folder, so nothing can be found through the repository.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import soundfile as sf

REPO = Path(__file__).resolve().parent.parent


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("PROTOPHONE_PRESETS", "PYTHONPATH")}
    return subprocess.run([str(a) for a in args], cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=600, check=False)


def test_installed_wheel_plays_the_demo_from_any_directory(tmp_path: Path) -> None:
    wheels, venv, elsewhere = tmp_path / "wheels", tmp_path / "venv", tmp_path / "elsewhere"
    elsewhere.mkdir()
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, REPO,
                cwd=elsewhere)
    assert built.returncode == 0, built.stderr
    made = run(sys.executable, "-m", "venv", "--system-site-packages", venv, cwd=elsewhere)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    installed = run(python, "-m", "pip", "install", "--no-deps", *wheels.glob("protophone-*.whl"), cwd=elsewhere)
    assert installed.returncode == 0, installed.stderr

    origin = run(python, "-c", "import engine, presets; print(engine.__file__); print(presets.demo_file())",
                 cwd=elsewhere)
    engine_file, demo = origin.stdout.split()
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    assert Path(engine_file).is_relative_to(site) and Path(demo).is_relative_to(site), origin.stdout

    listed = run(python, "-m", "realtime.live", "--list-presets", cwd=elsewhere)
    assert listed.returncode == 0 and "violin" in listed.stdout, listed.stderr
    played = run(python, "-m", "realtime.live", "--input", "demo", "--output", "x.wav", "--json", cwd=elsewhere)
    assert played.returncode == 0, played.stderr
    summary = json.loads(played.stdout)
    assert summary["clip_label"] == "cello"
    audio, rate = sf.read(elsewhere / "x.wav")
    assert len(audio) == sf.info(demo).frames and rate == sf.info(demo).samplerate
