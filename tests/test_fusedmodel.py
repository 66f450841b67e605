"""The fused numba step equals the TorchScript step it replaces on the CPU; each causal layer's step
equals its whole-clip forward (one chunked-vs-batch test per layer, as cached_conv does)."""

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_model import assert_steps_like_the_script, build_tiny_model

from engine.errors import ModelFileError
from engine.fusedmodel import FusedModel, FusedWeights, PrototypeRenderer
from engine.model import CausalBlock, CausalConv1d, PrototypeModel
from engine.modelfile import (
    FUSED_NAME,
    METADATA_NAME,
    FusedModelWarning,
    LoadedModel,
    load_model,
    load_streaming_model,
    quiet_torchscript,
    save_model,
)


def _loaded(tmp_path, **options):
    model, metadata = build_tiny_model(**options)
    return load_model(save_model(model, metadata, tmp_path / "tiny.pt"))


def _fused(loaded: LoadedModel) -> FusedModel:
    assert loaded.fused_step and loaded.weights is not None
    return FusedModel(loaded.weights, loaded.metadata.lookahead)


@pytest.mark.parametrize("chunk", [1, 3, 8])
@pytest.mark.parametrize(("lookahead", "dynamic_range_db", "fitted_gain", "fitted_tilt_db", "band_channels"),
                         [(0, 0.0, False, 0.0, 0), (2, 0.0, False, 0.0, 0), (3, 60.0, False, 0.0, 0),
                          (0, 0.0, True, 0.0, 0), (2, 60.0, True, 0.0, 0), (0, 60.0, True, 24.0, 0),
                          (2, 0.0, False, 6.0, 0), (0, 60.0, True, 0.0, 6), (2, 0.0, False, 0.0, 3)])
def test_fused_step_equals_the_torchscript_step(tmp_path, chunk, lookahead, dynamic_range_db, fitted_gain,
                                                fitted_tilt_db, band_channels):
    loaded = _loaded(tmp_path, lookahead=lookahead, dynamic_range_db=dynamic_range_db, head_std=0.5,
                     fitted_gain=fitted_gain, fitted_tilt_db=fitted_tilt_db, band_channels=band_channels)
    frames = np.random.default_rng(0).uniform(0.0, 0.7, (90, loaded.metadata.n_mels)).astype(np.float32)
    assert_steps_like_the_script(loaded, _fused(loaded), frames, chunk)


def test_fused_step_adds_each_prototype_s_body(tmp_path):
    model, metadata = build_tiny_model(head_std=0.5)
    bodied = PrototypeModel(3, np.asarray(model.band_centres), channels=32, bodies=True)
    bodied.load_state_dict(model.state_dict())
    with torch.no_grad():
        bodied.bodies.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(6))
    loaded = load_model(save_model(bodied, metadata, tmp_path / "bodied.pt"))
    frames = np.random.default_rng(5).uniform(0.0, 0.7, (20, loaded.metadata.n_mels)).astype(np.float32)
    fused = _fused(loaded)  # checked on loading
    expected, got = loaded.script_step(frames), fused.step(frames)
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)


def test_fused_step_follows_large_parameters_to_their_bounds(tmp_path):
    """Head weights large enough to saturate tanh and move the shelves and pitch far: still the same numbers."""
    loaded = _loaded(tmp_path, head_std=3.0)
    fused = _fused(loaded)
    frames = np.random.default_rng(1).uniform(0.0, 0.7, (20, loaded.metadata.n_mels)).astype(np.float32)
    expected, got = loaded.script_step(frames), fused.step(frames)
    assert np.abs(got[0]).max(axis=(0, 1)).min() > 0.2  # every parameter far from identity somewhere
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)


def test_a_model_file_from_before_the_frame_floor_runs_fused_as_it_runs_scripted():
    """``benchmarks/results/accuracy/lolo-fluidr3-gm`` was exported before ``dynamic_range`` existed."""
    loaded = load_model(Path(__file__).parent.parent / "benchmarks/results/accuracy/lolo-fluidr3-gm/prototypes.pt")
    assert not hasattr(loaded.module, "dynamic_range")
    frames = np.random.default_rng(3).uniform(0.0, 0.7, (12, loaded.metadata.n_mels)).astype(np.float32)
    for a, b in zip(loaded.script_step(frames), _fused(loaded).step(frames), strict=True):
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
    got = PrototypeRenderer(loaded.weights).render(chosen, params[np.arange(40), chosen])
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


@pytest.mark.parametrize("preset_model",
                         ["orchestra.pt", "orchestra-transfer.pt", "orchestra-lowlatency.pt", "speakers.pt"])
def test_the_shipped_models_run_fused_as_they_run_scripted(preset_model):
    """Each carries its numbers (a CPU stream reads them without torch), and they give its module's step."""
    path = Path(__file__).parent.parent / "presets" / preset_model
    assert load_streaming_model(path).module is None
    loaded = load_model(path)
    fused = FusedModel(load_streaming_model(path).weights, loaded.metadata.lookahead)
    frames = np.random.default_rng(4).uniform(0.0, 0.7, (30, loaded.metadata.n_mels)).astype(np.float32)
    for start in range(0, 30, 3):
        expected, got = loaded.script_step(frames[start:start + 3]), fused.step(frames[start:start + 3])
        for a, b in zip(expected, got, strict=True):
            assert b.dtype == np.float32
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)


def test_a_model_file_the_fused_kernels_do_not_reproduce_runs_its_own_step(tmp_path, monkeypatch):
    """A model file carries its own TorchScript: if its step is other arithmetic than the kernels', or its
    weights are not where they look, the engine warns and runs the file's step (and the file is written
    without the kernels' numbers)."""
    model, metadata = build_tiny_model()
    path = save_model(model, metadata, tmp_path / "tiny.pt")
    assert load_model(path).fused_step
    honest_step = FusedModel.step
    monkeypatch.setattr(FusedModel, "step", lambda self, frames: tuple(x + 1e-3 for x in honest_step(self, frames)))
    with pytest.warns(FusedModelWarning, match=r"runs its own TorchScript step \(its step differs"):
        loaded = load_model(path)
    assert not loaded.fused_step and loaded.weights is not None  # the prototypes still render for transfer
    monkeypatch.setattr(FusedModel, "step", honest_step)

    def unreadable(module):
        raise KeyError("predictor.blocks.0.conv.conv.weight")

    monkeypatch.setattr(FusedWeights, "from_module", unreadable)
    with pytest.warns(FusedModelWarning, match=r"runs its own TorchScript step \(KeyError"):
        save_model(model, metadata, tmp_path / "unreadable.pt")
    with pytest.warns(FusedModelWarning, match=r"KeyError"):
        loaded = load_model(tmp_path / "unreadable.pt")
    assert not loaded.fused_step and loaded.weights is None
    monkeypatch.undo()
    older = load_streaming_model(tmp_path / "unreadable.pt")  # no numbers in the file, as in files before them:
    assert older.module is not None and older.fused_step  # its module is loaded and its numbers read and checked


def test_a_model_file_carries_the_numbers_its_step_was_checked_with(tmp_path):
    """What a CPU stream reads without torch is exactly what the module holds."""
    loaded = _loaded(tmp_path, lookahead=2, dynamic_range_db=60.0, head_std=0.5)
    streaming = load_streaming_model(tmp_path / "tiny.pt")
    assert streaming.module is None and streaming.fused_step and streaming.metadata == loaded.metadata
    derived = FusedWeights.from_module(loaded.module)
    for name, value in vars(derived).items():
        np.testing.assert_array_equal(getattr(streaming.weights, name), value, err_msg=name)
    assert streaming.temperature == pytest.approx(float(loaded.module.temperature().detach()))
    with pytest.raises(RuntimeError, match="load it with load_model"):
        streaming.script_step(np.zeros((1, loaded.metadata.n_mels)))


def test_a_fitted_gain_and_tilt_survive_the_file_and_older_numbers_read_as_neither(tmp_path):
    """The fused numbers carry the fitted gain and tilt; an archive written before they existed reads as a
    predicted gain and no tilt (what such a file's module does); a model re-scripted from a file keeps both."""
    from training.export import rescripted  # training code: imported where the test needs it

    loaded = _loaded(tmp_path, fitted_gain=True, fitted_tilt_db=24.0)
    assert loaded.weights is not None and loaded.weights.fitted_gain is True
    assert loaded.weights.max_tilt == pytest.approx(24.0 / 170.0)
    assert rescripted(loaded).fitted_gain and rescripted(loaded).max_tilt == pytest.approx(24.0 / 170.0)
    with np.load(io.BytesIO(loaded.weights.to_bytes())) as archive:
        older = {name: archive[name] for name in archive.files if name not in ("fitted_gain", "max_tilt")}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **older)
    older_weights = FusedWeights.from_bytes(buffer.getvalue())
    assert older_weights.fitted_gain is False and older_weights.max_tilt == 0.0


def test_a_band_convolution_survives_the_file_and_older_numbers_read_as_none(tmp_path):
    """A model with the predictor's band convolution runs fused from its file, and a re-scripted copy keeps
    the convolution; an archive written before it existed reads as none (its input projection sees the frame
    alone, as that file's module does)."""
    from training.export import rescripted  # training code: imported where the test needs it

    loaded = _loaded(tmp_path, band_channels=3)
    assert loaded.fused_step and loaded.weights is not None and loaded.weights.band_in_w.shape == (3, 5)
    assert rescripted(loaded).predictor.band_channels == 3
    plain = _loaded(tmp_path / "plain", band_channels=0)
    with np.load(io.BytesIO(plain.weights.to_bytes())) as archive:
        older = {name: archive[name] for name in archive.files if not name.startswith("band_")}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **older)
    assert FusedWeights.from_bytes(buffer.getvalue()).band_in_w.shape == (0, 5)


def _with_fused_entry(source, data: bytes, path):
    """``source``'s module and metadata with ``data`` as its fused numbers."""
    with quiet_torchscript():
        torch.jit.save(source.module, str(path), _extra_files={METADATA_NAME: source.metadata.to_json(),
                                                                 FUSED_NAME: data})
    return path


def test_damaged_or_foreign_fused_numbers_are_refused_in_one_line(tmp_path):
    loaded = _loaded(tmp_path)
    other = PrototypeModel(len(loaded.metadata.class_names) + 1, np.asarray(loaded.module.band_centres), channels=32)
    cases = {"damaged": b"not an npz archive", "foreign": FusedWeights.from_module(other).to_bytes()}
    messages = {"damaged": "fused weights are damaged", "foreign": "disagree on the number of prototypes"}
    for case, data in cases.items():
        path = _with_fused_entry(loaded, data, tmp_path / f"{case}.pt")
        for load in (load_model, load_streaming_model):
            with pytest.raises(ModelFileError, match=messages[case]) as error:
                load(path)
            assert "\n" not in str(error.value)
    weights = FusedWeights.from_module(loaded.module)
    weights.head_b[0] = np.nan
    with pytest.raises(ValueError, match="not finite"):
        FusedWeights(**vars(weights))


def test_numbers_that_do_not_match_the_module_are_caught_whenever_the_module_is_loaded(tmp_path):
    """A CPU stream trusts the numbers (checked when the file was written); loading the module checks again."""
    loaded = _loaded(tmp_path, head_std=0.5)
    weights = FusedWeights.from_module(loaded.module)
    tampered = FusedWeights(**{**vars(weights), "head_b": weights.head_b + 0.5})
    path = _with_fused_entry(loaded, tampered.to_bytes(), tmp_path / "tampered.pt")
    with pytest.warns(FusedModelWarning, match="differs"):
        assert not load_model(path).fused_step
