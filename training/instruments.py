"""The 14 TinySOL instrument classes, their General MIDI programs and real playing ranges.

Rendering a soundfont preset outside the instrument's real range produces sounds no player can make
(a tuba at C7), which would teach a classifier cues that never occur in real recordings. Ranges are
*sounding* pitches as MIDI note numbers (middle C = C4 = 60), taken from standard orchestration
references (Adler, "The Study of Orchestration", 4th ed.; Rimsky-Korsakov; Vienna Symphonic Library
instrument pages), using the practical professional range rather than rare extreme notes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Instrument:
    """One class: its name, General MIDI program (0-based) and sounding range (inclusive MIDI notes)."""

    name: str
    program: int
    low: int
    high: int

    @property
    def keys(self) -> range:
        return range(self.low, self.high + 1)


# name, GM program (0-based), lowest and highest sounding MIDI note; the comment gives the range in
# note names and, for transposing instruments, how written pitch maps to sounding pitch.
INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument("accordion", 21, 41, 93),   # treble manual F3-A6, with the 16' reed an octave lower: F2-A6
    Instrument("alto_sax", 65, 49, 80),    # written Bb3-F6, sounds a major sixth lower: Db3-Ab5
    Instrument("bassoon", 70, 34, 75),     # Bb1-Eb5
    Instrument("cello", 42, 36, 81),       # C2-A5
    Instrument("clarinet", 71, 50, 91),    # Bb clarinet, written E3-A6, sounds a tone lower: D3-G6
    Instrument("contrabass", 43, 28, 67),  # written E2-G5, sounds an octave lower: E1-G4
    Instrument("flute", 73, 60, 96),       # C4-C7
    Instrument("horn", 60, 41, 77),        # horn in F, written C3-C6, sounds a fifth lower: F2-F5
    Instrument("oboe", 68, 58, 91),        # Bb3-G6
    Instrument("trombone", 57, 40, 74),    # tenor trombone E2-D5 (pedal tones left out)
    Instrument("trumpet", 56, 52, 84),     # Bb trumpet, written F#3-D6, sounds a tone lower: E3-C6
    Instrument("tuba", 58, 26, 65),        # D1-F4
    Instrument("viola", 41, 48, 88),       # C3-E6
    Instrument("violin", 40, 55, 105),     # G3-A7
)

# MIDI velocities for the three rendered dynamics (roughly p, mf, ff).
VELOCITIES: tuple[int, ...] = (40, 80, 120)

BY_NAME: dict[str, Instrument] = {inst.name: inst for inst in INSTRUMENTS}


class UnknownClassError(ValueError):
    """A class name that is not one of the 14."""


def select(names: list[str] | None) -> list[Instrument]:
    """The instruments named (in table order), or all of them."""
    if not names:
        return list(INSTRUMENTS)
    unknown = sorted(set(names) - BY_NAME.keys())
    if unknown:
        raise UnknownClassError(f"unknown class(es) {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
    return [inst for inst in INSTRUMENTS if inst.name in names]
