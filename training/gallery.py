"""The prototype gallery: one page to hear and see a model's prototypes (``training.prototypes --html``).

The paper's point is a model you can hear; 28 WAV files and a stacked picture are not a way to hear it.
The page groups the prototypes by class; each has its spectrum, a player and its reference pitch.  Every
spectrum is drawn on one dB scale and one log-frequency axis, so prototypes compare by eye.  With labelled
data the page adds each class's typical transformed prototype (what the model renders for that instrument)
and the confusion matrix.  Nothing is fetched: the spectra are inline SVG and the WAVs lie beside the page
(relative links), so the folder can be copied anywhere and opened from disk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

import numpy as np

from engine.mel import LOG_SCALE, x_to_db

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FREQUENCY_TICKS_HZ = (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
DB_STEP = 20
SVG_WIDTH, SVG_HEIGHT = 420, 150
MARGIN_LEFT, MARGIN_BOTTOM, MARGIN_TOP = 42, 22, 6

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
h1 { margin-bottom: 0.2em; } p.summary { color: #555; margin-top: 0; }
section.class { margin: 1.2em 0; padding: 0.6em 1em; background: white; border: 1px solid #ddd; border-radius: 6px; }
div.sounds { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; } figcaption { font-size: 0.9em; margin-bottom: 0.2em; }
audio { width: 420px; display: block; }
svg text { font-size: 10px; fill: #555; } svg .trace { fill: none; stroke: #1f5fa8; stroke-width: 1.5; }
svg .body { fill: none; stroke: #c0504d; stroke-width: 1; stroke-dasharray: 3 2; }
svg .grid { stroke: #e4e4e4; } svg .frame { fill: none; stroke: #999; }
table.confusion { border-collapse: collapse; font-size: 0.85em; }
table.confusion td, table.confusion th { border: 1px solid #ddd; padding: 2px 5px; text-align: right; }
table.confusion th.row { text-align: left; }
"""


@dataclass(frozen=True)
class Sound:
    """One spectrum on the page and the WAV that plays it (a file name beside the page)."""

    title: str
    frame: np.ndarray  # a log-mel frame in model units
    audio: str
    seconds: float
    detail: str = ""
    body: np.ndarray | None = None  # the part of ``frame`` that stays put when it is transposed, if any


def note_name(midi: float | None) -> str:
    """``57.0`` → ``"A3 (MIDI 57.0)"``; ``"unknown"`` for a prototype that never won a note."""
    if midi is None or not math.isfinite(midi):
        return "unknown"
    nearest = round(midi)
    return f"{NOTE_NAMES[nearest % 12]}{nearest // 12 - 1} (MIDI {midi:.1f})"


def db_range(frames: list[np.ndarray]) -> tuple[float, float]:
    """The one dB scale every spectrum is drawn on: all their levels, widened to whole steps."""
    levels = np.concatenate([x_to_db(frame) for frame in frames])
    return math.floor(levels.min() / DB_STEP) * DB_STEP, math.ceil(levels.max() / DB_STEP) * DB_STEP


def spectrum_svg(frame: np.ndarray, centres_hz: np.ndarray, scale: tuple[float, float],
                 body: np.ndarray | None = None) -> str:
    """A spectrum in dB against log frequency, with its axes, as an inline SVG element; ``body`` (log
    units, added to the transposed prototype) dashed around 0 dB of the same scale."""
    low_db, high_db = scale
    log_low, log_high = math.log(centres_hz[0]), math.log(centres_hz[-1])
    plot_w, plot_h = SVG_WIDTH - MARGIN_LEFT - 4, SVG_HEIGHT - MARGIN_BOTTOM - MARGIN_TOP

    def x_of(hz: float) -> float:
        return MARGIN_LEFT + (math.log(hz) - log_low) / (log_high - log_low) * plot_w

    def y_of(db: float) -> float:
        return MARGIN_TOP + (high_db - db) / (high_db - low_db) * plot_h

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{SVG_WIDTH}" height="{SVG_HEIGHT}" role="img">']
    for db in range(int(low_db), int(high_db) + 1, DB_STEP):
        y = y_of(db)
        parts.append(f'<line class="grid" x1="{MARGIN_LEFT}" x2="{SVG_WIDTH - 4}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text x="{MARGIN_LEFT - 4}" y="{y + 3:.1f}" text-anchor="end">{db}</text>')
    for hz in FREQUENCY_TICKS_HZ:
        if centres_hz[0] <= hz <= centres_hz[-1]:
            x = x_of(hz)
            label = f"{hz // 1000}k" if hz >= 1000 else str(hz)
            parts.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{MARGIN_TOP}" y2="{MARGIN_TOP + plot_h}"/>')
            parts.append(f'<text x="{x:.1f}" y="{SVG_HEIGHT - 8}" text-anchor="middle">{label}</text>')
    parts.append(f'<text x="2" y="{SVG_HEIGHT - 8}">Hz</text>')
    parts.append(f'<text x="2" y="{MARGIN_TOP + 8}">dB</text>')
    points = " ".join(f"{x_of(hz):.1f},{y_of(db):.1f}" for hz, db in zip(centres_hz, x_to_db(frame), strict=True))
    parts.append(f'<polyline class="trace" points="{points}"/>')
    if body is not None:
        gains = 10.0 * LOG_SCALE * np.asarray(body, dtype=np.float64)  # a log-unit offset in dB
        points = " ".join(f"{x_of(hz):.1f},{y_of(float(np.clip(db, low_db, high_db))):.1f}"
                          for hz, db in zip(centres_hz, gains, strict=True))
        parts.append(f'<polyline class="body" points="{points}"/>')
    parts.append(f'<rect class="frame" x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{plot_w}" height="{plot_h}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _figure(sound: Sound, centres_hz: np.ndarray, scale: tuple[float, float]) -> str:
    detail = f" · {escape(sound.detail)}" if sound.detail else ""
    return (f'<figure><figcaption><b>{escape(sound.title)}</b>{detail}</figcaption>'
            f'{spectrum_svg(sound.frame, centres_hz, scale, sound.body)}'
            f'<audio controls preload="metadata" src="{escape(sound.audio)}" data-seconds="{sound.seconds:g}">'
            f'</audio></figure>')


def confusion_table(confusion: np.ndarray, class_names: list[str]) -> str:
    """Rows: true class; columns: decided class; each cell's count, shaded by its share of the row."""
    confusion = np.asarray(confusion)
    shares = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    header = "".join(f"<th>{escape(name)}</th>" for name in class_names)
    rows = []
    for name, counts, row_shares in zip(class_names, confusion, shares, strict=True):
        cells = "".join(f'<td style="background: rgba(31, 95, 168, {share:.2f})">{count}</td>'
                        for count, share in zip(counts, row_shares, strict=True))
        rows.append(f'<tr><th class="row">{escape(name)}</th>{cells}</tr>')
    return (f'<table class="confusion"><tr><th>true \\ decided</th>{header}</tr>{"".join(rows)}</table>')


def gallery_page(title: str, summary: str, classes: dict[str, list[Sound]], typical: dict[str, Sound],
                 centres_hz: np.ndarray, confusion: str = "") -> str:
    """The whole page: per class its prototypes (and its typical transformed prototype), then ``confusion``
    (an HTML fragment, empty without data)."""
    frames = [sound.frame for sounds in classes.values() for sound in sounds] + [s.frame for s in typical.values()]
    scale = db_range(frames)
    sections = []
    for name, sounds in classes.items():
        shown = [*sounds, *([typical[name]] if name in typical else [])]
        figures = "".join(_figure(sound, centres_hz, scale) for sound in shown)
        sections.append(f'<section class="class" id="{escape(name)}"><h2>{escape(name)}</h2>'
                        f'<div class="sounds">{figures}</div></section>')
    matrix = f"<h2>Confusion matrix</h2>{confusion}" if confusion else ""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
            f'<p class="summary">{escape(summary)}</p>{"".join(sections)}{matrix}</body></html>\n')
