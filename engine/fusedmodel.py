"""The model's streaming arithmetic for one stream on the CPU, fused into numba kernels.

The TorchScript file is the model (:mod:`engine.modelfile`): its ``step`` is the reference, and it runs the
predictor on CUDA.  On one CPU thread it is the engine's largest cost: a step on one frame is ~100 small
TorchScript ops of ~5-30 us each (~0.6 ms; the predictor's whole arithmetic is 0.25 M multiply-adds).
:class:`FusedModel` does the same arithmetic, frame by frame, in one numba call per step: predictor (input
projection, causal residual blocks with their caches, head), bounded parameters, every prototype's
reconstruction error; :class:`PrototypeRenderer` renders chosen prototypes for transfer.  Both read their
numbers from :class:`FusedWeights`, which the model file carries beside its TorchScript (written when the
file is written, once the kernels' step was checked against the file's own), so a stream on the CPU runs
without importing torch (~200 MB less memory).  The step equals :meth:`engine.model.PrototypeModel.step` to
float tolerance (``tests/test_fusedmodel.py``).
"""

from __future__ import annotations

import io
import math
from dataclasses import MISSING, dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np
from numba import njit

from engine.transformation import BAND_KERNEL_SIZE, BAND_POOL, N_PARAMETERS, SHELF_SOFTPLUS_BETA

if TYPE_CHECKING:
    import torch

@njit(cache=True)
def _gelu(x: float) -> float:
    return 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0)))


@njit(cache=True)
def _transform_arguments(params: np.ndarray, warp: np.ndarray, bands: np.ndarray, linear_pitch: bool,
                         out: np.ndarray) -> None:
    """``out (rows, 3, n_mels)``: per row of bounded ``params (rows, 6)``, the arguments whose ``log1p`` the
    transform needs, so that numpy takes all of them in one vectorised pass (a third of the scalar cost).

    Band ``j`` reads the prototype at ``j + mels_per_log * log1p(w_j (1/s - 1))`` with ``warp`` ``w_j = f_j / (700
    + f_j)`` and ``s = exp(p_0)``: ``mel(f_j / s)`` on the uniform mel grid, written as an offset from ``j`` (0 at
    ``s = 1``); linear pitch reads ``j / s`` and needs no argument (0).  Each shelf is ``softplus`` at
    :data:`SHELF_SOFTPLUS_BETA` of a line in the band position ``u``: ``log1p(exp(beta x)) / beta`` with
    ``exp(beta x)`` a per-row factor times a per-band one (``bands`` rows 3 and 4).  Above torch's threshold
    (``beta x > 20``) torch returns ``x`` itself; ``log1p`` differs from it by under ``1e-9 / beta``.
    """
    n = bands.shape[1]
    for r in range(params.shape[0]):
        p = params[r]
        stretch = 0.0 if linear_pitch else math.expm1(-p[0])
        low_factor = math.exp(SHELF_SOFTPLUS_BETA * (1.0 - 2.0 * p[2]))  # exp(beta x_low) = low_factor exp(-2 beta u)
        high_factor = math.exp(SHELF_SOFTPLUS_BETA * (2.0 * p[4] - 1.0))
        for j in range(n):
            out[r, 0, j] = warp[j] * stretch
            out[r, 1, j] = low_factor * bands[3, j]
            out[r, 2, j] = high_factor * bands[4, j]


@njit(cache=True)
def _transform_logged(prototype: np.ndarray, body: np.ndarray, p: np.ndarray, logged: np.ndarray,
                      mels_per_log: float, linear_pitch: bool, out: np.ndarray) -> None:
    """One prototype transposed, level-shifted and shelved by its bounded parameters ``p`` (6,), plus its
    ``body`` (untransposed), into ``out``; ``logged (3, n_mels)``: ``log1p`` of :func:`_transform_arguments`."""
    n = prototype.shape[0]
    scale = math.exp(p[0])
    for j in range(n):
        position = j / scale if linear_pitch else j + logged[0, j] * mels_per_log
        position = min(max(position, 0.0), n - 1.0)
        lower = min(math.floor(position), n - 2.0)
        weight = position - lower
        index = int(lower)
        warped = prototype[index] * (1.0 - weight) + prototype[index + 1] * weight
        low, high = logged[1, j] / SHELF_SOFTPLUS_BETA, logged[2, j] / SHELF_SOFTPLUS_BETA
        out[j] = warped + p[1] + p[3] * low + p[5] * high + body[j]


@njit(cache=True)
def _band_taps(rows: np.ndarray, kernel: int, out: np.ndarray) -> None:
    """``out (channels * kernel, n)``: each band's ``kernel`` neighbours of every row of ``rows (channels, n)``,
    zero past the edges (``Conv1d``'s padding of ``kernel // 2``), so a convolution along the bands is one
    matrix product."""
    channels, n = rows.shape
    half = kernel // 2
    out[:] = 0.0
    for c in range(channels):
        for k in range(kernel):
            shift = k - half
            for j in range(max(0, -shift), min(n, n - shift)):
                out[c * kernel + k, j] = rows[c, j + shift]


@njit(cache=True)
def _band_features(frame: np.ndarray, in_w: np.ndarray, in_b: np.ndarray, out_w: np.ndarray, out_b: np.ndarray,
                   pool: int, features: np.ndarray) -> None:
    """``features``: the frame, then its band convolution (two layers, GELU after each, max over ``pool``
    bands), as :meth:`engine.model.TransformationPredictor._features`.  ``in_w (channels, kernel)``, ``out_w
    (channels, channels * kernel)``: each layer's weights flattened as :func:`_band_taps` lays out its taps."""
    n = frame.shape[0]
    channels = in_w.shape[0]
    features[:n] = frame
    if channels == 0:
        return
    kernel = in_w.shape[1]
    taps = np.empty((kernel, n), dtype=frame.dtype)
    _band_taps(frame.reshape(1, n), kernel, taps)
    hidden = in_w @ taps
    for c in range(channels):
        for j in range(n):
            hidden[c, j] = _gelu(hidden[c, j] + in_b[c])
    wide = np.empty((channels * kernel, n), dtype=frame.dtype)
    _band_taps(hidden, kernel, wide)
    second = out_w @ wide
    pooled = n // pool
    for c in range(channels):
        for i in range(pooled):
            largest = -np.inf
            for j in range(i * pool, (i + 1) * pool):
                largest = max(largest, _gelu(second[c, j] + out_b[c]))
            features[n + c * pooled + i] = largest


@njit(cache=True)
def _step(frames: np.ndarray, dynamic_range: float, band_in_w: np.ndarray, band_in_b: np.ndarray,
          band_out_w: np.ndarray, band_out_b: np.ndarray, input_w: np.ndarray, input_b: np.ndarray,
          conv_w: np.ndarray, conv_b: np.ndarray, norm_w: np.ndarray, norm_b: np.ndarray,
          dilations: np.ndarray, caches: np.ndarray, head_w: np.ndarray, head_b: np.ndarray,
          scales: np.ndarray, params: np.ndarray, floored: np.ndarray) -> None:
    """Every frame in turn: the floor, the predictor (its band convolution, its caches rolled in place) and the
    bounded parameters into ``params (n, K, 6)``; the floored frames into ``floored``.  ``conv_w (blocks, out,
    kernel * in)`` holds each block's taps side by side, oldest first, so a block is one matrix-vector product."""
    n_frames, n_mels = frames.shape
    n_blocks, channels = conv_w.shape[0], conv_w.shape[1]
    kernel = conv_w.shape[2] // channels
    taps = np.empty(kernel * channels, dtype=caches.dtype)
    features = np.empty(input_w.shape[1], dtype=frames.dtype)
    for t in range(n_frames):
        loudest = frames[t].max()
        for j in range(n_mels):
            floored[t, j] = max(frames[t, j], loudest - dynamic_range) if dynamic_range > 0.0 else frames[t, j]
        _band_features(floored[t], band_in_w, band_in_b, band_out_w, band_out_b, BAND_POOL, features)
        h = input_w @ features + input_b
        for b in range(n_blocks):
            context = (kernel - 1) * dilations[b]
            cache = caches[b]  # rows 0..context: this block's inputs t - context .. t
            for r in range(context):
                cache[r] = cache[r + 1]
            cache[context] = h
            for k in range(kernel):
                taps[k * channels:(k + 1) * channels] = cache[k * dilations[b]]
            convolved = conv_w[b] @ taps + conv_b[b]
            mean = convolved.mean()
            inv = 1.0 / math.sqrt(((convolved - mean) ** 2).mean() + 1e-5)
            for c in range(channels):
                h[c] += _gelu((convolved[c] - mean) * inv * norm_w[b, c] + norm_b[b, c])
        raw = head_w @ h + head_b
        for o in range(raw.shape[0]):
            k, q = divmod(o, N_PARAMETERS)
            params[t, k, q] = math.tanh(raw[o]) * scales[q]


@njit(cache=True)
def _fit(targets: np.ndarray, params: np.ndarray, prototypes: np.ndarray, bodies: np.ndarray, logged: np.ndarray,
         mels_per_log: float, linear_pitch: bool, fitted_gain: bool, max_tilt: float, tilt: np.ndarray,
         errors: np.ndarray) -> None:
    """``errors (m, K)``: mean squared difference of each transformed prototype from its target frame; with
    ``fitted_gain`` after the level that fits best (the difference's mean), which is added to the gain in
    ``params``, and with ``max_tilt`` after the multiple of the line ``tilt`` that fits best, at most
    ``max_tilt`` (as :func:`engine.model.residual_errors`).  ``logged (m * K, 3, n_mels)`` as
    :func:`_transform_logged` reads it, row ``t * K + k``."""
    n_prototypes, n = prototypes.shape
    rendered = np.empty(n, dtype=np.float64)
    tilt_norm = np.sum(tilt * tilt)
    for t in range(targets.shape[0]):
        for k in range(n_prototypes):
            _transform_logged(prototypes[k], bodies[k], params[t, k], logged[t * n_prototypes + k], mels_per_log,
                              linear_pitch, rendered)
            level, slope = 0.0, 0.0
            if fitted_gain:
                for j in range(n):
                    level += targets[t, j] - rendered[j]
                level /= n
                params[t, k, 1] += level
            if max_tilt > 0.0:
                for j in range(n):
                    slope += (targets[t, j] - rendered[j]) * tilt[j]
                slope = min(max(slope / tilt_norm, -max_tilt), max_tilt)
            total = 0.0
            for j in range(n):
                total += (targets[t, j] - rendered[j] - level - slope * tilt[j]) ** 2
            errors[t, k] = total / n


@njit(cache=True)
def _render(indices: np.ndarray, params: np.ndarray, prototypes: np.ndarray, bodies: np.ndarray, logged: np.ndarray,
            mels_per_log: float, linear_pitch: bool, out: np.ndarray) -> None:
    for t in range(indices.shape[0]):
        _transform_logged(prototypes[indices[t]], bodies[indices[t]], params[t], logged[t], mels_per_log,
                          linear_pitch, out[t])


@dataclass(frozen=True, eq=False)
class FusedWeights:
    """Every number the fused kernels read: the predictor's weights, each parameter's bound, the prototypes and
    their bodies, the bands' factors of the transform, and the identification's temperature.

    ``conv_w (blocks, channels, kernel * channels)`` holds each block's taps side by side, oldest first, so a
    block is one matrix-vector product; ``bands (5, n_mels)``: each band's centre f, log(700 + f) (which the
    transform read before 2026-12-04, still written so that older engines read newer files), position u,
    exp(-2 beta u) and exp(2 beta u) (:func:`_transform_arguments`).  Checked for consistent shapes and finite
    values when built, so a damaged file is refused before any audio.
    """

    input_w: np.ndarray
    input_b: np.ndarray
    conv_w: np.ndarray
    conv_b: np.ndarray
    norm_w: np.ndarray
    norm_b: np.ndarray
    dilations: np.ndarray
    head_w: np.ndarray
    head_b: np.ndarray
    scales: np.ndarray
    prototypes: np.ndarray
    bodies: np.ndarray
    bands: np.ndarray
    dynamic_range: float
    mels_per_log: float
    linear_pitch: bool
    temperature: float
    fitted_gain: bool = False
    max_tilt: float = 0.0
    band_in_w: np.ndarray = field(default_factory=lambda: np.zeros((0, BAND_KERNEL_SIZE)))
    band_in_b: np.ndarray = field(default_factory=lambda: np.zeros(0))
    band_out_w: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    band_out_b: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        if (self.input_w.ndim != 2 or self.conv_w.ndim != 3 or self.prototypes.ndim != 2
                or self.band_in_w.ndim != 2 or self.band_out_w.ndim != 2):
            raise ValueError("the fused weights have arrays of the wrong rank")
        channels, n_mels = self.input_w.shape[0], self.prototypes.shape[1]
        blocks, n_prototypes = len(self.dilations), len(self.prototypes)
        kernel = self.conv_w.shape[2] // max(channels, 1)
        band_channels, band_kernel = self.band_in_w.shape
        expected = {"input_w": (channels, n_mels + band_channels * (n_mels // BAND_POOL)),
                    "band_in_b": (band_channels,), "band_out_w": (band_channels, band_channels * band_kernel),
                    "band_out_b": (band_channels,),
                    "input_b": (channels,), "conv_w": (blocks, channels, kernel * channels),
                    "conv_b": (blocks, channels), "norm_w": (blocks, channels), "norm_b": (blocks, channels),
                    "dilations": (blocks,), "head_w": (n_prototypes * N_PARAMETERS, channels),
                    "head_b": (n_prototypes * N_PARAMETERS,), "scales": (N_PARAMETERS,),
                    "prototypes": (n_prototypes, n_mels), "bodies": (n_prototypes, n_mels), "bands": (5, n_mels)}
        wrong = [name for name, shape in expected.items() if getattr(self, name).shape != shape]
        if wrong or kernel < 1 or not n_prototypes or (self.dilations < 1).any():
            raise ValueError(f"the fused weights' shapes disagree ({', '.join(wrong) or 'kernel or dilations'})")
        arrays = [value for value in vars(self).values() if isinstance(value, np.ndarray)]
        scalars = (self.dynamic_range, self.mels_per_log, self.temperature, self.max_tilt)
        if not (all(np.isfinite(a).all() for a in arrays) and np.isfinite(scalars).all()):
            raise ValueError("the fused weights hold values that are not finite")

    @property
    def n_prototypes(self) -> int:
        return len(self.prototypes)

    @property
    def n_mels(self) -> int:
        return self.prototypes.shape[1]

    @classmethod
    def from_module(cls, module: torch.jit.ScriptModule) -> FusedWeights:
        """The numbers of a scripted :class:`engine.model.PrototypeModel` (or the eager one: the same attributes;
        any device): what a model file writes beside its TorchScript.  KeyError or AttributeError where the
        module is not one."""
        from engine.model import prototype_bodies, scripted_dilations  # torch: only where a module is at hand

        def numbers(tensor: torch.Tensor) -> np.ndarray:
            return tensor.detach().cpu().numpy().astype(np.float64)

        state = {name: numbers(value) for name, value in module.state_dict().items()}
        dilations = scripted_dilations(module)
        names = [f"predictor.blocks.{index}" for index in range(len(dilations))]
        conv = np.stack([state[f"{name}.conv.conv.weight"] for name in names])  # (blocks, out, in, kernel)
        centres, u = numbers(module.band_centres), numbers(module.band_position)
        beta = SHELF_SOFTPLUS_BETA
        return cls(
            input_w=state["predictor.input.weight"], input_b=state["predictor.input.bias"],
            conv_w=np.ascontiguousarray(conv.transpose(0, 1, 3, 2).reshape(*conv.shape[:2], -1)),
            conv_b=np.stack([state[f"{name}.conv.conv.bias"] for name in names]),
            norm_w=np.stack([state[f"{name}.norm.weight"] for name in names]),
            norm_b=np.stack([state[f"{name}.norm.bias"] for name in names]),
            dilations=np.array(dilations, dtype=np.int64),
            head_w=state["predictor.head.weight"], head_b=state["predictor.head.bias"],
            scales=state["bounds"] * state["enabled"],
            prototypes=numbers(module.prototypes), bodies=numbers(prototype_bodies(module)),
            bands=np.stack([centres, np.log(700.0 + centres), u, np.exp(-2.0 * beta * u), np.exp(2.0 * beta * u)]),
            # model files written before the frame floor existed have no such attribute: their floor is off
            dynamic_range=float(getattr(module, "dynamic_range", 0.0)),
            mels_per_log=float(module.mels_per_log), linear_pitch=bool(module.linear_pitch),
            temperature=float(module.temperature().detach()),
            fitted_gain=bool(getattr(module, "fitted_gain", False)),  # none: written before it, not fitted
            max_tilt=float(getattr(module, "max_tilt", 0.0)),  # likewise
            **cls._band_weights(state),
        )

    @staticmethod
    def _band_weights(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The predictor's band convolution (``predictor.bands``: Conv1d, GELU, Conv1d, GELU, MaxPool1d), each
        layer's weights flattened as :func:`_band_taps` lays out its taps; none (the defaults) without one."""
        if "predictor.bands.0.weight" not in state:
            return {}
        first, second = state["predictor.bands.0.weight"], state["predictor.bands.2.weight"]
        return {"band_in_w": first[:, 0, :], "band_in_b": state["predictor.bands.0.bias"],
                "band_out_w": second.reshape(second.shape[0], -1), "band_out_b": state["predictor.bands.2.bias"]}

    def to_bytes(self) -> bytes:
        """A compressed ``.npz`` archive of every number (no pickles: :meth:`from_bytes` refuses them); arrays
        that came from float32 tensors (all but the bands' factors) are stored as float32, exactly."""
        def compact(value: object) -> np.ndarray:
            array = np.asarray(value)
            single = array.astype(np.float32) if array.dtype == np.float64 else array
            return single if np.array_equal(single, array) else array

        arrays: dict[str, Any] = {name: compact(value) for name, value in vars(self).items()}
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> FusedWeights:
        """Read :meth:`to_bytes`'s archive; ValueError for a damaged or incomplete one."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                stored = {name: archive[name] for name in archive.files}
            numbers: dict[str, Any] = {}
            for f in fields(cls):  # arrays back in the kernels' types, scalars as Python numbers
                written_before = f.default is not MISSING or f.default_factory is not MISSING
                if f.name not in stored and written_before:  # written before the field existed: its default
                    continue
                value = stored[f.name]
                array_type = np.int64 if f.name == "dilations" else np.float64
                numbers[f.name] = value.astype(array_type) if f.type == "np.ndarray" else value.item()
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"the fused weights are damaged ({error.__class__.__name__})") from None
        return cls(**numbers)


class PrototypeRenderer:
    """The model's prototypes and their transform (:meth:`PrototypeModel.transform`) in numba: every
    prototype's error against a frame, or one chosen prototype per frame rendered for transfer.  The transform's
    logarithms are taken by numpy over all rows at once (:func:`_transform_arguments`): vectorised, they cost a
    third of the scalar ones that were most of the fit's time."""

    def __init__(self, weights: FusedWeights) -> None:
        self.n_mels = weights.n_mels
        self._prototypes, self._bodies = weights.prototypes, weights.bodies
        centres = weights.bands[0]
        self._arguments = (centres / (700.0 + centres), weights.bands, weights.linear_pitch)
        self._pitch = (weights.mels_per_log, weights.linear_pitch)
        self.fitted_gain = weights.fitted_gain
        self._tilt = (weights.max_tilt, np.linspace(-0.5, 0.5, self.n_mels))  # the line: made once, not per step
        self.render(np.zeros(1, dtype=np.int64), np.zeros((1, 6)))  # compile now, not in the first audio callback

    def _logged(self, params: np.ndarray) -> np.ndarray:
        """``log1p`` of the transform's arguments for each row of ``params (..., 6)``: ``(rows, 3, n_mels)``."""
        rows = params.reshape(-1, params.shape[-1])
        logged = np.empty((len(rows), 3, self.n_mels))
        _transform_arguments(rows, *self._arguments, logged)
        return np.log1p(logged, out=logged)

    def fit(self, targets: np.ndarray, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(params, e (m, K))``: every prototype transformed by ``params (m, K, 6)`` against its frame of
        ``targets (m, n_mels)``, the gains fitted where the model fits them, as :meth:`PrototypeModel.fit`."""
        fitted = np.array(params, dtype=np.float64)
        errors = np.empty(params.shape[:2])
        _fit(targets, fitted, self._prototypes, self._bodies, self._logged(fitted), *self._pitch, self.fitted_gain,
             *self._tilt, errors)
        return fitted, errors

    def render(self, prototypes: np.ndarray, params: np.ndarray) -> np.ndarray:
        """Frame ``t``'s prototype ``prototypes[t]`` transformed by ``params[t] (6,)``: ``(m, n_mels)``."""
        params = np.ascontiguousarray(params, dtype=np.float64)
        out = np.empty((len(prototypes), self.n_mels))
        _render(np.asarray(prototypes, dtype=np.int64), params, self._prototypes, self._bodies, self._logged(params),
                *self._pitch, out)
        return out.astype(np.float32)  # float32 as the TorchScript module gives, whichever path ran


class FusedModel:
    """:meth:`PrototypeModel.step` for one stream, in numba on the CPU.

    Built from a model's :class:`FusedWeights`; holds its own stream state (the blocks' caches and the
    look-ahead queue), so it runs beside the TorchScript module, when one is loaded, without touching it.
    """

    def __init__(self, weights: FusedWeights, lookahead: int) -> None:
        self.weights = weights
        self.n_prototypes, self.n_mels = weights.n_prototypes, weights.n_mels
        self.lookahead = lookahead
        self.renderer = PrototypeRenderer(weights)
        # The predictor runs in float32, as the TorchScript module does: its weights (0.9 MB so) are read from
        # memory every frame, and in float64 they took twice the cache the rest of a frame's work evicts them
        # from (measured in the engine: the predictor 237 against 182 us a frame).
        self._predictor = tuple(np.ascontiguousarray(array, dtype=np.float32) for array in (
            weights.band_in_w, weights.band_in_b, weights.band_out_w, weights.band_out_b,
            weights.input_w, weights.input_b, weights.conv_w, weights.conv_b, weights.norm_w, weights.norm_b))
        self._head = tuple(np.ascontiguousarray(array, dtype=np.float32) for array in (weights.head_w, weights.head_b))
        kernel = weights.conv_w.shape[2] // weights.conv_w.shape[1]
        self._caches = np.zeros((len(weights.dilations), (kernel - 1) * int(weights.dilations.max()) + 1,
                                 weights.conv_w.shape[1]), dtype=np.float32)
        self.reset()
        self.step(np.zeros((1, self.n_mels)))  # compile (or load the cache) now, not in the first audio callback
        self.reset()

    def reset(self) -> None:
        """Forget the stream, as :meth:`PrototypeModel.reset`."""
        self._caches[:] = 0.0
        self._pending = np.zeros((self.lookahead, self.n_mels))
        self._frames_seen = 0

    def step(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The next frames ``(n, n_mels)`` → ``(params (m, K, 6), errors (m, K))`` of the frames now decided,
        as :meth:`PrototypeModel.step` (the predictor in float32 as there, the errors in float64; returned in
        float32)."""
        w = self.weights
        frames = np.ascontiguousarray(frames, dtype=np.float32)
        n = len(frames)
        params = np.empty((n, self.n_prototypes, N_PARAMETERS))
        floored = np.empty_like(frames)
        band_in_w, band_in_b, band_out_w, band_out_b, input_w, input_b, conv_w, conv_b, norm_w, norm_b = self._predictor
        head_w, head_b = self._head
        _step(frames, w.dynamic_range, band_in_w, band_in_b, band_out_w, band_out_b, input_w, input_b, conv_w, conv_b,
              norm_w, norm_b, w.dilations, self._caches, head_w, head_b, w.scales, params, floored)
        targets = floored.astype(np.float64)
        if self.lookahead:  # params of the newest frames belong to the frames ``lookahead`` behind them
            history = np.concatenate([self._pending, targets])
            targets, self._pending = history[:n], history[n:]
            skip = min(max(self.lookahead - self._frames_seen, 0), n)
            self._frames_seen += n
            params, targets = params[skip:], targets[skip:]
        params, errors = self.renderer.fit(targets, params)
        return params.astype(np.float32), errors.astype(np.float32)
