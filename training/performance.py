"""What is played: timed MIDI events for single notes, expressive variants and legato phrases.

Static notes at fixed velocity are a poor picture of an instrument; players shape notes with length,
vibrato and dynamics. Every variant here is expressed as plain MIDI events (note on/off, CC11
expression, pitch bend) so that any General MIDI soundfont renders it the same way, and every random
choice comes from the numpy Generator passed in, so a seed fixes the output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import mido
import numpy as np

EventKind = Literal["on", "off", "cc", "bend"]

CC_MODULATION = 1
CC_EXPRESSION = 11
CONTROL_PERIOD_S = 0.01  # control curves (vibrato, expression ramps) are sent at 100 Hz
BEND_RANGE_CENTS = 200.0  # General MIDI default pitch-bend sensitivity: +-2 semitones over +-8192
RELEASE_S = 0.5  # rendered after the last note-off so that the soundfont's release is kept


@dataclass(frozen=True)
class Event:
    """One MIDI event: note on (a=key, b=velocity), off (a=key), cc (a=controller, b=value), bend (a=-8192..8191)."""

    time_s: float
    kind: EventKind
    a: int
    b: int = 0


def midi_message(event: Event) -> mido.Message:
    """The event as a MIDI message on channel 0 (a MIDI file's, or the bytes of a live stream)."""
    if event.kind == "on":
        return mido.Message("note_on", note=event.a, velocity=event.b)
    if event.kind == "off":
        return mido.Message("note_off", note=event.a, velocity=64)
    if event.kind == "cc":
        return mido.Message("control_change", control=event.a, value=event.b)
    return mido.Message("pitchwheel", pitch=event.a)


@dataclass(frozen=True)
class Performance:
    """Events to send on one channel and how long to render in all (release tail included)."""

    events: tuple[Event, ...]
    length_s: float


@dataclass(frozen=True)
class Variant:
    """How one kind of single note is played: how long the key is held and which control curve shapes it."""

    name: str
    hold_s: float
    shape: Literal["none", "vibrato", "crescendo", "diminuendo"]


VARIANTS: tuple[Variant, ...] = (
    Variant("plain", 1.0, "none"),
    Variant("short", 0.15, "none"),
    Variant("long", 2.0, "none"),
    Variant("vibrato", 1.6, "vibrato"),
    Variant("crescendo", 1.6, "crescendo"),
    Variant("diminuendo", 1.6, "diminuendo"),
)
VARIANT_BY_NAME: dict[str, Variant] = {v.name: v for v in VARIANTS}

EXPRESSION_SOFT = 30  # CC11 value at the quiet end of a crescendo or diminuendo


@dataclass(frozen=True)
class PhraseNote:
    """One note of a phrase as the notes file records it: onset and key-release time in seconds."""

    onset_s: float
    offset_s: float
    midi: int


def _control_times(start_s: float, end_s: float) -> np.ndarray:
    return np.arange(start_s, end_s, CONTROL_PERIOD_S)


def vibrato_events(start_s: float, end_s: float, rate_hz: float, depth_cents: float,
                   fade_in_s: float = 0.3) -> list[Event]:
    """A sine pitch-bend LFO, faded in as players do, returning to exact pitch at end_s."""
    times = _control_times(start_s, end_s)
    ramp = np.clip((times - start_s) / fade_in_s, 0.0, 1.0)
    cents = depth_cents * ramp * np.sin(2.0 * math.pi * rate_hz * (times - start_s))
    bends = np.round(cents / BEND_RANGE_CENTS * 8192.0).astype(int)
    events = [Event(float(t), "bend", int(b)) for t, b in zip(times, bends, strict=True)]
    return [*events, Event(end_s, "bend", 0)]


def expression_ramp(start_s: float, end_s: float, first: int, last: int) -> list[Event]:
    """CC11 moving linearly from first to last; expression scales loudness without changing velocity."""
    times = _control_times(start_s, end_s)
    values = np.round(np.linspace(first, last, len(times))).astype(int)
    return [Event(float(t), "cc", CC_EXPRESSION, int(v)) for t, v in zip(times, values, strict=True)]


def single_note(variant: Variant, midi: int, velocity: int, rng: np.random.Generator) -> Performance:
    """One note played as `variant`; vibrato rate (5-6 Hz) and depth (20-40 cents) are drawn from rng."""
    hold = variant.hold_s
    start_expression = EXPRESSION_SOFT if variant.shape == "crescendo" else 127
    events = [Event(0.0, "cc", CC_EXPRESSION, start_expression), Event(0.0, "on", midi, velocity)]
    if variant.shape == "vibrato":
        events += vibrato_events(0.0, hold, rate_hz=float(rng.uniform(5.0, 6.0)),
                                 depth_cents=float(rng.uniform(20.0, 40.0)))
    elif variant.shape == "crescendo":
        events += expression_ramp(0.0, hold, EXPRESSION_SOFT, 127)
    elif variant.shape == "diminuendo":
        events += expression_ramp(0.0, hold, 127, EXPRESSION_SOFT)
    events.append(Event(hold, "off", midi))
    return Performance(tuple(sorted(events, key=lambda e: e.time_s)), hold + RELEASE_S)


# Melodic steps in semitones and how often players use them: mostly seconds and thirds, some leaps.
STEPS = np.array([1, 2, 3, 4, 5, 7, 12])
STEP_WEIGHTS = np.array([0.25, 0.3, 0.15, 0.12, 0.09, 0.06, 0.03])
# Note lengths in beats and the tempo range (beats per minute) a phrase is played at.
BEATS = np.array([0.5, 1.0, 1.0, 1.5, 2.0])
TEMPO_BPM = (80.0, 132.0)


def random_walk(rng: np.random.Generator, keys: Sequence[int], n_notes: int) -> list[int]:
    """n_notes keys drawn as a melodic random walk over `keys`, starting near the middle of them.

    Steps that would leave the allowed keys are redrawn, so gaps in a soundfont (keys with no samples)
    are never played.
    """
    allowed = sorted(set(keys))
    if not allowed:
        raise ValueError("no keys to play")
    allowed_set = set(allowed)
    lo, hi = allowed[len(allowed) // 4], allowed[(3 * len(allowed)) // 4]
    melody = [int(rng.choice([k for k in allowed if lo <= k <= hi]))]
    while len(melody) < n_notes:
        for _ in range(50):
            step = int(rng.choice(STEPS, p=STEP_WEIGHTS)) * int(rng.choice([-1, 1]))
            if melody[-1] + step in allowed_set:
                melody.append(melody[-1] + step)
                break
        else:  # isolated key: jump to the nearest other allowed key
            others = [k for k in allowed if k != melody[-1]] or allowed
            melody.append(min(others, key=lambda k: abs(k - melody[-1])))
    return melody


def legato_phrase(keys: Sequence[int], durations_s: Sequence[float], velocity: int,
                  rng: np.random.Generator | None = None) -> tuple[Performance, list[PhraseNote]]:
    """Keys played back to back (each note-off at the next onset); velocities vary by up to +-8 if rng."""
    events: list[Event] = [Event(0.0, "cc", CC_EXPRESSION, 127)]
    notes: list[PhraseNote] = []
    t = 0.0
    for key, dur in zip(keys, durations_s, strict=True):
        vel = velocity if rng is None else int(np.clip(velocity + rng.integers(-8, 9), 1, 127))
        onset, offset = round(t, 6), round(t + dur, 6)
        events += [Event(onset, "on", int(key), vel), Event(offset, "off", int(key))]
        notes.append(PhraseNote(onset, offset, int(key)))
        t += dur
    # At equal times, note-off sorts before note-on so a repeated key is released, then struck again.
    order = {"cc": 0, "bend": 0, "off": 1, "on": 2}
    events.sort(key=lambda e: (e.time_s, order[e.kind]))
    return Performance(tuple(events), t + RELEASE_S), notes


def random_phrase(rng: np.random.Generator, keys: Sequence[int]) -> tuple[Performance, list[PhraseNote]]:
    """A seeded melody of 6-12 notes over `keys`, at a random tempo and a dynamic between p and f."""
    n_notes = int(rng.integers(6, 13))
    melody = random_walk(rng, keys, n_notes)
    beat_s = 60.0 / float(rng.uniform(*TEMPO_BPM))
    durations = [float(rng.choice(BEATS)) * beat_s for _ in melody]
    velocity = int(rng.integers(60, 111))
    return legato_phrase(melody, durations, velocity, rng)


def notes_of(performance: Performance) -> list[tuple[float, float, int, int]]:
    """``(start_s, duration_s, key, velocity)`` of each note, from its note-on to its note-off."""
    sounding: dict[int, tuple[float, int]] = {}
    notes = []
    for event in performance.events:
        if event.kind == "on":
            sounding[event.a] = (event.time_s, event.b)
        elif event.kind == "off" and event.a in sounding:
            start, velocity = sounding.pop(event.a)
            notes.append((start, event.time_s - start, event.a, velocity))
    return notes


def control_curves(performance: Performance) -> tuple[np.ndarray, np.ndarray]:
    """Expression (0-1) and pitch-bend frequency ratio at every control period, held between events."""
    n = int(np.ceil(performance.length_s / CONTROL_PERIOD_S)) + 2
    expression, bend = np.ones(n), np.ones(n)
    for event in sorted(performance.events, key=lambda e: e.time_s):
        index = min(n - 1, round(float(event.time_s / CONTROL_PERIOD_S)))
        if event.kind == "cc" and event.a == CC_EXPRESSION:
            expression[index:] = event.b / 127.0
        elif event.kind == "bend":
            bend[index:] = 2.0 ** (event.a / 8192.0 * BEND_RANGE_CENTS / 1200.0)
    return expression, bend


def level_curve(performance: Performance, sample_rate: int, length: int) -> np.ndarray:
    """Level of each output sample for renderers without dynamics of their own: CC11 expression times
    ``(velocity / 127)^1.5`` of the latest note."""
    expression, _ = control_curves(performance)
    times = np.arange(length) / sample_rate
    level = np.interp(times, np.arange(len(expression)) * CONTROL_PERIOD_S, expression)
    velocity = np.ones(length)
    for start, _, _, note_velocity in notes_of(performance):
        velocity[int(start * sample_rate):] = (note_velocity / 127.0) ** 1.5
    return level * velocity
