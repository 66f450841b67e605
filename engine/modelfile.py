"""One file per model: the TorchScript module plus the metadata needed to run it without training code.

The metadata travels inside the TorchScript archive (``protophone.json``), so a model file cannot be
separated from its sample rate, framing, class names and prototype-to-class map.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import torch

from engine.atomic import replacing
from engine.config import AnalysisConfig
from engine.errors import ModelFileError

METADATA_NAME = "protophone.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelMetadata:
    """What a host needs to know about a model file.

    ``reference_pitch`` is each prototype's pitch as a MIDI number (``None`` where unknown): timbre transfer
    maps the input's absolute pitch onto the target prototype with it.  ``class_ranges`` is each class's
    playing range, ``(low, high)`` MIDI (the 5th and 95th percentile of its training notes; ``None`` where
    they had no pitch), which ``register: target`` moves a transfer into; empty in files written before it.
    """

    sample_rate: int
    n_fft: int
    hop: int
    n_mels: int
    class_names: tuple[str, ...]
    prototype_classes: tuple[int, ...]
    reference_pitch: tuple[float | None, ...]
    lookahead: int = 0
    class_ranges: tuple[tuple[float, float] | None, ...] = ()
    pitch_mode: str = "hz"
    f_min: float = 0.0
    f_max: float = 0.0
    extra: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "hop", "n_mels", "lookahead"):
            if not isinstance(getattr(self, name), int):
                raise ValueError(f"{name} must be a whole number, got {getattr(self, name)!r}")
        n_classes = len(self.class_names)
        if not n_classes:
            raise ValueError("a model needs at least one class name")
        if any(not 0 <= c < n_classes for c in self.prototype_classes):
            raise ValueError(f"prototype_classes must index class_names (0..{n_classes - 1})")
        if len(self.reference_pitch) != len(self.prototype_classes):
            raise ValueError("reference_pitch needs one entry per prototype")
        if self.class_ranges and len(self.class_ranges) != n_classes:
            raise ValueError("class_ranges needs one entry per class (or none at all)")
        if any(r is not None and not (len(r) == 2 and r[0] <= r[1]) for r in self.class_ranges):
            raise ValueError("each of class_ranges must be null or [low, high] with low <= high")
        if self.analysis.n_mels > self.analysis.n_bins:  # building the analysis also checks its own values
            raise ValueError(f"n_mels ({self.n_mels}) must not exceed the {self.analysis.n_bins} bins "
                             f"of n_fft {self.n_fft}")
        if self.lookahead < 0:
            raise ValueError(f"lookahead must be a whole number of frames >= 0, got {self.lookahead!r}")

    @property
    def analysis(self) -> AnalysisConfig:
        return AnalysisConfig(self.sample_rate, self.n_fft, self.hop, self.n_mels, self.f_min, self.f_max)

    def class_range(self, name: str) -> tuple[float, float] | None:
        """The playing range of class ``name`` (MIDI), or None where the file does not know it."""
        return self.class_ranges[self.class_names.index(name)] if self.class_ranges else None

    @property
    def n_prototypes(self) -> int:
        return len(self.prototype_classes)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> ModelMetadata:
        data = json.loads(text)
        missing = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
                   and f.name not in data]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        for key in ("class_names", "prototype_classes", "reference_pitch"):
            data[key] = tuple(data[key])
        data["class_ranges"] = tuple(None if r is None else tuple(r) for r in data.get("class_ranges", ()))
        return cls(**data)


@dataclass(frozen=True)
class LoadedModel:
    """A scripted model ready to run, its metadata, and the device it lives on."""

    module: torch.jit.ScriptModule
    metadata: ModelMetadata
    device: torch.device


@contextmanager
def quiet_torchscript() -> Iterator[None]:
    """Keep torch.jit's deprecation warnings (script/save/load) away from users: TorchScript is the chosen
    portable format here, and the warning offers nothing they can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit")
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=DeprecationWarning)
        yield


def save_model(model: torch.nn.Module, metadata: ModelMetadata, path: str | Path) -> Path:
    """Script ``model`` and write it with ``metadata`` to ``path`` atomically (no half-written file)."""
    if getattr(model, "n_prototypes", metadata.n_prototypes) != metadata.n_prototypes:
        raise ValueError(f"model has {model.n_prototypes} prototypes, metadata describes {metadata.n_prototypes}")
    path = Path(path)
    was_training = model.training
    model.eval()
    with quiet_torchscript(), replacing(path) as temporary:
        torch.jit.save(torch.jit.script(model.cpu()), str(temporary),
                       _extra_files={METADATA_NAME: metadata.to_json()})
    model.train(was_training)
    return path


def save_metadata(source: LoadedModel, metadata: ModelMetadata, path: str | Path) -> Path:
    """Write ``source``'s module as it is (its own TorchScript code and weights) with new ``metadata``, atomically:
    what a file learns without being written by this engine's code (a playing range, say)."""
    path = Path(path)
    if metadata.n_prototypes != source.metadata.n_prototypes or metadata.n_mels != source.metadata.n_mels:
        raise ValueError("new metadata must describe the same prototypes and bands as the module")
    with quiet_torchscript(), replacing(path) as temporary:
        torch.jit.save(source.module, str(temporary), _extra_files={METADATA_NAME: metadata.to_json()})
    return path


def torch_device(device: str | torch.device) -> torch.device:
    """``"cuda"`` when asked for and present; a clear error when asked for and absent."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelFileError("device 'cuda' was requested but no CUDA GPU is available; use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise ModelFileError(f"unsupported device {device.type!r}; use 'cpu' or 'cuda'")
    return device


def read_metadata(path: str | Path) -> ModelMetadata:
    """A model file's metadata without loading its network (quick: for listings); ModelFileError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith(f"/extra/{METADATA_NAME}"))
            return ModelMetadata.from_json(archive.read(name).decode("utf-8"))
    except (OSError, zipfile.BadZipFile, StopIteration, UnicodeDecodeError) as error:
        raise ModelFileError(f"{path} is not a Protophone model file ({error.__class__.__name__})") from None
    except (ValueError, TypeError, KeyError) as error:
        raise ModelFileError(f"{path} has invalid metadata: {error}") from None


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a model file written by :func:`save_model`; raise :class:`ModelFileError` with a reason."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    device = torch_device(device)
    extra = {METADATA_NAME: ""}
    try:
        with quiet_torchscript():
            module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except Exception as error:  # noqa: BLE001 - torch raises many types for a damaged archive
        raise ModelFileError(f"{path} is not a readable TorchScript model ({error.__class__.__name__}); "
                             "export it again from training, or pick another preset") from None
    if not extra[METADATA_NAME]:
        raise ModelFileError(f"{path} is a TorchScript file without Protophone metadata; export it with training")
    try:
        metadata = ModelMetadata.from_json(extra[METADATA_NAME])
    except (ValueError, TypeError, KeyError) as error:
        raise ModelFileError(f"{path} has invalid metadata: {error}") from None
    if metadata.format_version != FORMAT_VERSION:
        raise ModelFileError(f"{path} has model format {metadata.format_version}; this engine reads {FORMAT_VERSION}")
    if (int(module.n_prototypes), int(module.n_mels), int(module.lookahead)) != (
            metadata.n_prototypes, metadata.n_mels, metadata.lookahead):
        raise ModelFileError(f"{path}: the module and its metadata disagree on the number of prototypes, bands "
                             "or look-ahead frames; export it again from training")
    module.eval()
    return LoadedModel(module, metadata, device)
