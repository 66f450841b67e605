"""The terminal view of a running engine: what it hears, how loud, how late, how loaded.

On a terminal it is a ``rich`` Live panel redrawn a few times a second; anywhere else (a pipe, a log
file, a test) it prints one plain line per second of audio, so logs stay readable and greppable.  The
display is fed :class:`View` snapshots by the main thread; nothing here runs in the audio callback.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Self, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from engine.identify import Identification

METER_FLOOR_DB = -60.0
BAR_WIDTH = 30
REFRESH_PER_SECOND = 10


@dataclass(frozen=True)
class View:
    """Everything the display shows at one moment."""

    identification: Identification
    mode: str
    target: str | None
    input_db: float
    output_db: float
    latency: str  # the total and its parts (latency_text)
    dsp_load: float
    xruns: int
    deadline_misses: int
    elapsed_s: float
    mix: float = 1.0
    transpose: float = 0.0
    register_shift: int = 0  # octaves (in semitones) register: target moves the current passage by
    message: str = ""  # what the last key or MIDI message did
    keys: str = ""  # the keys that act, when the terminal's keys are read
    stream: str = ""  # rate, block and where the engine runs, on a device
    offline: bool = False  # a file without a device: no xruns or deadlines to count
    total_s: float = 0.0  # a file's length (0: a live run, which has none)
    eta_s: float | None = None  # a file job's time left at its speed so far


def latency_text(latency: dict) -> str:
    """The total and its parts: the engine's by cause, then the shifter's, the worker's and the device's where
    there are; and how late the harmonic carrier's pitch follows, where it does."""
    parts = {**latency["engine_parts_ms"], **{name: latency.get(f"{name}_ms", 0.0)
                                               for name in ("shifter", "worker", "stream_in", "stream_out")}}
    named = " + ".join(f"{name.replace('_', ' ')} {ms:.1f}" for name, ms in parts.items() if ms)
    pitch_lag = latency.get("pitch_lag_ms", 0.0)
    return (f"{latency['total_ms']:.1f} ms" + (f" ({named})" if named else "")
            + (f", pitch {pitch_lag:.0f} ms behind" if pitch_lag else ""))


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """A text bar ``fraction`` (clipped to 0..1) full, in eighth-block steps."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    partial = " ▏▎▍▌▋▊▉"[eighths % 8] if eighths % 8 else ""
    return ("█" * (eighths // 8) + partial).ljust(width)


def meter_fraction(db: float) -> float:
    return (db - METER_FLOOR_DB) / -METER_FLOOR_DB


def setting(view: View) -> str:
    """The mode, and in transfer mode the target, mix, transposition and the register's octaves (identify mode
    hears none of them)."""
    if view.mode != "transfer":
        return view.mode
    register = f"  register {view.register_shift:+d}" if view.register_shift else ""
    return f"{view.mode} → {view.target}  mix {view.mix:.2f}  transpose {view.transpose:+g}{register}"


def heard(identification: Identification) -> str:
    """The readout in words: the class (marked when held through a pause), or nothing confident and why."""
    if identification.label is None:
        return f"- ({identification.reason})" if identification.reason else "-"
    return f"{identification.label} (held)" if identification.held else identification.label


def position(view: View) -> str:
    """Seconds of audio so far; for a file also of how many, the share done and the time left."""
    if not view.total_s:
        return f"{view.elapsed_s:6.1f}s"
    done = f"{view.elapsed_s:6.1f}/{view.total_s:.1f}s {100 * view.elapsed_s / view.total_s:3.0f} %"
    return done + (f" ETA {view.eta_s:.0f} s" if view.eta_s is not None else "")


def problems(view: View) -> str:
    """The device's xruns and deadline misses (nothing for a file without a device, where they mean nothing)."""
    return "" if view.offline else f"xruns {view.xruns}  misses {view.deadline_misses}  "


def plain_line(view: View) -> str:
    """One log line: time, label and top probabilities, levels, latency, load, problems."""
    top = " ".join(f"{name} {p:.2f}" for name, p in view.identification.top(3))
    return (f"{position(view)}  {heard(view.identification):<12} [{top}]  "
            f"in {view.input_db:6.1f} dB  out {view.output_db:6.1f} dB  latency {view.latency}  "
            f"load {view.dsp_load:.2f}  {problems(view)}{setting(view)}")


def render(view: View, top: int = 5) -> Group:
    """The rich panel: class bars (none while the readout names nothing: bars would look like a result),
    level meters, status line, the last control's message and the keys."""
    classes = Table.grid(padding=(0, 1))
    shown = view.identification.top(top) if view.identification.label is not None else []
    for name, probability in shown:
        style = "bold green" if name == view.identification.label else "cyan"
        classes.add_row(Text(name, style=style), Text(bar(probability), style=style), f"{probability:5.1%}")
    meters = Table.grid(padding=(0, 1))
    for name, db in (("in", view.input_db), ("out", view.output_db)):
        style = "red" if db > -1.0 else "yellow" if db > -12.0 else "green"
        meters.add_row(name, Text(bar(meter_fraction(db)), style=style), f"{db:6.1f} dB")
    load_style = "red" if view.dsp_load > 0.8 else "default"
    status = Text.assemble(
        (f"DSP load {view.dsp_load:.0%}", load_style),
        f"   {problems(view)}{position(view)}",
    )
    lines = [Text(f"hearing: {heard(view.identification)}", style="bold"), classes, Text(""), meters,
             Text(setting(view)), Text(f"latency {view.latency}" + (f"   {view.stream}" if view.stream else "")),
             status]
    if view.message:
        lines.append(Text(view.message, style="yellow"))
    if view.keys:
        lines.append(Text(f"keys: {view.keys}", style="dim"))
    return Group(*lines)


class Display:
    """Live panel on a terminal, one plain line per second elsewhere.  Use as a context manager."""

    def __init__(self, stream: TextIO | None = None, force_plain: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.interactive = not force_plain and self.stream.isatty()
        self._live: Live | None = None
        self._next_line_s = 1.0
        self._last_draw = 0.0

    def __enter__(self) -> Self:
        if self.interactive:
            console = Console(file=self.stream)
            self._live = Live(console=console, refresh_per_second=REFRESH_PER_SECOND, transient=False)
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def update(self, view: View) -> None:
        """Show ``view``: redraw (at most ``REFRESH_PER_SECOND``), or a plain line per second of audio."""
        if self._live is not None:
            now = time.monotonic()
            if now - self._last_draw >= 1.0 / REFRESH_PER_SECOND:
                self._live.update(render(view))
                self._last_draw = now
        elif view.elapsed_s >= self._next_line_s:
            print(plain_line(view), file=self.stream, flush=True)
            self._next_line_s = float(int(view.elapsed_s)) + 1.0
