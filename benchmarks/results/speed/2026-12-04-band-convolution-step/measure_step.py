"""The fused model step per frame: without and with the predictor's band convolution (16 channels), interleaved."""
import statistics
import time

import numpy as np
import torch

from engine.fusedmodel import FusedModel, FusedWeights
from engine.model import PrototypeModel

torch.set_num_threads(1)
centres = np.geomspace(30, 20000, 128)
models = {}
for band_channels in (0, 16):
    torch.manual_seed(0)
    model = PrototypeModel(28, centres, band_channels=band_channels, dynamic_range_db=60, fitted_gain=True)
    models[band_channels] = FusedModel(FusedWeights.from_module(torch.jit.script(model)), 0)
frames = np.random.default_rng(0).uniform(0, 0.7, (2000, 128)).astype(np.float32)
times: dict[int, list[float]] = {band_channels: [] for band_channels in models}
for _ in range(7):
    for band_channels, fused in models.items():
        start_time = time.perf_counter()
        for frame in frames:
            fused.step(frame[None])
        times[band_channels].append((time.perf_counter() - start_time) / len(frames) * 1e6)
for band_channels, runs in times.items():
    print(f"band channels {band_channels}: median {statistics.median(runs):.0f} us per frame")
