"""The model's step one frame a call, as the live engine calls it: the TorchScript step on CUDA (what
``--device cuda`` ran before), the same step replayed from a CUDA graph (engine.cudagraph) and the fused numba
step on the CPU, on the log-mel frames of the speed benchmark's phrase (10 s); the three interleaved over 3
runs, medians and 99th percentiles per call; the graph's largest difference from the TorchScript step and from
the CPU.  Needs a CUDA GPU.

Run from the repository root: ``python benchmarks/results/speed/2026-12-04-cuda-step/measure_cuda_step.py [OUT.json]``.
"""

import json
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from benchmarks.speed import test_signal
from engine.atomic import write_text
from engine.cudagraph import CudaGraphStep
from engine.frontend import log_mel
from engine.fusedmodel import FusedModel
from engine.modelfile import load_model

MODEL = "presets/orchestra-transfer.pt"
torch.set_num_threads(1)
reference = load_model(MODEL, device="cuda")
graph = CudaGraphStep(load_model(MODEL, device="cuda").scripted)
cpu = load_model(MODEL, device="cpu")
assert cpu.weights is not None
fused = FusedModel(cpu.weights, cpu.metadata.lookahead)
frames = log_mel(test_signal(10.0, cpu.metadata.sample_rate), cpu.metadata.analysis)

steps: dict[str, tuple[Callable, Callable]] = {
    "torchscript_cuda": (reference.script_step, reference.reset_script),
    "graph_cuda": (graph.step, graph.reset),
    "fused_cpu": (fused.step, fused.reset),
}
outputs: dict[str, list[np.ndarray]] = {}
times: dict[str, list[float]] = {name: [] for name in steps}
for _ in range(3):
    for name, (step, reset) in steps.items():
        reset()
        params, errors = [], []
        for index in range(len(frames)):
            started = time.perf_counter()
            p, e = step(frames[index : index + 1])
            times[name].append(time.perf_counter() - started)
            params.append(p)
            errors.append(e)
        outputs[name] = [np.concatenate(params), np.concatenate(errors)]


def largest_difference(a: str, b: str) -> dict[str, float]:
    return {key: float(np.abs(x - y).max()) for key, x, y in zip(("params", "errors"), outputs[a], outputs[b],
                                                                   strict=True)}


result = {
    "gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "model": MODEL, "frames": len(frames),
    "us_per_call": {name: {"median": 1e6 * float(np.median(t)), "p99": 1e6 * float(np.percentile(t, 99))}
                    for name, t in times.items()},
    "graph_vs_torchscript_cuda": largest_difference("graph_cuda", "torchscript_cuda"),
    "graph_vs_fused_cpu": largest_difference("graph_cuda", "fused_cpu"),
}
print(json.dumps(result, indent=1))
if len(sys.argv) > 1:
    write_text(sys.argv[1], json.dumps(result, indent=1))
