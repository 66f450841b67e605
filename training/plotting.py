"""Matplotlib for files only: the non-interactive backend, and one way to finish a figure."""

from __future__ import annotations

from pathlib import Path

from engine.atomic import replacing


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed), imported only when a picture is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(figure, path: Path, dpi: int = 100) -> None:
    """Lay out, write and close a figure."""
    figure.tight_layout()
    with replacing(path) as temporary:
        figure.savefig(temporary, dpi=dpi, format=Path(path).suffix.lstrip(".") or "png")
    pyplot().close(figure)
