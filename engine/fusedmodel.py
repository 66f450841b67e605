"""The model's streaming arithmetic for one stream on the CPU, fused into numba kernels.

The TorchScript file is the model (:mod:`engine.modelfile`): its ``step`` is the reference, and it runs the
predictor on CUDA.  On one CPU thread it is the engine's largest cost: a step on one frame is ~100 small
TorchScript ops of ~5-30 us each (~0.6 ms; the predictor's whole arithmetic is 0.25 M multiply-adds).
:class:`FusedModel` reads the same weights and does the same arithmetic, frame by frame, in one numba call
per step: predictor (input projection, causal residual blocks with their caches, head), bounded
parameters, every prototype's reconstruction error; and renders chosen prototypes for transfer.  It
equals :meth:`engine.model.PrototypeModel.step` to float tolerance (``tests/test_fusedmodel.py``).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from numba import njit

from engine.model import N_PARAMETERS, SHELF_SOFTPLUS_BETA, prototype_bodies, scripted_dilations
from engine.modelfile import LoadedModel

SOFTPLUS_THRESHOLD = 20.0  # torch's: above it softplus(x) is x


@njit(cache=True)
def _gelu(x: float) -> float:
    return 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0)))


@njit(cache=True)
def _softplus(x: float, scaled_exp: float) -> float:
    """``softplus(x)`` at :data:`SHELF_SOFTPLUS_BETA` given ``exp(beta * x)``, torch's threshold included."""
    return x if scaled_exp > math.exp(SOFTPLUS_THRESHOLD) else math.log1p(scaled_exp) / SHELF_SOFTPLUS_BETA


@njit(cache=True)
def _transform(prototype: np.ndarray, body: np.ndarray, p: np.ndarray, bands: np.ndarray, mels_per_log: float,
               linear_pitch: bool, out: np.ndarray) -> None:
    """One prototype transposed, level-shifted and shelved by its bounded parameters ``p`` (6,), plus its
    ``body`` (untransposed), into ``out``.

    ``bands (5, n_mels)``: centre f, log(700 + f), position u, exp(-2 beta u), exp(2 beta u) — the
    per-band factors of the pitch warp and of each shelf's ``exp(beta x)``, so a band costs one log and
    two log1p (the errors of every prototype, every frame, are most of the fused step's time).
    """
    n = prototype.shape[0]
    scale = math.exp(p[0])
    log_scale = p[0]
    low_factor = math.exp(SHELF_SOFTPLUS_BETA * (1.0 - 2.0 * p[2]))  # exp(beta x_low) = low_factor * exp(-2 beta u)
    high_factor = math.exp(SHELF_SOFTPLUS_BETA * (2.0 * p[4] - 1.0))
    for j in range(n):
        if linear_pitch:
            position = j / scale
        else:  # j + log((700 s + f) / (s (700 + f))) * mels_per_log, exactly j at s = 1
            position = j + (math.log(700.0 * scale + bands[0, j]) - log_scale - bands[1, j]) * mels_per_log
        position = min(max(position, 0.0), n - 1.0)
        lower = min(math.floor(position), n - 2.0)
        weight = position - lower
        index = int(lower)
        warped = prototype[index] * (1.0 - weight) + prototype[index + 1] * weight
        u = bands[2, j]
        low = _softplus(-2.0 * (u - 0.5 + p[2]), low_factor * bands[3, j])
        high = _softplus(2.0 * (u - 0.5 + p[4]), high_factor * bands[4, j])
        out[j] = warped + p[1] + p[3] * low + p[5] * high + body[j]


@njit(cache=True)
def _step(frames: np.ndarray, dynamic_range: float, input_w: np.ndarray, input_b: np.ndarray,
          conv_w: np.ndarray, conv_b: np.ndarray, norm_w: np.ndarray, norm_b: np.ndarray,
          dilations: np.ndarray, caches: np.ndarray, head_w: np.ndarray, head_b: np.ndarray,
          scales: np.ndarray, params: np.ndarray, floored: np.ndarray) -> None:
    """Every frame in turn: the floor, the predictor (its caches rolled in place) and the bounded parameters
    into ``params (n, K, 6)``; the floored frames into ``floored``.  ``conv_w (blocks, out, kernel * in)``
    holds each block's taps side by side, oldest first, so a block is one matrix-vector product."""
    n_frames, n_mels = frames.shape
    n_blocks, channels = conv_w.shape[0], conv_w.shape[1]
    kernel = conv_w.shape[2] // channels
    taps = np.empty(kernel * channels)
    for t in range(n_frames):
        loudest = frames[t].max()
        for j in range(n_mels):
            floored[t, j] = max(frames[t, j], loudest - dynamic_range) if dynamic_range > 0.0 else frames[t, j]
        h = input_w @ floored[t] + input_b
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
def _errors(targets: np.ndarray, params: np.ndarray, prototypes: np.ndarray, bodies: np.ndarray, bands: np.ndarray,
            mels_per_log: float, linear_pitch: bool, errors: np.ndarray) -> None:
    """``errors (m, K)``: mean squared difference of each transformed prototype from its target frame."""
    rendered = np.empty(prototypes.shape[1], dtype=np.float64)
    for t in range(targets.shape[0]):
        for k in range(prototypes.shape[0]):
            _transform(prototypes[k], bodies[k], params[t, k], bands, mels_per_log, linear_pitch, rendered)
            total = 0.0
            for j in range(rendered.shape[0]):
                total += (targets[t, j] - rendered[j]) ** 2
            errors[t, k] = total / rendered.shape[0]


@njit(cache=True)
def _render(indices: np.ndarray, params: np.ndarray, prototypes: np.ndarray, bodies: np.ndarray, bands: np.ndarray,
            mels_per_log: float, linear_pitch: bool, out: np.ndarray) -> None:
    for t in range(indices.shape[0]):
        _transform(prototypes[indices[t]], bodies[indices[t]], params[t], bands, mels_per_log, linear_pitch, out[t])


class PrototypeRenderer:
    """The model's prototypes and their transform (:meth:`PrototypeModel.transform`) in numba: every
    prototype's error against a frame, or one chosen prototype per frame rendered for transfer."""

    def __init__(self, model: LoadedModel) -> None:
        module = model.module
        self.n_mels = model.metadata.n_mels
        self._prototypes = module.prototypes.detach().cpu().numpy().astype(np.float64)
        self._bodies = prototype_bodies(module).detach().cpu().numpy().astype(np.float64)
        centres = module.band_centres.cpu().numpy().astype(np.float64)
        u = module.band_position.cpu().numpy().astype(np.float64)
        bands = np.stack([centres, np.log(700.0 + centres), u, np.exp(-2.0 * SHELF_SOFTPLUS_BETA * u),
                          np.exp(2.0 * SHELF_SOFTPLUS_BETA * u)])
        self._bands = (bands, float(module.mels_per_log), bool(module.linear_pitch))
        self.render(np.zeros(1, dtype=np.int64), np.zeros((1, 6)))  # compile now, not in the first audio callback

    def errors(self, targets: np.ndarray, params: np.ndarray) -> np.ndarray:
        """``e (m, K)``: mean squared error of every prototype transformed by ``params (m, K, 6)`` against
        its frame of ``targets (m, n_mels)``, as :meth:`PrototypeModel.errors`."""
        errors = np.empty(params.shape[:2])
        _errors(targets, params, self._prototypes, self._bodies, *self._bands, errors)
        return errors

    def render(self, prototypes: np.ndarray, params: np.ndarray) -> np.ndarray:
        """Frame ``t``'s prototype ``prototypes[t]`` transformed by ``params[t] (6,)``: ``(m, n_mels)``."""
        out = np.empty((len(prototypes), self.n_mels))
        _render(np.asarray(prototypes, dtype=np.int64), np.asarray(params, dtype=np.float64), self._prototypes,
                self._bodies, *self._bands, out)
        return out.astype(np.float32)  # float32 as the TorchScript module gives, whichever path ran


class FusedModel:
    """:meth:`PrototypeModel.step` for one stream, in numba on the CPU.

    Built from a loaded model file (its weights and buffers, read once); holds its own stream state (the
    blocks' caches and the look-ahead queue), so it runs beside the TorchScript module without touching it.
    """

    def __init__(self, model: LoadedModel) -> None:
        module = model.module
        state = {name: value.detach().cpu().numpy().astype(np.float64) for name, value in module.state_dict().items()}
        dilations = scripted_dilations(module)
        self.n_prototypes = model.metadata.n_prototypes
        self.n_mels = model.metadata.n_mels
        self.lookahead = model.metadata.lookahead
        self.renderer = PrototypeRenderer(model)
        # model files written before the frame floor existed have no such attribute: their floor is off
        self._dynamic_range = float(getattr(module, "dynamic_range", 0.0))
        self._input = state["predictor.input.weight"], state["predictor.input.bias"]
        names = [f"predictor.blocks.{index}" for index in range(len(dilations))]
        weights = np.stack([state[f"{name}.conv.conv.weight"] for name in names])  # (blocks, out, in, kernel)
        self._conv_w = np.ascontiguousarray(weights.transpose(0, 1, 3, 2).reshape(*weights.shape[:2], -1))
        self._conv_b = np.stack([state[f"{name}.conv.conv.bias"] for name in names])
        self._norm_w = np.stack([state[f"{name}.norm.weight"] for name in names])
        self._norm_b = np.stack([state[f"{name}.norm.bias"] for name in names])
        self._dilations = np.array(dilations, dtype=np.int64)
        kernel = weights.shape[3]
        self._caches = np.zeros((len(dilations), (kernel - 1) * int(self._dilations.max()) + 1, weights.shape[1]))
        self._head = state["predictor.head.weight"], state["predictor.head.bias"]
        self._scales = state["bounds"] * state["enabled"]
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
        as :meth:`PrototypeModel.step` (computed in float64, returned in float32 as there)."""
        frames = np.ascontiguousarray(frames, dtype=np.float64)
        n = len(frames)
        params = np.empty((n, self.n_prototypes, N_PARAMETERS))
        floored = np.empty_like(frames)
        _step(frames, self._dynamic_range, *self._input, self._conv_w, self._conv_b, self._norm_w, self._norm_b,
              self._dilations, self._caches, *self._head, self._scales, params, floored)
        targets = floored
        if self.lookahead:  # params of the newest frames belong to the frames ``lookahead`` behind them
            history = np.concatenate([self._pending, floored])
            targets, self._pending = history[:n], history[n:]
            skip = min(max(self.lookahead - self._frames_seen, 0), n)
            self._frames_seen += n
            params, targets = params[skip:], targets[skip:]
        return params.astype(np.float32), self.renderer.errors(targets, params).astype(np.float32)


#: Largest difference from the model file's own step accepted when a fused model is checked (float32 gives ~1e-6).
CHECK_TOLERANCE = 1e-4


class FusedModelWarning(UserWarning):
    """A model file whose step the fused kernels do not reproduce: its own TorchScript step runs instead."""


def checked_fused_model(model: LoadedModel) -> FusedModel | None:
    """A :class:`FusedModel` of ``model`` if it gives the model file's own step on a few frames of noise; None,
    with a :class:`FusedModelWarning`, for a file whose code does other arithmetic than this engine's (a model
    file carries its own TorchScript) or whose weights it cannot read.  Both streams are reset after."""
    frames = np.random.default_rng(0).uniform(0.0, 0.7, (model.metadata.lookahead + 8, model.metadata.n_mels))
    try:
        fused = FusedModel(model)
        expected, got = torchscript_step(model, frames.astype(np.float32)), fused.step(frames)
        agrees = all(a.shape == b.shape and np.allclose(a, b, rtol=0.0, atol=CHECK_TOLERANCE)
                     for a, b in zip(expected, got, strict=True))
    except (KeyError, IndexError, AttributeError, ValueError, RuntimeError) as error:
        agrees, fused = False, None
        reason = f"{error.__class__.__name__}: {str(error).splitlines()[0][:100] if str(error) else ''}"
    else:
        reason = f"its step differs from the fused kernels' by more than {CHECK_TOLERANCE}"
    finally:
        with torch.no_grad():
            model.module.reset()
    if not agrees or fused is None:
        warnings.warn(f"this model file runs its own TorchScript step ({reason}); the engine is slower with it",
                      FusedModelWarning, stacklevel=2)
        return None
    fused.reset()
    return fused


def torchscript_step(model: LoadedModel, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The TorchScript module's step on ``frames`` on the model's device, as numpy: the reference the fused
    step is held to, and the step on CUDA."""
    with torch.no_grad():
        params, errors = model.module.step(torch.from_numpy(np.asarray(frames, dtype=np.float32)).to(model.device))
    return params.cpu().numpy(), errors.cpu().numpy()
