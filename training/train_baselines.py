"""Train the paper's baselines on exactly the split of a prototype run, so their figures sit side by side.

    python -m training.train_baselines --config training/configs/orchestra.yaml
    python -m training.evaluate --preset runs/orchestra/cnn.pt --data data --split runs/orchestra/split.csv

Reads the config's data section and split file (drawing the split if the prototype run has not yet) and
writes ``cnn.pt`` (direct CNN classifier) and ``autoencoder-kmeans.pt`` into the config's output folder.
Both get the same level augmentation as the prototype model (``--gain-offset``, x units; 0 for the
plain paper baselines) and the config's recording chain (its ``augment`` section).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from engine.atomic import write_text
from engine.errors import ProtophoneError
from training.allocator import keep_freed_memory
from training.baselines import train_autoencoder_kmeans, train_cnn
from training.chain import RecordingChain
from training.config import ConfigError, load_config
from training.layouts import DatasetError
from training.splits import SplitError
from training.train import load_split, training_clips
from training.trainer import TrainSettings


def same_crops_epochs(train: TrainSettings, n_clips: int) -> int:
    """Epochs over ``n_clips`` clips that give the baseline as many training crops as the prototype model gets
    (``train.epochs`` of ``batches_per_epoch`` batches of ``batch_size``; one pass when batches_per_epoch is 0):
    a small corpus (28 speakers) then trains its CNN as long as a large one (14 instruments)."""
    per_epoch = train.batches_per_epoch * train.batch_size if train.batches_per_epoch else n_clips
    return max(1, math.ceil(train.epochs * per_epoch / max(n_clips, 1)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.train_baselines", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, type=Path, help="the prototype run's YAML configuration")
    parser.add_argument("--cnn-epochs", type=int,
                        help="direct CNN epochs (default: as many training crops as the prototype model sees, "
                             "train.epochs x batches_per_epoch x batch_size; 12 for the orchestra recipe)")
    parser.add_argument("--ae-epochs", type=int, help="autoencoder epochs (default: half the CNN's)")
    parser.add_argument("--gain-offset", type=float, default=0.1, help="level augmentation in x units (default 0.1)")
    parser.add_argument("--only", choices=("cnn", "autoencoder"), help="train just one of the two")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, len(os.sched_getaffinity(0))))  # CPUs this process may use
    keep_freed_memory()  # a batch's tensors reuse the last batch's pages (training.allocator)
    try:
        config = load_config(args.config)
        clips = training_clips(config, load_split(config), not args.no_progress)
    except (ConfigError, DatasetError, SplitError, ProtophoneError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    cnn_epochs = args.cnn_epochs or same_crops_epochs(config.train, len(clips.features))
    ae_epochs = args.ae_epochs or max(1, cnn_epochs // 2)
    names = sorted(set(clips.labels))
    labels = np.array([names.index(label) for label in clips.labels])
    chain = RecordingChain(config.augment, config.analysis)  # passes crops through when nothing is asked
    common = {"gain_offset": args.gain_offset, "seed": config.train.seed, "progress": not args.no_progress,
              "chain": chain, "analysis": config.analysis}
    config.output.mkdir(parents=True, exist_ok=True)
    timings = {}
    if args.only in (None, "cnn"):
        started = time.perf_counter()
        train_cnn(clips.features, labels, names, epochs=cnn_epochs, **common).save(config.output / "cnn.pt")
        timings["cnn_seconds"] = time.perf_counter() - started
    if args.only in (None, "autoencoder"):
        started = time.perf_counter()
        model = train_autoencoder_kmeans(clips.features, labels, names, epochs=ae_epochs, **common)
        model.save(config.output / "autoencoder-kmeans.pt")
        timings["autoencoder_seconds"] = time.perf_counter() - started
    record = config.output / "baselines.json"
    earlier = json.loads(record.read_text()) if args.only and record.is_file() else {}  # the other one's timing
    write_text(record, json.dumps({**earlier, **timings, **vars(args), "cnn_epochs": cnn_epochs,
                                   "ae_epochs": ae_epochs, "config": str(args.config)}, indent=1, default=str))
    print(f"baselines for {config.name} written to {config.output}: "
          + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
