"""Live control: keys in the terminal and MIDI messages, each applied with ``Processor.set`` between blocks.

A performer changes the target, the mix, the transposition and the mode while playing, and saves what
sounds right as a preset.  Keys are read from the terminal without Enter (cbreak mode) and MIDI arrives
on mido's own thread; both only queue what they read, and the main thread applies it when it polls
(:meth:`LiveControls.poll`, ten times a second), so the audio callback never waits for a control and
``Processor.set`` is only ever called from one thread.

MIDI (``--midi PORT``, mido with python-rtmidi, ALSA or JACK): a program change ``p`` selects the model's
class ``p`` (modulo the number of classes) as the target and switches to transfer; a control change on
``MidiMap.mix_cc`` sets the mix (0..127 → 0..1), on ``MidiMap.transpose_cc`` the transposition (64 is none,
0 and 127 are -24 and +24 semitones).
"""

from __future__ import annotations

import os
import queue
import select
import sys
import termios
import tty
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from engine.errors import ProtophoneError
from engine.parameters import SETTINGS
from engine.preset import save_preset
from engine.processor import Processor

MIX_STEP = 0.1
TRANSPOSE_STEP = 1.0
#: Semitones at either end of the transposition controller.
MIDI_TRANSPOSE_RANGE = 24.0
MIDI_APIS = ("alsa", "jack")
#: mido's backend for each MIDI API (python-rtmidi's names).
MIDI_BACKENDS = {"alsa": "mido.backends.rtmidi/LINUX_ALSA", "jack": "mido.backends.rtmidi/UNIX_JACK"}
#: ``--midi virtual``: the engine opens its own port instead of joining an existing one.
VIRTUAL_PORT = "virtual"
VIRTUAL_PORT_NAME = "control"


class MidiError(ProtophoneError):
    """A MIDI port that cannot be opened as asked."""


@dataclass(frozen=True)
class MidiMap:
    """Which control change moves which setting (``--midi-mix-cc``, ``--midi-transpose-cc``)."""

    mix_cc: int = 1  # the modulation wheel
    transpose_cc: int = 2  # the breath controller, free on most keyboards


class LiveControls:
    """The actions a key or a MIDI message can take on a running processor, the sources that ask for them,
    and where a save goes: ``save_path`` (``--save-preset``), else a new dated file in the current folder."""

    def __init__(self, proc: Processor, keys: TerminalKeys | None = None, save_path: Path | None = None) -> None:
        self.proc = proc
        self.keys = keys
        self.midi: MidiInput | None = None
        self.save_path = save_path
        self.classes = list(proc.metadata.class_names)
        self.message = ""  # what the last action did, for the view
        self._pending: queue.SimpleQueue[Callable[[], str]] = queue.SimpleQueue()

    # --------------------------------------------------------------------------- the actions
    def step_target(self, step: int) -> str:
        """The next (``step`` 1) or previous (-1) class as the target, in transfer mode."""
        current = self.proc.preset.target
        index = (self.classes.index(current) + step) % len(self.classes) if current in self.classes else 0
        return self.apply(mode="transfer", target=self.classes[index])

    def choose_target(self, index: int) -> str:
        """Class ``index`` (modulo the number of classes) as the target, in transfer mode."""
        return self.apply(mode="transfer", target=self.classes[index % len(self.classes)])

    def nudge(self, name: str, delta: float) -> str:
        """Move ``mix`` or ``transpose`` by ``delta``, held within its bounds."""
        setting = SETTINGS[name]
        value = float(getattr(self.proc.preset, name)) + delta
        return self.apply(**{name: round(min(max(value, setting.low), setting.high), 3)})

    def toggle_mode(self) -> str:
        """Identify ↔ transfer; transfer with no target yet takes the first class."""
        if self.proc.preset.mode == "transfer":
            return self.apply(mode="identify")
        return self.apply(mode="transfer", target=self.proc.preset.target or self.classes[0])

    def save(self) -> str:
        """The current settings as a preset file: ``save_path``, else a new dated file (never an earlier one)."""
        path = self.save_path or Path(f"protophone-{datetime.now():%Y%m%d-%H%M%S}.yaml")
        suffix = 1
        while self.save_path is None and path.exists():
            path, suffix = path.with_name(f"{path.stem.rsplit('+', 1)[0]}+{suffix}.yaml"), suffix + 1
        try:
            save_preset(self.proc.preset, path)
        except (OSError, ProtophoneError) as error:
            return f"not saved: {error}"
        return f"saved {path}"

    def apply(self, **changes: object) -> str:
        """``Processor.set(**changes)``; what changed, or why it was refused, as the message."""
        try:
            self.proc.set(**changes)
        except ValueError as error:
            return f"refused: {error}"
        return ", ".join(f"{name} {value}" for name, value in changes.items())

    # ------------------------------------------------------------------------ the sources
    def queue_action(self, action: Callable[[], str]) -> None:
        """Called from any thread (mido's): applied by the next :meth:`poll`."""
        self._pending.put(action)

    def poll(self) -> str:
        """Read the keys, apply every queued action in order; the latest action's message."""
        if self.keys is not None:
            for key in self.keys.read():
                action = key_action(self, key)
                if action is not None:
                    self._pending.put(action)
        while True:
            try:
                action = self._pending.get_nowait()
            except queue.Empty:
                return self.message
            self.message = action()

    def close(self) -> None:
        """Give the terminal back and close the MIDI port."""
        for source in (self.keys, self.midi):
            if source is not None:
                source.close()
        self.keys = self.midi = None


#: Key → (what it does, for the help line; the action).
KEYS: dict[str, tuple[str, Callable[[LiveControls], str]]] = {
    "]": ("next target", lambda c: c.step_target(1)),
    "[": ("previous target", lambda c: c.step_target(-1)),
    "+": ("mix up", lambda c: c.nudge("mix", MIX_STEP)),
    "-": ("mix down", lambda c: c.nudge("mix", -MIX_STEP)),
    ">": ("transpose up", lambda c: c.nudge("transpose", TRANSPOSE_STEP)),
    "<": ("transpose down", lambda c: c.nudge("transpose", -TRANSPOSE_STEP)),
    "m": ("identify/transfer", LiveControls.toggle_mode),
    "s": ("save preset", LiveControls.save),
}
#: Keys that do what another does without Shift.
KEY_ALIASES = {"=": "+", "_": "-", ".": ">", ",": "<", "M": "m", "S": "s"}


def key_action(controls: LiveControls, key: str) -> Callable[[], str] | None:
    """The action a key stands for (None for keys that do nothing)."""
    entry = KEYS.get(KEY_ALIASES.get(key, key))
    if entry is None:
        return None
    act = entry[1]
    return lambda: act(controls)


def keys_help() -> str:
    return "   ".join(f"{key} {meaning}" for key, (meaning, _) in KEYS.items())


class TerminalKeys:
    """The terminal's keys one by one, without Enter or echo (cbreak), read without blocking.

    The terminal's settings are restored on close, also after an error or Ctrl-C (Ctrl-C still interrupts:
    cbreak keeps signals)."""

    def __init__(self, stream: TextIO = sys.stdin) -> None:
        self.fd = stream.fileno()
        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)

    @classmethod
    def if_terminal(cls, stream: TextIO = sys.stdin) -> TerminalKeys | None:
        """Keys from ``stream`` when it is a terminal; None otherwise (a pipe, a service, a test)."""
        try:
            return cls(stream) if stream.isatty() else None
        except (OSError, ValueError, termios.error):
            return None

    def read(self) -> str:
        """Every key typed since the last read ('' for none)."""
        keys = ""
        while select.select([self.fd], [], [], 0)[0]:
            chunk = os.read(self.fd, 64)
            if not chunk:
                break
            keys += chunk.decode(errors="ignore")
        return keys

    def close(self) -> None:
        termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)


def midi_action(controls: LiveControls, mapping: MidiMap, message: Any) -> Callable[[], str] | None:
    """What a MIDI message asks of ``controls`` (None for a message that maps to nothing)."""
    if message.type == "program_change":
        program = message.program
        return lambda: controls.choose_target(program)
    if message.type == "control_change" and message.control == mapping.mix_cc:
        mix = round(message.value / 127.0, 3)
        return lambda: controls.apply(mix=mix)
    if message.type == "control_change" and message.control == mapping.transpose_cc:
        semitones = float(round((message.value - 64) / 64.0 * MIDI_TRANSPOSE_RANGE))
        return lambda: controls.apply(transpose=semitones)
    return None


class MidiInput:
    """A MIDI input port whose messages become actions on ``controls`` (queued from mido's thread)."""

    def __init__(self, controls: LiveControls, port: str, api: str, mapping: MidiMap, client_name: str) -> None:
        self.controls = controls
        self.mapping = mapping
        try:
            import mido  # optional: only --midi needs it
            backend = mido.Backend(MIDI_BACKENDS[api], load=True)
            if port == VIRTUAL_PORT:
                self.port = backend.open_input(VIRTUAL_PORT_NAME, virtual=True, callback=self._receive,
                                               client_name=client_name)
            else:
                self.port = backend.open_input(self._port_name(backend, port), callback=self._receive,
                                               client_name=client_name)
        except ImportError:
            raise MidiError("MIDI needs mido and python-rtmidi: pip install mido python-rtmidi") from None
        except (OSError, RuntimeError, SystemError) as error:  # rtmidi's errors derive from these
            first = str(error).splitlines()[0] if str(error) else error.__class__.__name__
            other = "alsa" if api == "jack" else "jack"
            raise MidiError(f"cannot open the {api} MIDI input {port!r} ({first}); is the "
                            f"{'JACK server' if api == 'jack' else 'ALSA sequencer'} running? or try --midi-api "
                            f"{other}") from None

    @staticmethod
    def _port_name(backend: Any, wanted: str) -> str:
        """The one input port whose name contains ``wanted`` (case-insensitive), else a one-line error."""
        names = backend.get_input_names()
        found = [name for name in names if wanted.lower() in name.lower()]
        if len(found) != 1:
            listing = ", ".join(repr(name) for name in names) or "none"
            raise MidiError(f"MIDI input {wanted!r} {'matches several' if found else 'not found'}; inputs: {listing}; "
                            f"or give --midi {VIRTUAL_PORT} to open the engine's own port")
        return found[0]

    def _receive(self, message: Any) -> None:
        """mido's thread: queue what the message asks (nothing is applied here)."""
        action = midi_action(self.controls, self.mapping, message)
        if action is not None:
            self.controls.queue_action(action)

    def close(self) -> None:
        self.port.close()
