"""A benchmark's table as it is kept: its rows as JSON beside the same rows as Markdown, each file written whole
or not at all (``engine.atomic.write_text``), and printed as one or the other."""

from __future__ import annotations

import json
from pathlib import Path

from engine.atomic import write_text


def keep_table(folder: Path, name: str, rows: list[dict], markdown: str) -> None:
    """``folder/name.json`` (the rows) and ``folder/name.md`` (``markdown``, their table)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / f"{name}.json", json.dumps(rows, indent=1) + "\n")
    write_text(folder / f"{name}.md", markdown + "\n")


def show_table(rows: list[dict], markdown: str, as_json: bool) -> None:
    """Print the rows as JSON (``--json``) or their Markdown table."""
    print(json.dumps(rows, indent=1) if as_json else markdown)
