"""Recorded instruments played like a sampler: one recording per few keys, transposed to the keys between.

The SoundFonts, Freepats and the physical models are all General MIDI renderings; what a performer plays
is a recorded instrument.  :class:`SampleLibrary` plays a folder of real recordings, one sustained note
per file, ``<folder>/<class>/<note>.<ext>`` (``C4`` is middle C, ``As3`` or ``A#3`` a sharp), the way a
sampler does: each key reads the nearest recording, resampled by the interval (at most
:data:`MAX_STRETCH_SEMITONES`; keys further from every recording sound as silence, so the dataset drops
them like a SoundFont's gaps), bent by the performance's pitch bend, cut at the note-off with a short
release, and scaled by velocity and CC11 expression (:func:`training.performance.level_curve`).

The recordings ``training/fetch_tonejs.sh`` fetches (``data/sources/tonejs``) are the tonejs-instruments
packages (npm, CC-BY 3.0): Versilian Studios' VSCO 2 (bassoon, clarinet, contrabass, flute, horn, trombone, trumpet,
tuba, violin), a Freesound cello and Karoryfer's alto saxophone, long sustained notes with the players' own
vibrato, every two to four semitones.  One dynamic only: velocity changes the level, not the timbre.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import soundfile as sf

from training.instruments import INSTRUMENTS
from training.performance import CONTROL_PERIOD_S, Performance, control_curves, level_curve, notes_of

#: The furthest a recording is transposed (semitones); a sampler stretching further sounds like a toy.
MAX_STRETCH_SEMITONES = 4
RELEASE_FADE_S = 0.15  # the recordings sustain: a note-off fades the voice out over this long
_NOTE_NAME = re.compile(r"^([A-Ga-g])(s|#|b)?(-?\d)$")
_PITCH_CLASSES = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_ACCIDENTALS = {None: 0, "s": 1, "#": 1, "b": -1}


#: What a key plays: a recording, the samples of it read per output sample, and its sustain loop (or None).
Voice = tuple[np.ndarray, float, tuple[int, int] | None]


class SamplerError(Exception):
    """The recordings folder is missing, empty, or holds a file that cannot be read."""


def note_number(name: str) -> int | None:
    """MIDI number of a note name such as ``C4`` (60), ``As3`` or ``A#3`` (58), ``Eb5``; None if not one."""
    match = _NOTE_NAME.match(name)
    if match is None:
        return None
    letter, accidental, octave = match.groups()
    return 12 * (int(octave) + 1) + _PITCH_CLASSES[letter.lower()] + _ACCIDENTALS[accidental]


class VoicedLibrary:
    """A library that plays each note as one voice read from a recording (:func:`add_voice`); a subclass says
    which recording a key reads, how fast, and whether it loops (:meth:`voice`)."""

    sample_rate: int

    def voice(self, program: int, key: int) -> Voice | None:
        """``(recording, samples read per output sample, sustain loop or None)`` for ``key``, or None for a key
        the library has no recording for (it sounds as silence, which the dataset drops)."""
        raise NotImplementedError

    def render(self, program: int, performance: Performance) -> np.ndarray:
        length = round(float(performance.length_s * self.sample_rate))
        out = np.zeros(length)
        _, bend = control_curves(performance)
        for start_s, duration_s, key, _ in notes_of(performance):
            voice = self.voice(program, key)
            if voice is not None:
                recording, ratio, loop = voice
                add_voice(out, self.sample_rate, recording, ratio, start_s, duration_s, bend, loop)
        return (out * level_curve(performance, self.sample_rate, length)).astype(np.float32)


class SampleLibrary(VoicedLibrary):
    """Plays the recordings under ``folder`` (one subfolder per class, named as in training.instruments)."""

    def __init__(self, folder: str | Path, sample_rate: int = 44100) -> None:
        self.path = Path(folder)
        if not self.path.is_dir():
            raise SamplerError(f"recordings folder not found: {self.path} "
                               "(training/fetch_tonejs.sh fetches data/sources/tonejs)")
        self.sample_rate = sample_rate
        self.recordings: dict[int, dict[int, Path]] = {}
        for inst in INSTRUMENTS:
            named = ((note_number(f.stem), f) for f in sorted((self.path / inst.name).glob("*")) if f.is_file())
            files = {key: path for key, path in named if key is not None}
            if files:
                self.recordings[inst.program] = files
        if not self.recordings:
            raise SamplerError(f"{self.path} holds no recordings named like <class>/C4.wav")
        self._loaded: dict[Path, tuple[np.ndarray, int]] = {}

    def has_program(self, program: int) -> bool:
        return program in self.recordings

    def voice(self, program: int, key: int) -> Voice | None:
        """The nearest recording, transposed by at most :data:`MAX_STRETCH_SEMITONES`; it does not loop."""
        roots = self.recordings[program]
        root = min(roots, key=lambda r: (abs(r - key), r))
        if abs(root - key) > MAX_STRETCH_SEMITONES:
            return None
        recording, rate = self._recording(roots[root])
        return recording, 2.0 ** ((key - root) / 12.0) * rate / self.sample_rate, None

    def _recording(self, path: Path) -> tuple[np.ndarray, int]:
        """The recording as mono float64 and its rate, read once per library."""
        if path not in self._loaded:
            try:
                audio, rate = sf.read(str(path), dtype="float64", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as error:
                raise SamplerError(f"cannot read {path}: {error}") from error
            self._loaded[path] = audio.mean(axis=1), rate
        return self._loaded[path]


def add_voice(out: np.ndarray, sample_rate: int, recording: np.ndarray, ratio: float, start_s: float,
              duration_s: float, bend: np.ndarray, loop: tuple[int, int] | None = None) -> None:
    """Mix one note into ``out`` (at ``sample_rate``): ``recording`` read ``ratio`` of its samples per output
    sample, bent by ``bend`` (a frequency ratio per control period), faded out over :data:`RELEASE_FADE_S`
    after the note-off.  With ``loop = (start, end)`` the read position wraps from ``end`` back to ``start``
    (a SoundFont's sustain loop, held through the release as SoundFont players do), so a short sample
    sustains for as long as the note; without one, the voice ends with its recording."""
    start = round(start_s * sample_rate)
    stop = min(len(out), start + round((duration_s + RELEASE_FADE_S) * sample_rate))
    if stop <= start:
        return
    times = start_s + np.arange(stop - start) / sample_rate
    step = ratio * np.interp(times, np.arange(len(bend)) * CONTROL_PERIOD_S, bend)
    position = np.concatenate([[0.0], np.cumsum(step[:-1])])
    if loop is not None:
        loop_start, loop_end = loop
        position = np.where(position >= loop_end, loop_start + np.mod(position - loop_start, loop_end - loop_start),
                            position)
    voice = np.interp(position, np.arange(len(recording)), recording, right=0.0)
    fade = np.clip((start_s + duration_s + RELEASE_FADE_S - times) / RELEASE_FADE_S, 0.0, 1.0)
    out[start:stop] += voice * fade
