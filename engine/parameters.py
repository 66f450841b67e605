"""The engine's settings, each declared once: type, choices or bounds, default, unit, meaning, and whether
it may change while audio streams.

Preset files (:mod:`engine.preset`), ``Processor.from_preset`` and ``Processor.set``, and the command-line
flags with their ``--help`` (:func:`add_setting_flags`) are all generated from :data:`SETTINGS`, so a value
one of them accepts the others accept too, and every refusal names the bounds or the choices in one line.
The rules between settings (:func:`check_together`) are checked in one place as well.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from engine.identify import DEFAULT_GATE_DB, DEFAULT_HOLD_S, DEFAULT_MIN_CONFIDENCE, DEFAULT_TIME_CONSTANT_S
from engine.register import REGISTERS

MODES = ("identify", "transfer")
#: Phase of the synthesised sound: rebuilt from the magnitudes (RTPGHI) or the input's own (no look-ahead).
PHASES = ("rtpghi", "input")
#: Whose predicted parameters drive the target prototype (engine.transfer).
CANDIDATES = ("winner", "target")
#: What carries the target's timbre (engine.carrier, engine.filterroute).
CARRIERS = ("input", "prototype", "filter", "harmonic")


def plays_rendered_pitch(carrier: str) -> bool:
    """Whether ``carrier`` is heard at the rendered prototype's own pitch (``prototype``: the rendering is the
    sound).  The others lend the rendering only its spectral envelope and play at the input's pitch (its own
    partials, or the harmonic carrier's at its pitch), so the target is rendered unshifted for them, a fixed body
    (engine.transfer)."""
    return carrier == "prototype"


def filters_audio(carrier: str) -> bool:
    """Whether ``carrier`` takes the filter route (engine.filterroute: per-frame filters on audio, no analysis
    window on the audio path): ``filter`` on the input itself, ``harmonic`` on its excitation (engine.harmonic).
    The others resynthesise the rendered frames (engine.synth)."""
    return carrier in ("filter", "harmonic")

Value = float | str | None


@dataclass(frozen=True)
class Setting:
    """One setting.  A number (``choices`` empty, ``text`` false) is valid from ``low`` to ``high`` (``low``
    itself excluded when ``above_low``); a text setting is one of ``choices``, or any name when it has none
    (a target class, which only the model can check).  ``live``: ``Processor.set`` may change it between
    blocks; the others are fixed when the processor is built."""

    name: str
    default: Value
    meaning: str
    live: bool
    unit: str = ""
    low: float = -math.inf
    high: float = math.inf
    above_low: bool = False
    choices: tuple[str, ...] = ()
    text: bool = False
    transfer_only: bool = False  # heard only in transfer mode (identify passes the input through unchanged)

    @property
    def is_number(self) -> bool:
        return not (self.choices or self.text)

    @property
    def flag(self) -> str:
        """The command-line flag: ``gain_db`` → ``--gain-db``."""
        return "--" + self.name.replace("_", "-")

    @property
    def bounds(self) -> str:
        if not self.is_number:
            return f"one of {', '.join(self.choices)}" if self.choices else "a class name of the model"
        unit = f" {self.unit}" if self.unit else ""
        return (f"{'above' if self.above_low else 'from'} {self.low:g} {'and at most' if self.above_low else 'to'} "
                f"{self.high:g}{unit}")

    def check(self, value: object) -> Value:
        """``value`` as this setting's type, within bounds or choices, else ValueError naming the setting, what
        it accepts and the value."""
        if not self.is_number:
            if value is None and self.text:
                return None
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                raise ValueError(f"{self.name} must be {self.bounds}, got {value!r}")
            return value
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"{self.name} must be a number {self.bounds}, got {value!r}") from None
        inside = number > self.low if self.above_low else number >= self.low
        if not (math.isfinite(number) and inside and number <= self.high):
            raise ValueError(f"{self.name} ({self.meaning}) must be {self.bounds}, got {value!r}")
        return number

    def parse_flag(self, text: str) -> Value:
        """An argparse type: the flag's text checked like a preset value (argparse prints the one line)."""
        try:
            return self.check(text if not self.is_number else text.strip())
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None


SETTINGS: dict[str, Setting] = {s.name: s for s in (
    Setting("mode", "identify", "identify: pass the sound through and name the instrument; transfer: sound like "
            "the target", live=True, choices=MODES),
    Setting("target", None, "instrument to sound like in transfer mode", live=True, text=True, transfer_only=True),
    Setting("mix", 1.0, "0 = dry input only, 1 = transferred sound only", live=True, low=0.0, high=1.0,
            transfer_only=True),
    Setting("transpose", 0.0, "pitch shift of the transferred sound", live=True, unit="semitones", low=-48.0,
            high=48.0, transfer_only=True),
    Setting("register", "keep", "keep: the transferred sound at your pitch; target: each phrase moved by the "
            "fewest whole octaves that put it inside the target's playing range (a cello phrase as a violin an "
            "octave up), on top of transpose", live=True, choices=REGISTERS, transfer_only=True),
    Setting("gain_db", 0.0, "output gain", live=True, unit="dB", low=-96.0, high=24.0),
    Setting("candidate", "winner", "whose predicted gain, pitch and shelves drive the target prototype: the "
            "best-fitting prototype's (winner) or the target's own", live=True, choices=CANDIDATES, transfer_only=True),
    Setting("gate_db", DEFAULT_GATE_DB, "frames quieter than this are ignored", live=False, unit="dB", low=-120.0,
            high=0.0),
    Setting("time_constant_s", DEFAULT_TIME_CONSTANT_S, "smoothing of the live identification", live=False,
            unit="s", low=0.0, high=10.0, above_low=True),
    Setting("hold_s", DEFAULT_HOLD_S, "silence before the readout names nothing", live=False, unit="s", low=0.0,
            high=10.0),
    Setting("min_confidence", DEFAULT_MIN_CONFIDENCE, "probability the readout needs to name a class", live=False,
            low=0.0, high=0.99),
    Setting("phase", "rtpghi", "phase of the transferred sound: rebuilt from its magnitudes (rtpghi, one hop of "
            "look-ahead) or the input's own (input: less latency, no transposition)", live=False, choices=PHASES,
            transfer_only=True),
    Setting("carrier", "input", "input = your own partials under the target's spectral envelope (keeps your "
            "melody); prototype = the target's prototype itself, as in the paper; filter = the input carrier's "
            "envelope as a filter on your audio (no analysis window on the audio path: lowest latency, the timbre "
            "follows a window late, phase unused; transposing adds about 15 ms); harmonic = the target's envelope as a "
            "filter on harmonics plus noise at your pitch and loudness (its own excitation; a new note's pitch follows "
            "half a window and a hop late)", live=False, choices=CARRIERS,
            transfer_only=True),
)}


def number_default(name: str) -> float:
    """A number setting's default, typed (for the fields of engine.preset.Preset)."""
    default = SETTINGS[name].default
    assert isinstance(default, float), name
    return default


def text_default(name: str) -> str:
    """A text setting's default, typed (for the fields of engine.preset.Preset)."""
    default = SETTINGS[name].default
    assert isinstance(default, str), name
    return default


def check_together(values: Mapping[str, object]) -> None:
    """The rules between settings; ValueError names the conflict and a way out."""
    if values["mode"] == "transfer" and values["target"] is None:
        raise ValueError("transfer mode needs a target: set target (--target CLASS)")
    moved = float(values["transpose"]) != 0.0 or values["register"] == "target"  # type: ignore[arg-type]
    check_transposable(str(values["carrier"]), str(values["phase"]), moved)


def check_transposable(carrier: str, phase: str, moved: bool) -> None:
    """Raise ValueError when the sound cannot be ``moved`` (transposed, or by octaves into the target's
    register) with this carrier and phase: the input carrier's partials are moved, and the input's own phase
    belongs to the unmoved ones (the filter route moves the audio itself, engine.pitchshift)."""
    if moved and carrier == "input" and phase == "input":
        raise ValueError("transpose and register 'target' with the input carrier need phase 'rtpghi' (the input's "
                         "phase belongs to its untransposed partials): use --phase rtpghi, or --carrier filter, "
                         "which moves the audio itself")


def add_setting_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                      names: Iterable[str] = tuple(SETTINGS)) -> None:
    """One flag per setting (``--gain-db``), typed and checked by the table, defaulting to None: the
    preset's value stands unless the flag is given."""
    for name in names:
        setting = SETTINGS[name]
        metavar = "CLASS" if setting.text else (setting.unit.upper() if setting.unit and setting.is_number else None)
        parser.add_argument(setting.flag, dest=name, type=setting.parse_flag, choices=setting.choices or None,
                            metavar=metavar,
                            help=(setting.meaning + ("" if setting.choices else f"; {setting.bounds}")
                                  + " (default: the preset's)").replace("%", "%%"))
