"""The shipped presets, their model files and the demo clip, installed as package data.

Found through the installed package (not the repository's folder), so a plain ``pip install .`` plays
the presets from any directory.  ``training.rebuild`` rebuilds the model files; see README.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

#: The demo phrase (a cello, FluidR3_GM) that ``python -m realtime.live --input demo`` plays.
DEMO_NAME = "demo.flac"


def shipped_folder() -> Path:
    """The folder that holds the shipped presets (a real folder: the package is installed unzipped)."""
    return Path(str(files(__name__)))


def demo_file() -> Path:
    """The shipped demo clip."""
    return shipped_folder() / DEMO_NAME
