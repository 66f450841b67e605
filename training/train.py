"""Train a prototype model from a config file, checkpointing every epoch, and export it for the engine.

    python -m training.train --config training/configs/orchestra.yaml
    python -m training.train --config training/configs/orchestra.yaml --resume     # after a kill
    torchrun --nproc_per_node 2 -m training.train --config FILE                      # DDP (gloo on CPU)
    python -m training.train --config FILE --device cuda                             # on a GPU

Writes into the config's ``output`` folder: ``split.csv`` (unless the config names another split file),
``checkpoint.pt`` (atomic, every epoch), ``log.csv`` (loss per epoch), ``model.pt`` (the engine model file)
and ``summary.json``; the model file is also copied to ``export`` when the config names one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist

from engine.atomic import replacing, write_text
from engine.errors import ProtophoneError
from engine.modelfile import torch_device
from training.allocator import keep_freed_memory
from training.chain import RecordingChain
from training.config import ConfigError, RunConfig, load_config
from training.export import export_model
from training.features import ClipSet, load_clips
from training.layouts import DatasetError, Item, scan
from training.splits import Split, SplitError, leave_library_out, load_or_create_split, read_split, split_items
from training.trainer import Trainer, Validation

T = TypeVar("T")


def load_split(config: RunConfig) -> Split:
    """Scan every dataset root and reuse (or draw and write) the run's split.

    With ``data.validation_fraction`` the training side is split once more, per class, into ``train``
    and ``validation`` (seeded, so every run of the config holds out the same notes; whole chapters with
    ``data.split: chapter``).
    """
    items: list[Item] = []
    for root in config.data.roots:
        items.extend(scan(root, config.data.layout, n_speakers=config.data.n_speakers))
    if config.data.unheard_by is not None:
        items = unheard_items(config.data.unheard_by, items)
    split_file = config.data.split_file or config.output / "split.csv"
    by_chapter = config.data.split == "chapter"
    if config.data.split == "library":
        make = lambda found: leave_library_out(found, config.data.test_library)  # noqa: E731 - a one-line choice
    else:
        make = lambda found: split_items(found, config.data.test_fraction, config.data.seed,  # noqa: E731 - as above
                                         by_chapter=by_chapter)
    split = load_or_create_split(split_file, items, make)
    if config.data.validation_fraction > 0:
        held = split_items(split["train"], config.data.validation_fraction, config.data.seed, by_chapter)
        split = {**split, "train": held["train"], "validation": held["test"]}
    return split


def unheard_items(split_file: Path, items: list[Item]) -> list[Item]:
    """The ``items`` on the test side of another run's ``split_file``: what that run's model never heard."""
    if not split_file.is_file():
        raise SplitError(f"data.unheard_by: {split_file} not found; train the run that writes it first")
    root = Path(os.path.commonpath([item.path.parent for item in items])) if items else Path(".")
    unheard = {item.path for item in read_split(split_file, root)["test"]}
    kept = [item for item in items if item.path in unheard]
    if not kept:
        raise SplitError(f"data.unheard_by: no item of the data roots is on the test side of {split_file}")
    return kept


def training_clips(config: RunConfig, split: Split, progress: bool, side: str = "train") -> ClipSet:
    jobs = 1 if dist.is_initialized() else min(2, len(os.sched_getaffinity(0)))  # the CPUs this run may use
    return load_clips(split[side], config.analysis, config.data.cache, progress=progress, jobs=jobs)


def rank_zero_first(make: Callable[[], T]) -> T:
    """Rank 0 writes the shared files (split, feature cache) while the other ranks wait, then they read them.

    Without this every rank would draw and write the split and compute every clip's features at once.
    """
    if not dist.is_initialized():
        return make()
    if dist.get_rank() == 0:
        made = make()
        dist.barrier()
        return made
    dist.barrier()
    return make()


def run(config: RunConfig, resume: bool, progress: bool, device: str = "cpu") -> dict:
    started = time.perf_counter()
    split = rank_zero_first(lambda: load_split(config))
    clips = rank_zero_first(lambda: training_clips(config, split, progress))
    class_names = sorted(set(clips.labels))
    labels = np.array([class_names.index(label) for label in clips.labels])
    validation = None
    if "validation" in split:
        held = rank_zero_first(lambda: training_clips(config, split, progress, side="validation"))
        validation = Validation(held.features, np.array([class_names.index(label) for label in held.labels]),
                                config.analysis)
    chain = RecordingChain(config.augment, config.analysis)  # passes crops through when nothing is asked
    trainer = Trainer(config.train, config.analysis.band_centres_hz, clips.features, labels, len(class_names),
                      config.output, chain=chain, validation=validation,
                      libraries=[item.library for item in clips.items], device=device)
    if trainer.checkpoint_path.exists():
        if not resume:
            raise ConfigError(f"{trainer.checkpoint_path} exists: pass --resume to continue it, "
                              f"or delete {config.output} to start again")
        trainer.load_checkpoint()
        trainer.truncate_log()
    else:
        trainer.initialise()
    trainer.wrap_for_distributed()
    trainer.fit(progress=progress)
    trainer.keep_best()
    summary = {"name": config.name, "epochs": trainer.state.epoch, "final_stage": trainer.stage_name,
               "train_clips": len(clips.features), "skipped_files": [str(p) for p, _ in clips.skipped],
               "validation_clips": 0 if validation is None else len(validation.clips),
               "best_epoch": trainer.state.best_epoch if validation is not None else trainer.state.epoch,
               "best_validation_oa": trainer.state.best_validation_oa if validation is not None else None,
               "augment": asdict(config.augment),
               "classes": class_names, "seconds": time.perf_counter() - started,
               "processes": trainer.world, "device": device, "settings": asdict(config.train),
               "kernels": torch.backends.cpu.get_cpu_capability()}  # the same weights need the same (rebuild.py)
    trainer.model.cpu()  # the model file is written from the CPU, wherever it trained
    if trainer.rank == 0:
        model_path = config.output / "model.pt"
        supervised = config.train.mode == "supervised"
        export_model(trainer.model, config.analysis, class_names,
                     trainer.prototype_classes if supervised else None, clips.features, labels,
                     [item.midi for item in clips.items], model_path,
                     extra={"name": config.name, "mode": config.train.mode, "config": str(config.source)})
        if config.export:
            with replacing(config.export) as temporary:
                shutil.copyfile(model_path, temporary)
        write_text(config.output / "summary.json", json.dumps(summary, indent=1))
    if dist.is_initialized():
        dist.barrier()  # every rank leaves together, after rank 0 has written the model
    return summary


def on_other_data(config: RunConfig, folder: Path) -> RunConfig:
    """``config`` trained on ``folder``: its own output folder and split, and no export over a shipped preset."""
    if not folder.is_dir():
        raise ConfigError(f"--data {folder}: no such folder")
    output = config.output.with_name(f"{config.output.name}-{folder.resolve().name}")
    return replace(config, data=replace(config.data, roots=(folder,), split_file=None), output=output, export=None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, type=Path, help="YAML run configuration (see training/configs)")
    parser.add_argument("--resume", action="store_true", help="continue from the output folder's checkpoint")
    parser.add_argument("--data", type=Path, metavar="FOLDER",
                        help="train on this dataset folder instead of the config's data.roots; the run then goes to "
                             "<output>-<folder name> and exports no preset")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where the model trains (default: cpu); the batches are drawn on the CPU either way, "
                             "so a seed draws the same data on both")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    args = parser.parse_args(argv)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed and args.device == "cuda":
        print("error: --device cuda trains in one process; run it without torchrun", file=sys.stderr)
        return 2
    if distributed:
        dist.init_process_group("gloo")
    torch.set_num_threads(1 if distributed else min(2, len(os.sched_getaffinity(0))))  # CPUs this process may use
    keep_freed_memory()  # a batch's tensors reuse the last batch's pages (training.allocator)
    try:
        device = torch_device(args.device)
        config = load_config(args.config)
        if args.data is not None:
            config = on_other_data(config, args.data)
        summary = run(config, args.resume, not args.no_progress, device)
    except (ConfigError, DatasetError, SplitError, ProtophoneError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        if distributed:
            dist.destroy_process_group()
    if summary["skipped_files"]:
        print(f"skipped {len(summary['skipped_files'])} unreadable file(s): see summary.json", file=sys.stderr)
    print(f"trained {summary['name']}: {summary['epochs']} epochs in {summary['seconds']:.0f} s on {device} "
          f"({summary['train_clips']} clips, {len(summary['classes'])} classes, {summary['kernels']} kernels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
