"""The CUDA graph replay of the model's step equals the TorchScript step it replaces, chunk by chunk and after
a reset; without a GPU only the refusals run (the CUDA tests say so in their skip reason)."""

import numpy as np
import pytest
import torch
from tiny_model import assert_steps_like_the_script, build_tiny_model

from engine.cudagraph import CudaGraphStep, buffer_owner, can_record, replaced_state
from engine.modelfile import load_model, save_model

NEEDS_CUDA = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA GPU on this machine: the CUDA graph step is not run")


def _loaded(path, device, **options):
    model, metadata = build_tiny_model(head_std=0.5, **options)
    return load_model(save_model(model, metadata, path), device=device)


@NEEDS_CUDA
@pytest.mark.parametrize("chunk", [1, 3])
@pytest.mark.parametrize(("dynamic_range_db", "fitted_gain", "band_channels"), [(0.0, False, 0), (60.0, True, 6)])
def test_graph_step_equals_the_torchscript_step(tmp_path, chunk, dynamic_range_db, fitted_gain, band_channels):
    reference = _loaded(tmp_path / "reference.pt", "cuda", dynamic_range_db=dynamic_range_db,
                        fitted_gain=fitted_gain, band_channels=band_channels)
    graph = CudaGraphStep(_loaded(tmp_path / "graph.pt", "cuda", dynamic_range_db=dynamic_range_db,
                                  fitted_gain=fitted_gain, band_channels=band_channels).scripted)
    frames = np.random.default_rng(0).uniform(0.0, 0.7, (60, reference.metadata.n_mels)).astype(np.float32)
    assert_steps_like_the_script(reference, graph, frames, chunk)


def test_a_model_with_lookahead_is_not_recorded():
    assert can_record(0)
    assert not can_record(2)


def test_a_cpu_module_is_refused(tmp_path):
    with pytest.raises(ValueError, match="CUDA device"):
        CudaGraphStep(_loaded(tmp_path / "tiny.pt", "cpu").scripted)


def test_the_replaced_state_is_the_convolutions_caches_and_can_be_put_back(tmp_path):
    """What the recording relies on, on the CPU: which buffers a step replaces, and setting them on the module."""
    module = _loaded(tmp_path / "tiny.pt", "cpu").scripted
    names = replaced_state(module, torch.zeros(1, int(module.n_mels)))
    assert names and all(name.endswith("conv.cache") for name in names)
    assert len(names) == len(list(module.predictor.blocks.children()))
    owner, attribute = buffer_owner(module, names[0])
    ones = torch.ones_like(getattr(owner, attribute))
    setattr(owner, attribute, ones)
    assert dict(module.named_buffers())[names[0]].data_ptr() == ones.data_ptr()
