"""The engine's numeric settings, each declared once: its bounds, default, unit and meaning.

Preset files, ``Processor.set`` and the command lines all check values against this one table, so a
value that one of them accepts the others accept too, and every refusal names the bounds in one line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.identify import DEFAULT_GATE_DB, DEFAULT_HOLD_S, DEFAULT_MIN_CONFIDENCE, DEFAULT_TIME_CONSTANT_S


@dataclass(frozen=True)
class Parameter:
    """One numeric setting: valid from ``low`` to ``high`` (``low`` itself excluded when ``above_low``)."""

    name: str
    default: float
    low: float
    high: float
    unit: str
    meaning: str
    above_low: bool = False

    @property
    def bounds(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return (f"{'above' if self.above_low else 'from'} {self.low:g} {'and at most' if self.above_low else 'to'} "
                f"{self.high:g}{unit}")

    def check(self, value: object) -> float:
        """``value`` as a float within bounds, else ValueError naming the setting, its bounds and the value."""
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"{self.name} must be a number {self.bounds}, got {value!r}") from None
        inside = number > self.low if self.above_low else number >= self.low
        if not (math.isfinite(number) and inside and number <= self.high):
            raise ValueError(f"{self.name} ({self.meaning}) must be {self.bounds}, got {value!r}")
        return number


PARAMETERS = {p.name: p for p in (
    Parameter("mix", 1.0, 0.0, 1.0, "", "0 = dry input only, 1 = transferred sound only"),
    Parameter("transpose", 0.0, -48.0, 48.0, "semitones", "pitch shift of the transferred sound"),
    Parameter("gain_db", 0.0, -96.0, 24.0, "dB", "output gain"),
    Parameter("gate_db", DEFAULT_GATE_DB, -120.0, 0.0, "dB", "frames quieter than this are ignored"),
    Parameter("time_constant_s", DEFAULT_TIME_CONSTANT_S, 0.0, 10.0, "s", "smoothing of the live identification",
              above_low=True),
    Parameter("hold_s", DEFAULT_HOLD_S, 0.0, 10.0, "s", "silence before the readout names nothing"),
    Parameter("min_confidence", DEFAULT_MIN_CONFIDENCE, 0.0, 0.99, "", "probability the readout needs to name a class"),
)}
