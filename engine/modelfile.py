"""One file per model: the TorchScript module plus the metadata needed to run it without training code.

The metadata travels inside the TorchScript archive (``protophone.json``), so a model file cannot be
separated from its sample rate, framing, class names and prototype-to-class map.  So do the fused kernels'
numbers (``fused.npz``, :class:`engine.fusedmodel.FusedWeights`), written only once the kernels' step was
checked against the module's: a stream on the CPU reads them and never imports torch
(:func:`load_streaming_model`); whoever loads the module checks them against it again.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.atomic import replacing
from engine.config import AnalysisConfig
from engine.errors import ModelFileError
from engine.fusedmodel import FusedModel, FusedWeights

if TYPE_CHECKING:
    import torch

METADATA_NAME = "protophone.json"
FUSED_NAME = "fused.npz"
#: Largest difference from the module's own step accepted when the fused kernels are checked (float32: ~1e-6).
CHECK_TOLERANCE = 1e-4
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


class FusedModelWarning(UserWarning):
    """A model file whose step the fused kernels do not reproduce: its own TorchScript step runs instead."""


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to run: its metadata, the device (``"cpu"``, ``"cuda"``), the fused kernels' numbers
    (``weights``; None where the module's cannot be read) and whether the kernels may run its step
    (``fused_step``: on the CPU, checked).  ``module`` is the TorchScript module, None when the file was read
    without torch (:func:`load_streaming_model`)."""

    module: torch.jit.ScriptModule | None
    metadata: ModelMetadata
    device: str
    weights: FusedWeights | None = None
    fused_step: bool = False

    def __post_init__(self) -> None:
        if (self.module is None and not self.fused_step) or (self.fused_step and self.weights is None):
            raise ValueError("a model without its module must run the fused step, which needs its weights")

    @property
    def temperature(self) -> float:
        """The identification's softmax temperature (:meth:`engine.model.PrototypeModel.temperature`)."""
        if self.weights is not None:
            return self.weights.temperature
        return float(self.scripted.temperature().detach())

    @property
    def scripted(self) -> torch.jit.ScriptModule:
        """The TorchScript module; RuntimeError for a model read without it."""
        if self.module is None:
            raise RuntimeError("this model was read without its TorchScript module: load it with load_model")
        return self.module

    def script_step(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The TorchScript module's step on ``frames`` on the model's device, as numpy: the reference the fused
        step is held to, and the step on CUDA."""
        return _module_step(self.scripted, frames)

    def reset_script(self) -> None:
        """Forget the TorchScript module's stream (its caches and look-ahead queue)."""
        _reset_module(self.scripted)


def _module_step(module: torch.jit.ScriptModule, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A TorchScript module's step on ``frames``, on the device its weights live on, as numpy."""
    import torch

    with torch.no_grad():
        inputs = torch.from_numpy(np.asarray(frames, dtype=np.float32)).to(module.prototypes.device)
        params, errors = module.step(inputs)
    return params.cpu().numpy(), errors.cpu().numpy()


def _reset_module(module: torch.jit.ScriptModule) -> None:
    import torch

    with torch.no_grad():
        module.reset()


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
    import torch

    path = Path(path)
    was_training = model.training
    model.eval()
    with quiet_torchscript(), replacing(path) as temporary:
        scripted = torch.jit.script(model.cpu())
        torch.jit.save(scripted, str(temporary), _extra_files=_extra_files(scripted, metadata))
    model.train(was_training)
    return path


def save_metadata(source: LoadedModel, metadata: ModelMetadata, path: str | Path) -> Path:
    """Write ``source``'s module as it is (its own TorchScript code and weights) with new ``metadata``, atomically:
    what a file learns without being written by this engine's code (a playing range, say)."""
    path = Path(path)
    if metadata.n_prototypes != source.metadata.n_prototypes or metadata.n_mels != source.metadata.n_mels:
        raise ValueError("new metadata must describe the same prototypes and bands as the module")
    import torch

    with quiet_torchscript(), replacing(path) as temporary:
        torch.jit.save(source.scripted, str(temporary), _extra_files=_extra_files(source.scripted, metadata))
    return path


def _extra_files(module: torch.jit.ScriptModule, metadata: ModelMetadata) -> dict[str, str | bytes]:
    """What a model file carries beside its module: the metadata, and the fused kernels' numbers where the
    kernels reproduce the module's step (a warning otherwise: the file then runs its own step)."""
    extra: dict[str, str | bytes] = {METADATA_NAME: metadata.to_json()}
    weights, disagreement = _checked_weights(module, None, metadata.lookahead)
    if weights is not None and disagreement is None:
        extra[FUSED_NAME] = weights.to_bytes()
    return extra


def _checked_weights(module: torch.jit.ScriptModule, weights: FusedWeights | None,
                     lookahead: int) -> tuple[FusedWeights | None, str | None]:
    """``weights`` (read from the module when None) and why the fused kernels do not reproduce the module's
    step on a few frames of noise (None when they do), with a :class:`FusedModelWarning` then.  The module's
    stream is reset after."""
    try:
        weights = weights or FusedWeights.from_module(module)
        frames = np.random.default_rng(0).uniform(0.0, 0.7, (lookahead + 8, weights.n_mels))
        _reset_module(module)
        try:
            expected = _module_step(module, frames)
        finally:
            _reset_module(module)
        got = FusedModel(weights, lookahead).step(frames)
        agrees = all(a.shape == b.shape and np.allclose(a, b, rtol=0.0, atol=CHECK_TOLERANCE)
                     for a, b in zip(expected, got, strict=True))
        disagreement = None if agrees else f"its step differs from the fused kernels' by more than {CHECK_TOLERANCE}"
    except (KeyError, IndexError, AttributeError, ValueError, RuntimeError) as error:
        disagreement = f"{error.__class__.__name__}: {str(error).splitlines()[0][:100] if str(error) else ''}"
    if disagreement is not None:
        warnings.warn(f"this model file runs its own TorchScript step ({disagreement}); the engine is slower "
                      "with it", FusedModelWarning, stacklevel=3)
    return weights, disagreement


def torch_device(device: str | torch.device) -> str:
    """``"cuda"`` when asked for and present; a clear error when asked for and absent."""
    import torch

    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelFileError("device 'cuda' was requested but no CUDA GPU is available; use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise ModelFileError(f"unsupported device {device.type!r}; use 'cpu' or 'cuda'")
    return str(device)


def read_metadata(path: str | Path) -> ModelMetadata:
    """A model file's metadata without loading its network (quick: for listings); ModelFileError otherwise."""
    return _read_entries(Path(path))[0]


def _read_entries(path: Path) -> tuple[ModelMetadata, FusedWeights | None]:
    """A model file's metadata and fused kernels' numbers (None where it has none), read from its archive without
    torch; :class:`ModelFileError` naming what is wrong."""
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            entry = next((n for n in names if n.endswith(f"/extra/{METADATA_NAME}")), None)
            text = None if entry is None else archive.read(entry).decode("utf-8")
            fused = next((n for n in names if n.endswith(f"/extra/{FUSED_NAME}")), None)
            data = None if fused is None else archive.read(fused)
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError) as error:
        raise ModelFileError(f"{path} is not a Protophone model file ({error.__class__.__name__}); export it "
                             "again from training, or pick another preset") from None
    if text is None:
        raise ModelFileError(f"{path} is an archive without Protophone metadata; export it with training")
    try:
        metadata = ModelMetadata.from_json(text)
    except (ValueError, TypeError, KeyError) as error:
        raise ModelFileError(f"{path} has invalid metadata: {error}") from None
    if metadata.format_version != FORMAT_VERSION:
        raise ModelFileError(f"{path} has model format {metadata.format_version}; this engine reads {FORMAT_VERSION}")
    if data is None:
        return metadata, None
    try:
        weights = FusedWeights.from_bytes(data)
    except ValueError as error:
        raise ModelFileError(f"{path}: {error}; export it again from training") from None
    if (weights.n_prototypes, weights.n_mels) != (metadata.n_prototypes, metadata.n_mels):
        raise ModelFileError(f"{path}: the fused weights and the metadata disagree on the number of prototypes or "
                             "bands; export it again from training")
    return metadata, weights


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a model file written by :func:`save_model`, its TorchScript module included, and check the fused
    kernels against its step; raise :class:`ModelFileError` with a reason."""
    path = Path(path)
    metadata, weights = _read_entries(path)
    device = torch_device(device)
    import torch

    try:
        with quiet_torchscript():
            module = torch.jit.load(str(path), map_location=device)
    except Exception as error:  # noqa: BLE001 - torch raises many types for a damaged archive
        raise ModelFileError(f"{path} is not a readable TorchScript model ({error.__class__.__name__}); "
                             "export it again from training, or pick another preset") from None
    if (int(module.n_prototypes), int(module.n_mels), int(module.lookahead)) != (
            metadata.n_prototypes, metadata.n_mels, metadata.lookahead):
        raise ModelFileError(f"{path}: the module and its metadata disagree on the number of prototypes, bands "
                             "or look-ahead frames; export it again from training")
    module.eval()
    weights, disagreement = _checked_weights(module, weights, metadata.lookahead)
    return LoadedModel(module, metadata, device, weights, fused_step=disagreement is None and device == "cpu")


def load_streaming_model(path: str | Path, device: str = "cpu") -> LoadedModel:
    """The model as a stream runs it.  On the CPU a file that carries the fused kernels' numbers is read without
    torch (they were checked against its step when it was written): ~200 MB less memory and a quicker start
    for every live and file run.  Otherwise (CUDA, or a file written before them) :func:`load_model`."""
    if device == "cpu":
        metadata, weights = _read_entries(Path(path))
        if weights is not None:
            return LoadedModel(None, metadata, "cpu", weights, fused_step=True)
    return load_model(path, device)
