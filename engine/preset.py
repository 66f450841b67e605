"""Presets: a small YAML file naming a model file and the settings to play it with.

Example (``presets/violin.yaml``)::

    description: Play anything, hear a violin.
    model: orchestra.pt          # relative to this file
    mode: transfer               # identify | transfer
    target: violin
    mix: 1.0                     # 0 = dry input only, 1 = transferred sound only
    transpose: 0.0               # semitones
    register: keep               # keep | target: each phrase moved by octaves into the target's range
    gain_db: 0.0
    gate_db: -50.0               # frames quieter than this (dB re full-scale sine) are ignored
    time_constant_s: 0.25        # smoothing of the live identification
    hold_s: 0.3                  # the live readout names nothing after this long without sound
    min_confidence: 0.3          # ... nor while the leading class's probability is below this
    phase: rtpghi                # rtpghi (default) | input: phase of the transferred sound
    candidate: winner            # winner (default) | target: whose parameters drive the target prototype
    carrier: input               # input (default): your partials under the target's envelope | prototype

Files are read with ``yaml.safe_load`` and checked key by key; a bad file names the bad key.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from engine.atomic import write_text
from engine.errors import PresetError, one_line
from engine.parameters import SETTINGS, check_together, number_default, text_default
from presets import shipped_folder

MODEL_SUFFIXES = (".pt", ".ts")
PRESET_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Preset:
    """A model file plus how to play it: one field per setting of :data:`engine.parameters.SETTINGS`, with
    its default (a test keeps the two in step).  Build changed copies with :func:`with_settings`, which checks."""

    name: str
    model: Path
    description: str = ""
    mode: str = text_default("mode")
    target: str | None = None
    mix: float = number_default("mix")
    transpose: float = number_default("transpose")
    register: str = text_default("register")
    gain_db: float = number_default("gain_db")
    candidate: str = text_default("candidate")
    gate_db: float = number_default("gate_db")
    time_constant_s: float = number_default("time_constant_s")
    hold_s: float = number_default("hold_s")
    min_confidence: float = number_default("min_confidence")
    phase: str = text_default("phase")
    carrier: str = text_default("carrier")


def with_settings(preset: Preset, **changes: object) -> Preset:
    """``preset`` with ``changes`` (setting name → value), each checked against its row of
    :data:`~engine.parameters.SETTINGS`, then all together; ValueError names the first bad one."""
    unknown = sorted(set(changes) - set(SETTINGS))
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(SETTINGS)}")
    checked: dict[str, Any] = {name: SETTINGS[name].check(value) for name, value in changes.items()}
    changed = replace(preset, **checked)
    check_together(vars(changed))
    return changed


def presets_dir() -> Path:
    """Where named presets live: ``$PROTOPHONE_PRESETS`` or the installed ``presets`` package."""
    override = os.environ.get("PROTOPHONE_PRESETS")
    return Path(override) if override else shipped_folder()


def available_presets() -> list[str]:
    """Names of the presets in :func:`presets_dir`, sorted."""
    folder = presets_dir()
    if not folder.is_dir():
        return []
    return sorted(path.stem for path in folder.iterdir() if path.suffix in PRESET_SUFFIXES)


def load_preset(name_or_path: str | Path) -> Preset:
    """A preset by name, by YAML path, or a bare model file (played in identify mode)."""
    path = Path(name_or_path)
    if path.suffix in MODEL_SUFFIXES:
        if not path.is_file():
            raise PresetError(f"model file not found: {path}")
        return Preset(name=path.stem, model=path)
    if path.suffix not in PRESET_SUFFIXES:
        if len(path.parts) != 1 or str(name_or_path).startswith("."):  # a name never leaves presets_dir()
            raise PresetError(f"{str(name_or_path)!r} is neither a preset name (see --list-presets) nor a preset "
                              f"file ending in {' or '.join(PRESET_SUFFIXES)}")
        candidates = [presets_dir() / f"{name_or_path}{suffix}" for suffix in PRESET_SUFFIXES]
        path = next((c for c in candidates if c.is_file()), path)
    if not path.is_file():
        names = ", ".join(available_presets()) or "none found in " + str(presets_dir())
        raise PresetError(f"unknown preset {str(name_or_path)!r}; available presets: {names}")
    return _parse_preset(path)


def _parse_preset(path: Path) -> Preset:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as error:
        raise PresetError(f"preset {path} is not valid YAML: {one_line(error)}") from None
    if not isinstance(data, dict):
        raise PresetError(f"preset {path} must be a mapping of settings, got {type(data).__name__}")
    known = {"description", "model", *SETTINGS}
    unknown = sorted(set(data) - known)
    if unknown:
        raise PresetError(f"preset {path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if "model" not in data:
        raise PresetError(f"preset {path} must name its model file (key 'model')")
    bare = Preset(name=path.stem, model=(path.parent / str(data["model"])).resolve(),
                  description=str(data.get("description", "")))
    try:
        return with_settings(bare, **{name: value for name, value in data.items() if name in SETTINGS})
    except ValueError as error:
        raise PresetError(f"preset {path}: {error}") from None


def save_preset(preset: Preset, path: str | Path) -> Path:
    """Write ``preset`` as YAML at ``path`` (atomically), its model named relative to the file where it
    lies beside or below it; :func:`load_preset` reads back the same settings."""
    path = Path(path)
    settings = {key: value for key, value in asdict(preset).items() if key not in ("name", "model")}
    model = preset.model.resolve()
    try:
        model_name = model.relative_to(path.parent.resolve()).as_posix()
    except ValueError:
        model_name = str(model)
    text = yaml.safe_dump({"description": settings.pop("description"), "model": model_name, **settings},
                          sort_keys=False, allow_unicode=True)
    write_text(path, text)
    return path
