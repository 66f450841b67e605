"""The fused numba step equals the TorchScript step it replaces on the CPU; each causal layer's step
equals its whole-clip forward (one chunked-vs-batch test per layer, as cached_conv does)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_model import build_tiny_model

from engine.fusedmodel import (
    FusedModel,
    FusedModelWarning,
    PrototypeRenderer,
    checked_fused_model,
    torchscript_step,
)
from engine.model import CausalBlock, CausalConv1d, PrototypeModel
from engine.modelfile import load_model, save_model


def _loaded(tmp_path, **options):
    model, metadata = build_tiny_model(**options)
    return load_model(save_model(model, metadata, tmp_path / "tiny.pt"))


@pytest.mark.parametrize("chunk", [1, 3, 8])
@pytest.mark.parametrize(("lookahead", "dynamic_range_db"), [(0, 0.0), (2, 0.0), (3, 60.0)])
def test_fused_step_equals_the_torchscript_step(tmp_path, chunk, lookahead, dynamic_range_db):
    loaded = _loaded(tmp_path, lookahead=lookahead, dynamic_range_db=dynamic_range_db, head_std=0.5)
    fused = FusedModel(loaded)
    frames = np.random.default_rng(0).uniform(0.0, 0.7, (90, loaded.metadata.n_mels)).astype(np.float32)
    for _ in range(2):  # the second time after a reset of both
        for start in range(0, len(frames), chunk):
            expected = torchscript_step(loaded, frames[start : start + chunk])
            got = fused.step(frames[start : start + chunk])
            for a, b in zip(expected, got, strict=True):
                assert a.shape == b.shape
                np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
        with torch.no_grad():
            loaded.module.reset()
        fused.reset()


def test_fused_step_adds_each_prototype_s_body(tmp_path):
    model, metadata = build_tiny_model(head_std=0.5)
    bodied = PrototypeModel(3, np.asarray(model.band_centres), channels=32, bodies=True)
    bodied.load_state_dict(model.state_dict())
    with torch.no_grad():
        bodied.bodies.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(6))
    loaded = load_model(save_model(bodied, metadata, tmp_path / "bodied.pt"))
    frames = np.random.default_rng(5).uniform(0.0, 0.7, (20, loaded.metadata.n_mels)).astype(np.float32)
    fused = checked_fused_model(loaded)  # checks, then resets both streams
    assert fused is not None
    expected, got = torchscript_step(loaded, frames), fused.step(frames)
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)


def test_fused_step_follows_large_parameters_to_their_bounds(tmp_path):
    """Head weights large enough to saturate tanh and move the shelves and pitch far: still the same numbers."""
    loaded = _loaded(tmp_path, head_std=3.0)
    fused = FusedModel(loaded)
    frames = np.random.default_rng(1).uniform(0.0, 0.7, (20, loaded.metadata.n_mels)).astype(np.float32)
    expected, got = torchscript_step(loaded, frames), fused.step(frames)
    assert np.abs(got[0]).max(axis=(0, 1)).min() > 0.2  # every parameter far from identity somewhere
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)


def test_a_model_file_from_before_the_frame_floor_runs_fused_as_it_runs_scripted():
    """``benchmarks/results/accuracy/lolo-fluidr3-gm`` was exported before ``dynamic_range`` existed."""
    loaded = load_model(Path(__file__).parent.parent / "benchmarks/results/accuracy/lolo-fluidr3-gm/prototypes.pt")
    assert not hasattr(loaded.module, "dynamic_range")
    frames = np.random.default_rng(3).uniform(0.0, 0.7, (12, loaded.metadata.n_mels)).astype(np.float32)
    for a, b in zip(torchscript_step(loaded, frames), FusedModel(loaded).step(frames), strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)


@pytest.mark.parametrize(("pitch_mode", "bodies"), [("hz", False), ("linear", False), ("hz", True)])
def test_prototype_renderer_equals_the_module_render(tmp_path, pitch_mode, bodies):
    model, metadata = build_tiny_model()
    scripted = PrototypeModel(3, np.asarray(model.band_centres), pitch_mode=pitch_mode, channels=32, bodies=bodies)
    scripted.load_state_dict(model.state_dict())
    if bodies:
        with torch.no_grad():
            scripted.bodies.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(5))
    loaded = load_model(save_model(scripted, metadata, tmp_path / "tiny.pt"))
    rng = np.random.default_rng(2)
    params = (np.tanh(rng.normal(0.0, 1.5, (40, 3, 6))) * np.array([1.0, 0.5, 0.25, 0.25, 0.25, 0.25]))
    with torch.no_grad():
        expected = loaded.module.render(torch.from_numpy(params.astype(np.float32))).numpy()
    chosen = rng.integers(0, 3, 40)
    got = PrototypeRenderer(loaded).render(chosen, params[np.arange(40), chosen])
    np.testing.assert_allclose(got, expected[np.arange(40), chosen], rtol=0, atol=1e-5)


@pytest.mark.parametrize("layer", [CausalConv1d(16, 12, 3, dilation=4), CausalBlock(16, 3, dilation=2)],
                         ids=["CausalConv1d", "CausalBlock"])
@pytest.mark.parametrize("chunk", [1, 5])
def test_each_causal_layer_streams_as_it_runs_on_the_whole_clip(layer, chunk):
    assert layer.cumulative_delay == 0
    torch.manual_seed(0)
    clip = torch.randn(1, 16, 40)
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.normal_(0.0, 0.3)
        whole = layer(clip)[0].T
        layer.reset()
        streamed = torch.cat([layer.step(clip[0, :, i : i + chunk].T) for i in range(0, 40, chunk)])
    torch.testing.assert_close(streamed, whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize("preset_model", ["orchestra.pt", "orchestra-lowlatency.pt"])
def test_the_shipped_models_run_fused_as_they_run_scripted(preset_model):
    loaded = load_model(Path(__file__).parent.parent / "presets" / preset_model)
    fused = checked_fused_model(loaded)
    assert fused is not None
    frames = np.random.default_rng(4).uniform(0.0, 0.7, (30, loaded.metadata.n_mels)).astype(np.float32)
    for start in range(0, 30, 3):
        expected, got = torchscript_step(loaded, frames[start:start + 3]), fused.step(frames[start:start + 3])
        for a, b in zip(expected, got, strict=True):
            assert b.dtype == np.float32
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)


def test_a_model_file_the_fused_kernels_do_not_reproduce_runs_its_own_step(tmp_path, monkeypatch):
    """A model file carries its own TorchScript: if its step is other arithmetic than the kernels', or its
    weights are not where they look, the engine warns once and runs the file's step."""
    loaded = _loaded(tmp_path)
    assert checked_fused_model(loaded) is not None
    honest_step = FusedModel.step
    monkeypatch.setattr(FusedModel, "step", lambda self, frames: tuple(x + 1e-3 for x in honest_step(self, frames)))
    with pytest.warns(FusedModelWarning, match=r"runs its own TorchScript step \(its step differs"):
        assert checked_fused_model(loaded) is None

    def unreadable(self, model):
        raise KeyError("predictor.blocks.0.conv.conv.weight")

    monkeypatch.setattr(FusedModel, "__init__", unreadable)
    with pytest.warns(FusedModelWarning, match=r"runs its own TorchScript step \(KeyError"):
        assert checked_fused_model(loaded) is None
