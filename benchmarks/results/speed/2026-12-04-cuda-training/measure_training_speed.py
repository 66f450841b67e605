"""Seconds per training batch of the shipped recipe (training/configs/orchestra.yaml: its train and augment
sections, 28 prototypes, batch 64) on the CPU (2 threads, as training.train uses) and on CUDA, in one run.
The clips are random log-mel frames: a batch's cost does not depend on what it holds.  One epoch of 5 batches
first on each device (start-up), then 3 epochs of 10 batches each, interleaved; the median epoch per batch.

Run from the repository root:
``python benchmarks/results/speed/2026-12-04-cuda-training/measure_training_speed.py [OUT.json]``.
"""

import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from engine.atomic import write_text
from training.chain import RecordingChain
from training.config import load_config
from training.trainer import Trainer

torch.set_num_threads(2)
config = load_config(Path("training/configs/orchestra.yaml"))
rng = np.random.default_rng(0)
clips = [rng.uniform(0.3, 0.7, (160, config.analysis.n_mels)).astype(np.float32) for _ in range(256)]
labels = np.arange(len(clips)) % 14
devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
seconds: dict[str, list[float]] = {device: [] for device in devices}
with tempfile.TemporaryDirectory() as folder:
    trainers = {}
    for device in devices:
        settings = replace(config.train, epochs=1, batches_per_epoch=5)
        trainer = Trainer(settings, config.analysis.band_centres_hz, clips, labels, 14, Path(folder) / device,
                          chain=RecordingChain(config.augment, config.analysis), device=device)
        trainer.initialise()
        trainer.fit(progress=False)  # start-up: not timed
        trainer.settings = replace(settings, epochs=10**6, batches_per_epoch=10)
        trainers[device] = trainer
    for _ in range(3):
        for device, trainer in trainers.items():
            started = time.perf_counter()
            trainer._run_epoch(progress=False)
            if device == "cuda":
                torch.cuda.synchronize()
            seconds[device].append((time.perf_counter() - started) / 10)
result = {"gpu": torch.cuda.get_device_name() if "cuda" in devices else None, "torch": torch.__version__,
          "seconds_per_batch": {device: float(np.median(values)) for device, values in seconds.items()},
          "all": seconds}
print(json.dumps(result, indent=1))
if len(sys.argv) > 1:
    write_text(sys.argv[1], json.dumps(result, indent=1))
