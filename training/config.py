"""Training run configuration: a YAML file, read with ``safe_load`` and checked key by key.

    name: orchestra
    data:
      roots: [data/FluidR3_GM]        # dataset folders (any layout training.layouts understands)
      layout: auto
      split: item                     # item (held-out notes of each library) | library (leave one out)
                                      # | chapter (whole chapters of each speaker: the LibriSpeech layout)
      test_fraction: 0.2
      test_library: null              # with split: library
      split_file: runs/orchestra/split.csv
      unheard_by: null                # a split file: use only its test side (a judge for the model it trained)
      cache: data/cache               # log-mel feature cache
      validation_fraction: 0.1        # held-out training notes that pick the best epoch (0: last epoch)
    analysis: {sample_rate: 44100, n_fft: 2048, hop: 512, n_mels: 128}
    train: {mode: supervised, prototypes_per_class: 2, epochs: 60, ...}   # training.trainer.TrainSettings
    augment: {level_db: 24, reverb_probability: 0.5, ...}  # the recording chain, training.chain.ChainSettings
    output: runs/orchestra            # checkpoint, log.csv, model.pt, summary.json
    export: presets/orchestra.pt      # optional: where the engine model file also goes

Relative paths are relative to the current directory (run from the repository root).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from engine.config import AnalysisConfig
from engine.errors import one_line
from training.chain import ChainSettings
from training.trainer import TrainSettings


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class DataSettings:
    roots: tuple[Path, ...]
    layout: str = "auto"
    split: str = "item"
    test_fraction: float = 0.2
    test_library: str | None = None
    split_file: Path | None = None
    #: Another run's split file: only the items on its test side are split and used here, so a judge trained
    #: on them shares no data with the model trained on its train side.
    unheard_by: Path | None = None
    cache: Path = Path("data/cache")
    n_speakers: int = 128
    seed: int = 0
    validation_fraction: float = 0.0


@dataclass(frozen=True)
class RunConfig:
    name: str
    data: DataSettings
    analysis: AnalysisConfig
    train: TrainSettings
    output: Path
    augment: ChainSettings = field(default_factory=ChainSettings)
    export: Path | None = None
    source: Path = field(default=Path("."))


def _section(raw: dict, key: str, cls: type, path: Path) -> dict:
    section = raw.get(key, {}) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: '{key}' must be a mapping")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) in '{key}': {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    for setting in fields(cls):
        if setting.name in section and not _fits(section[setting.name], setting.default):
            raise ConfigError(f"{path}: {key}.{setting.name} must be {_KINDS[type(setting.default)]}, got "
                              f"{section[setting.name]!r}")
    return section


#: How a setting's default's type is named in an error; settings whose default is of another type (None,
#: a path) are checked by their own class.
_KINDS = {bool: "true or false", int: "a whole number", float: "a number", str: "a word", tuple: "a list"}


def _fits(value: object, default: object) -> bool:
    """Whether ``value`` has the kind of ``default`` (a whole number passes for a number; a bool for neither)."""
    kind = type(default)
    if kind not in _KINDS:
        return True
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, list if kind is tuple else kind)


def load_config(path: str | Path) -> RunConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not valid YAML: {one_line(error)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping of settings")
    unknown = sorted(set(raw) - {"name", "data", "analysis", "train", "augment", "output", "export"})
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s): {', '.join(unknown)}")
    try:
        data = _section(raw, "data", DataSettings, path)
        if not data.get("roots"):
            raise ConfigError(f"{path}: data.roots must list at least one dataset folder")
        roots = data["roots"] if isinstance(data["roots"], list) else [data["roots"]]
        data_settings = DataSettings(**{
            **data, "roots": tuple(Path(r) for r in roots),
            "split_file": Path(data["split_file"]) if data.get("split_file") else None,
            "unheard_by": Path(data["unheard_by"]) if data.get("unheard_by") else None,
            "cache": Path(data.get("cache", "data/cache")),
        })
        if data_settings.split not in ("item", "library", "chapter"):
            raise ConfigError(f"{path}: data.split must be 'item', 'library' or 'chapter', got {data_settings.split!r}")
        if data_settings.split == "library" and not data_settings.test_library:
            raise ConfigError(f"{path}: data.split 'library' needs data.test_library")
        analysis = AnalysisConfig(**_section(raw, "analysis", AnalysisConfig, path))
        if not 0.0 <= data_settings.validation_fraction < 1.0:
            raise ConfigError(f"{path}: data.validation_fraction must be at least 0 and below 1, "
                              f"got {data_settings.validation_fraction}")
        train = TrainSettings(**_section(raw, "train", TrainSettings, path))
        augment = ChainSettings(**_section(raw, "augment", ChainSettings, path))
    except (TypeError, ValueError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"{path}: {error}") from None
    name = str(raw.get("name", path.stem))
    return RunConfig(
        name=name, data=data_settings, analysis=analysis, train=train, augment=augment,
        output=Path(raw.get("output", f"runs/{name}")),
        export=Path(raw["export"]) if raw.get("export") else None, source=path,
    )
