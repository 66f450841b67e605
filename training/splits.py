"""Train/test splits that are made once, written to a CSV file and reused.

A split is a file so that a preset, its baseline and a later evaluation are all scored on the same held-out
files, even after the dataset folder grows or the code that draws splits changes.
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.atomic import replacing
from training.layouts import Item

Split = dict[str, list[Item]]
SPLIT_COLUMNS = ["split", "path", "label", "library", "midi", "variant"]


class SplitError(ValueError):
    """A split that cannot be made or read; the message names the file or the library."""


def split_items(items: list[Item], test_fraction: float = 0.2, seed: int = 0, by_chapter: bool = False) -> Split:
    """Per-item train/test split, stratified by label; ``by_chapter``: whole chapters (``Item.variant`` of
    a LibriSpeech-layout item) go to one side, so no chapter is in two splits.

    Each label with n >= 2 items (chapters) puts round(n * test_fraction), clipped to 1..n-1, into test, so
    every such class is on both sides; a label with one stays in train.  Deterministic for a given seed
    and set of items, whatever their order: units are sorted before the seeded shuffle.
    """
    if not 0.0 < test_fraction < 1.0:
        raise SplitError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction}")
    by_label: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_label[item.label].append(item)
    unit: Callable[[Item], str] = (lambda item: item.variant) if by_chapter else (lambda item: str(item.path))
    rng = np.random.default_rng(seed)
    split: Split = {"train": [], "test": []}
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda item: str(item.path))
        units = sorted({unit(item) for item in group})
        order = rng.permutation(len(units))
        n_test = min(max(round(len(units) * test_fraction), 1), len(units) - 1)
        held = {units[i] for i in order[:n_test]}
        for item in group:
            split["test" if unit(item) in held else "train"].append(item)
    return split


def leave_library_out(items: list[Item], test_library: str) -> Split:
    """Train on every other library, test on ``test_library`` (the generalisation figure)."""
    libraries = sorted({item.library for item in items})
    if test_library not in libraries:
        raise SplitError(f"library {test_library!r} is not among the items' libraries {libraries}")
    if len(libraries) < 2:
        raise SplitError(f"leaving {test_library!r} out leaves nothing to train on (it is the only library)")
    return {"train": [item for item in items if item.library != test_library],
            "test": [item for item in items if item.library == test_library]}


def _relative(path: Path, root: Path) -> str:
    """Path relative to root where it lies below it (portable split files), absolute otherwise."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def write_split(path: str | Path, split: Split, root: str | Path) -> None:
    """Write the split as CSV (split, path relative to root, label, library, midi, variant), atomically."""
    path, root = Path(path), Path(root).resolve()
    with replacing(path) as temporary, open(temporary, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(SPLIT_COLUMNS)
        for name, items in split.items():
            for item in items:
                writer.writerow([name, _relative(item.path, root), item.label, item.library,
                                 "" if item.midi is None else item.midi, item.variant])


def read_split(path: str | Path, root: str | Path) -> Split:
    """Read a split file; every file it names must exist below ``root`` (else :class:`SplitError`)."""
    path, root = Path(path), Path(root).resolve()
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or not set(SPLIT_COLUMNS) <= set(reader.fieldnames):
                raise SplitError(f"{path} is not a split file (needs columns {', '.join(SPLIT_COLUMNS)})")
            rows = list(reader)
    except OSError as exc:
        raise SplitError(f"cannot read split file {path}: {exc.strerror or exc}") from exc
    split: Split = {}
    missing = []
    for row in rows:
        file = root / row["path"]
        if not file.is_file():
            missing.append(file)
        midi = int(row["midi"]) if row["midi"] else None
        split.setdefault(row["split"], []).append(Item(file, row["label"], row["library"], midi, row["variant"]))
    if missing:
        shown = ", ".join(str(m) for m in missing[:3])
        raise SplitError(f"split file {path} names {len(missing)} file(s) missing under {root}, e.g. {shown}; "
                         f"point it at the right data folder or delete {path} to draw a new split")
    return split


def load_or_create_split(path: str | Path, items: list[Item], make: Callable[[list[Item]], Split],
                         root: str | Path | None = None) -> Split:
    """Reuse the split in ``path`` if it exists, else ``make(items)`` and write it there.

    ``root`` (what paths in the file are relative to) defaults to the items' common folder.  An existing
    file wins even when ``items`` has changed since: that is what keeps the held-out set fixed.
    """
    if root is None:
        if not items:
            raise SplitError(f"no items to split for {path}")
        root = Path(os.path.commonpath([item.path.parent for item in items]))
    if Path(path).is_file():
        return read_split(path, root)
    split = make(items)
    write_split(path, split, root)
    return split
