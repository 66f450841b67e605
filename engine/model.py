"""The playable-prototype model: K spectra, a causal transformation predictor, and their renderer.

For every frame ``x_t`` and prototype ``P_k`` the predictor outputs six numbers, each bounded by
``scale * tanh`` (docs/design.md section 1): pitch ``p`` (frequency scaling ``s = exp(p)``), gain ``g`` and two
shelves ``(f_lo, G_lo)``, ``(f_hi, G_hi)``.  The reconstruction ``R_k(x)_t`` is ``P_k`` transposed, then
level-shifted, then shelved, plus its body ``B_k`` (fixed in frequency; zero unless trained);
``e_{k,t} = mean_f (x_t - R_k(x)_t)^2`` ranks the prototypes.  With a fitted gain the level is not predicted
but solved: ``g`` becomes the one that reconstructs the frame best (the mean of ``x_t - R_k(x)_t``), so
``e_{k,t}`` is the residual's variance over bands and the ranking compares shapes, never levels.

The predictor only looks back (causal dilated convolutions) plus an optional fixed look-ahead of ``L``
frames, so :meth:`PrototypeModel.step` on consecutive chunks of frames gives what :meth:`forward` gives on
the whole clip.  The module is TorchScript-compatible; :mod:`engine.modelfile` writes and reads it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.mel import LOG_SCALE
from engine.transformation import BAND_KERNEL_SIZE, BAND_POOL, N_PARAMETERS, PARAMETER_BOUNDS

PREDICTOR_KERNEL_SIZE = 3  # every causal convolution's width in frames


class CausalConv1d(nn.Module):
    """A dilated convolution over time that sees only the past, with a cache for streaming.

    ``forward`` zero-pads the past of a whole clip; ``step`` prepends the cached rows of the previous
    chunk instead.  Zero is silence in model units, so a stream that starts from a reset cache is exactly
    a clip that starts at its first frame.  ``cumulative_delay`` is 0: the output at frame ``t`` depends on
    frames up to ``t`` only, in both.
    """

    if TYPE_CHECKING:  # the buffer registered in __init__, typed for mypy; TorchScript rejects string annotations
        cache: Tensor

    cumulative_delay = 0

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.context = (kernel_size - 1) * dilation
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation)
        self.register_buffer("cache", torch.zeros(self.context, in_channels), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(batch, channels, time)`` → ``(batch, out_channels, time)``."""
        return self.conv(F.pad(x, (self.context, 0)))

    @torch.jit.export
    def step(self, x: Tensor) -> Tensor:
        """Continue a single stream with its next frames, as rows: ``(n, channels)`` → ``(n, out_channels)``.

        The same sums as ``conv`` on the padded chunk, written as one matrix product of the weights with
        the kernel's taps: on a few frames ``conv1d`` spends ~250 us setting itself up, the product ~10 us
        (measured, one thread).  Rows, not channels first, so that the block's norm needs no transposes.
        """
        padded = torch.cat([self.cache, x], dim=0)
        self.cache = padded[padded.shape[0] - self.context :]
        n = x.shape[0]
        taps = torch.stack([padded[k * self.dilation : k * self.dilation + n]
                            for k in range(self.kernel_size)], dim=2)  # (n, in, kernel): the weights' order
        weight = self.conv.weight
        return F.linear(taps.reshape(n, -1), weight.reshape(weight.shape[0], -1), self.conv.bias)

    @torch.jit.export
    def reset(self) -> None:
        self.cache = torch.zeros_like(self.cache)


class CausalBlock(nn.Module):
    """Residual block: causal dilated convolution, per-frame layer norm, GELU."""

    cumulative_delay = 0

    def __init__(self, channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.conv = CausalConv1d(channels, channels, kernel_size, dilation)
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(batch, channels, time)``."""
        return x + F.gelu(self.norm(self.conv(x).transpose(1, 2)).transpose(1, 2))

    @torch.jit.export
    def step(self, x: Tensor) -> Tensor:
        """Rows ``(n, channels)`` of a single stream, as :meth:`CausalConv1d.step`."""
        return x + F.gelu(self.norm(self.conv.step(x)))

    @torch.jit.export
    def reset(self) -> None:
        self.conv.reset()


def residual_errors(residuals: Tensor, fitted_gain: bool, max_tilt: float = 0.0) -> tuple[Tensor, Tensor]:
    """``(errors, levels)`` of residuals ``x - R`` ``(..., n_mels)``: the mean square over bands, and the level
    the gain moves by.  With ``fitted_gain`` the level is the residual's mean, the best gain's correction,
    and the errors are what remains (the variance); without it both are as given (levels zero).  With
    ``max_tilt`` the residual's best line across the bands (at most ``max_tilt`` from the lowest band to the
    highest) is left out of the errors too: a brightness the microphone or the room gave the frame.  The tilt
    is not returned, so a rendered prototype keeps its own brightness."""
    if max_tilt > 0.0:
        tilt = torch.linspace(-0.5, 0.5, residuals.shape[-1], dtype=residuals.dtype, device=residuals.device)
        slope = ((residuals * tilt).sum(-1) / tilt.pow(2).sum()).clamp(-max_tilt, max_tilt)
        residuals = residuals - slope.unsqueeze(-1) * tilt
    if not fitted_gain:
        return residuals.pow(2).mean(-1), residuals.new_zeros(residuals.shape[:-1])
    levels = residuals.mean(-1)
    return (residuals - levels.unsqueeze(-1)).pow(2).mean(-1), levels


def receptive_field(kernel_size: int, dilations: tuple[int, ...]) -> int:
    """Frames of input that one output of the causal stack sees: ``1 + (kernel - 1) * sum(dilations)``."""
    return 1 + (kernel_size - 1) * sum(dilations)


def scripted_dilations(module: torch.jit.ScriptModule) -> tuple[int, ...]:
    """The dilation of each causal block of a loaded (scripted) :class:`PrototypeModel`, as its file holds them."""
    return tuple(int(block.conv.conv.dilation[0]) for _, block in module.predictor.blocks.named_children())


def check_lookahead(lookahead: int, dilations: tuple[int, ...], kernel_size: int = PREDICTOR_KERNEL_SIZE,
                    name: str = "lookahead") -> None:
    """Raise ValueError unless ``0 <= lookahead < field``: frame t is predicted from inputs
    ``t + L - field + 1 ... t + L``, so from ``L = field`` on it is predicted without being seen.
    ``name`` is the setting as the caller's user knows it (``train.lookahead`` in a training config)."""
    field = receptive_field(kernel_size, dilations)
    if not 0 <= lookahead < field:
        raise ValueError(f"{name} must be 0 to {field - 1} frames (the predictor sees {field} frames with "
                         f"dilations {list(dilations)}; from {field} on a frame's parameters are predicted "
                         f"without seeing the frame), got {lookahead}")


class TransformationPredictor(nn.Module):
    """Frames ``(batch, time, n_mels)`` → raw (unbounded) parameters ``(batch, time, K, 6)``.

    A frame-wise input projection, a stack of causal residual blocks with growing dilation (receptive
    field ``1 + (kernel - 1) * sum(dilations)`` frames), and a linear head initialised near zero so that
    training starts from identity transformations (the curriculum's first stage).
    """

    def __init__(
        self, n_mels: int, n_prototypes: int, channels: int, kernel_size: int, dilations: tuple[int, ...],
        band_channels: int = 0,
    ) -> None:
        super().__init__()
        self.n_prototypes = n_prototypes
        self.band_channels = band_channels
        # an optional convolution along the bands of each frame, one set of kernels shared by every band: the
        # same local pattern (a partial's shape, the spacing of a few partials, noise between them) is the same
        # feature at every pitch, as in a 2-D CNN over the spectrogram; per frame, so it needs no stream state
        self.bands = nn.Sequential(
            nn.Conv1d(1, band_channels, BAND_KERNEL_SIZE, padding=BAND_KERNEL_SIZE // 2), nn.GELU(),
            nn.Conv1d(band_channels, band_channels, BAND_KERNEL_SIZE, padding=BAND_KERNEL_SIZE // 2), nn.GELU(),
            nn.MaxPool1d(BAND_POOL),
        ) if band_channels > 0 else nn.Sequential()
        band_features = band_channels * (n_mels // BAND_POOL)
        self.input = nn.Linear(n_mels + band_features, channels)
        self.blocks = nn.ModuleList([CausalBlock(channels, kernel_size, d) for d in dilations])
        self.head = nn.Linear(channels, n_prototypes * N_PARAMETERS)
        nn.init.normal_(self.head.weight, std=1e-3)
        nn.init.zeros_(self.head.bias)
        self.receptive_field = receptive_field(kernel_size, dilations)

    def _head(self, h: Tensor) -> Tensor:
        out = self.head(h.transpose(1, 2))
        return out.reshape(out.shape[0], out.shape[1], self.n_prototypes, -1)

    def _features(self, frames: Tensor) -> Tensor:
        """Frames ``(..., n_mels)`` with their band-convolution features appended (as they are without)."""
        if self.band_channels == 0:
            return frames
        rows = frames.reshape(-1, 1, frames.shape[-1])
        # TorchScript has no starred tuples: the leading dimensions joined to -1 by concatenation
        features = self.bands(rows).reshape(frames.shape[:-1] + (-1,))  # noqa: RUF005
        return torch.cat([frames, features], dim=-1)

    def forward(self, frames: Tensor) -> Tensor:
        h = self.input(self._features(frames)).transpose(1, 2)
        for block in self.blocks:
            h = block(h)
        return self._head(h)

    @torch.jit.export
    def step(self, frames: Tensor) -> Tensor:
        """``frames``: ``(n, n_mels)``, the next ``n`` frames of a single stream → ``(n, K, 6)``."""
        h = self.input(self._features(frames))
        # mypy types a ModuleList's items as Module, not CausalBlock; TorchScript needs this direct loop, and
        # parses type comments itself, so the reason for the ignore below cannot follow it on its line
        for block in self.blocks:
            h = block.step(h)  # type: ignore[operator]
        return self.head(h).reshape(h.shape[0], self.n_prototypes, -1)

    @torch.jit.export
    def reset(self) -> None:
        for block in self.blocks:  # a CausalBlock typed as Module, as in step
            block.reset()  # type: ignore[operator]


class PrototypeModel(nn.Module):
    """K prototypes, their transformation predictor, and the renderer of transformed prototypes.

    ``pitch_mode`` ``"hz"`` (default) makes pitch a true transposition: band ``j`` (centre ``f_j``) reads
    the prototype at the fractional band whose centre is ``f_j / s``.  ``"linear"`` reproduces the paper's
    stretch of the band axis (band ``j`` reads band ``j / s``), kept only to compare against.
    """

    if TYPE_CHECKING:  # the buffers registered in __init__, typed for mypy (as CausalConv1d.cache)
        bounds: Tensor
        enabled: Tensor
        band_index: Tensor
        band_position: Tensor
        band_centres: Tensor
        band_centres_700: Tensor
        pending: Tensor
        frames_seen: Tensor

    def __init__(
        self,
        n_prototypes: int,
        band_centres_hz: np.ndarray,
        lookahead: int = 0,
        pitch_mode: str = "hz",
        channels: int = 128,
        kernel_size: int = PREDICTOR_KERNEL_SIZE,
        dilations: tuple[int, ...] = (1, 2, 4, 8),
        dynamic_range_db: float = 0.0,
        bodies: bool = False,
        fitted_gain: bool = False,
        fitted_tilt_db: float = 0.0,
        band_channels: int = 0,
    ) -> None:
        super().__init__()
        if pitch_mode not in ("hz", "linear"):
            raise ValueError(f"pitch_mode must be 'hz' or 'linear', got {pitch_mode!r}")
        check_lookahead(lookahead, dilations, kernel_size)
        n_mels = len(band_centres_hz)
        self.n_prototypes = n_prototypes
        self.n_mels = n_mels
        self.lookahead = lookahead
        self.linear_pitch = pitch_mode == "linear"
        if dynamic_range_db < 0.0:
            raise ValueError(f"dynamic_range_db must be 0 (off) or more, got {dynamic_range_db}")
        self.dynamic_range = float(dynamic_range_db) / (10.0 * LOG_SCALE)  # in x units (1 unit = 170 dB)
        # each prototype's level solved per frame rather than predicted: a frame's level (the room, the
        # microphone, the dynamics) then never decides which prototype reconstructs it best
        self.fitted_gain = bool(fitted_gain)
        # likewise each prototype's tilt across the bands (a microphone's or a room's brightness), up to
        # fitted_tilt_db from the lowest band to the highest, left out of the errors (residual_errors)
        if fitted_tilt_db < 0.0:
            raise ValueError(f"fitted_tilt_db must be 0 (off) or more, got {fitted_tilt_db}")
        self.max_tilt = float(fitted_tilt_db) / (10.0 * LOG_SCALE)
        self.prototypes = nn.Parameter(torch.zeros(n_prototypes, n_mels))
        # each prototype's body: a log spectrum added after the transposition, so it stays at the same
        # frequencies whatever the pitch (an instrument's resonances do); zero and frozen unless ``bodies``
        self.bodies = nn.Parameter(torch.zeros(n_prototypes, n_mels), requires_grad=bodies)
        self.theta = nn.Parameter(torch.tensor(-4.0))
        self.predictor = TransformationPredictor(n_mels, n_prototypes, channels, kernel_size, dilations, band_channels)

        centres = np.asarray(band_centres_hz, dtype=np.float64)
        centre_mels = 2595.0 * np.log10(1.0 + centres / 700.0)
        self.mels_per_log = float(2595.0 / math.log(10.0) / np.mean(np.diff(centre_mels)))
        self.register_buffer("bounds", torch.tensor(PARAMETER_BOUNDS))
        self.register_buffer("enabled", torch.ones(N_PARAMETERS))
        self.register_buffer("band_index", torch.arange(n_mels, dtype=torch.float32))
        self.register_buffer("band_position", torch.linspace(0.0, 1.0, n_mels))
        self.register_buffer("band_centres", torch.tensor(centres, dtype=torch.float32))
        # 700 + f computed in float32 exactly as the numerator computes it at s = 1 (keeps identity exact)
        self.register_buffer("band_centres_700", 700.0 + self.band_centres)
        self.register_buffer("pending", torch.zeros(lookahead, n_mels), persistent=False)
        self.register_buffer("frames_seen", torch.zeros((), dtype=torch.long), persistent=False)

    @torch.jit.export
    def floored(self, frames: Tensor) -> Tensor:
        """Frames with every band raised to no more than ``dynamic_range_db`` below the frame's loudest band.

        In log units a band 100 dB down weighs as much as a harmonic: without a floor the errors, and
        the decision, hang on how quiet a library's quiet bands are (its noise floor, its band limit),
        which says everything about the recording and nothing about the instrument.  Silence is left as
        it is (its loudest band is itself near the log floor).  Off (0) in models trained without it.
        """
        if self.dynamic_range <= 0.0:
            return frames
        return torch.maximum(frames, frames.amax(-1, keepdim=True) - self.dynamic_range)

    # ----------------------------------------------------------------------------------------------- render
    @torch.jit.export
    def temperature(self) -> Tensor:
        """``tau``: sharpness of ``softmax(-tau * e)`` over mean-per-band errors ``e`` (learned, supervised).

        ``softplus(theta)`` applies to errors summed over bands, as in the paper's ``||x - R||^2``; the
        factor ``n_mels`` carries it over to the mean-per-band errors used everywhere here.
        """
        return F.softplus(self.theta) * self.n_mels

    def bound(self, raw: Tensor) -> Tensor:
        """Raw predictor outputs → parameters within ``scale * tanh``; disabled ones (curriculum) are 0."""
        return torch.tanh(raw) * self.bounds * self.enabled

    def _read_positions(self, pitch: Tensor) -> Tensor:
        """Fractional band each output band reads from, for pitch ``p`` (``s = exp(p)``), edge-clamped."""
        scale = torch.exp(pitch).unsqueeze(-1)
        if self.linear_pitch:
            positions = self.band_index / scale
        else:
            # band j reads where mel(f_j / s) lies on the (uniform) mel grid of band centres, written as an
            # offset from j: mel(f/s) - mel(f) = 2595 log10((700 s + f) / (s (700 + f))), whose ratio is
            # exactly 1 at s = 1, so no transposition reads exactly band j.
            ratio = (700.0 * scale + self.band_centres) / (scale * self.band_centres_700)
            positions = self.band_index + torch.log(ratio) * self.mels_per_log
        return positions.clamp(0.0, float(self.n_mels - 1))

    def transform(self, spectra: Tensor, params: Tensor) -> Tensor:
        """Apply bounded ``params (..., 6)`` to ``spectra (..., n_mels)`` (broadcast): pitch, gain, shelves."""
        positions = self._read_positions(params[..., 0])
        lower = positions.floor().clamp(max=float(self.n_mels - 2))
        weight = positions - lower
        index = lower.long()
        spectra = spectra.expand(positions.shape)
        warped = torch.gather(spectra, -1, index) * (1.0 - weight) + torch.gather(spectra, -1, index + 1) * weight
        u = self.band_position
        # beta is engine.transformation.SHELF_SOFTPLUS_BETA, written out: TorchScript takes softplus's beta
        # only as a literal here
        low_shelf = F.softplus(-2.0 * (u - 0.5 + params[..., 2:3]), beta=10.0)
        high_shelf = F.softplus(2.0 * (u - 0.5 + params[..., 4:5]), beta=10.0)
        return warped + params[..., 1:2] + params[..., 3:4] * low_shelf + params[..., 5:6] * high_shelf

    @torch.jit.export
    def render(self, params: Tensor) -> Tensor:
        """Every prototype transformed by its parameters, its body added at fixed frequencies:
        ``(..., K, 6)`` → ``(..., K, n_mels)``."""
        return self.transform(self.prototypes, params) + self.bodies

    @torch.jit.export
    def fit(self, frames: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
        """``(params, e_{k,t})``: every prototype rendered against its frame, ``(..., K, 6)`` and ``(..., K)``.

        With a fitted gain the returned gains are the fitted ones, so :meth:`render` of the returned
        parameters is the reconstruction the errors measure (but for a fitted tilt, never rendered); otherwise
        ``params`` come back as given.
        """
        errors, levels = residual_errors(frames.unsqueeze(-2) - self.render(params), self.fitted_gain, self.max_tilt)
        if self.fitted_gain:
            params = torch.cat([params[..., :1], params[..., 1:2] + levels.unsqueeze(-1), params[..., 2:]], -1)
        return params, errors

    # -------------------------------------------------------------------------------------- whole clips
    def forward(self, frames: Tensor, scored_frames: int = 0) -> tuple[Tensor, Tensor]:
        """Whole clips ``(batch, T, n_mels)`` → ``(params (batch, T, K, 6), errors (batch, T, K))``.

        With look-ahead ``L``, frame ``t`` uses inputs up to ``t + L``; the clip is followed by ``L`` silent
        frames, which is what a stream sees when flushed with silence.  ``scored_frames > 0`` returns only
        the last that many frames: training renders those while the earlier ones serve as the predictor's
        context, which makes a batch several times cheaper (rendering, not the predictor, dominates).
        """
        frames = self.floored(frames)
        padded = F.pad(frames, (0, 0, 0, self.lookahead))
        params = self.bound(self.predictor(padded)[:, self.lookahead :])
        if scored_frames > 0:
            end = frames.shape[1] - self.lookahead  # the last frames whose look-ahead lies inside the clip
            params = params[:, end - scored_frames : end]
            frames = frames[:, end - scored_frames : end]
        return self.fit(frames, params)

    # ------------------------------------------------------------------------------------------ streaming
    @torch.jit.export
    def step(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """The next ``n`` frames ``(n, n_mels)`` of one stream → the ``m`` frames now decided.

        Returns ``(params (m, K, 6), errors (m, K))`` for the frames ``L`` behind the newest input
        (``m = n`` once the stream is ``L`` frames old, fewer before).
        """
        n = frames.shape[0]
        if n == 0:
            empty = frames.new_zeros(0, self.n_prototypes, self.bounds.shape[0])
            return empty, frames.new_zeros(0, self.n_prototypes)
        frames = self.floored(frames)
        params = self.bound(self.predictor.step(frames))
        if self.lookahead == 0:
            return self.fit(frames, params)
        history = torch.cat([self.pending, frames], dim=0)
        targets = history[:n]
        self.pending = history[n:]
        skip = min(max(self.lookahead - int(self.frames_seen), 0), n)
        self.frames_seen += n
        return self.fit(targets[skip:], params[skip:])

    @torch.jit.export
    def reset(self) -> None:
        """Forget the stream: caches back to silence, look-ahead queue emptied."""
        self.predictor.reset()
        self.pending = torch.zeros_like(self.pending)
        self.frames_seen = torch.zeros_like(self.frames_seen)

    @torch.jit.ignore
    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """As :meth:`nn.Module.load_state_dict`; weights written before bodies existed load with zero bodies."""
        state = dict(state_dict)
        state.setdefault("bodies", torch.zeros_like(self.bodies))
        return super().load_state_dict(state, strict, assign)


def prototype_bodies(module: nn.Module) -> Tensor:
    """A model's bodies (:class:`PrototypeModel`, a loaded TorchScript module, any device); zeros for a model
    file written before bodies existed, whose prototypes carry everything."""
    bodies = getattr(module, "bodies", None)
    return torch.zeros_like(cast(Tensor, module.prototypes)) if bodies is None else bodies


def prototype_spectra(module: nn.Module) -> Tensor:
    """What each prototype sounds like untransposed: its spectrum plus its body, ``(K, n_mels)``."""
    return cast(Tensor, module.prototypes) + prototype_bodies(module)


def parameter_count(model: nn.Module) -> int:
    """Number of trainable numbers in a model."""
    return sum(p.numel() for p in model.parameters())


def semitones(pitch: Tensor | float) -> Tensor | float:
    """Pitch parameter ``p`` in semitones (``12 log2 exp(p)``), meaningful in ``"hz"`` pitch mode."""
    return pitch * (12.0 / math.log(2.0))
