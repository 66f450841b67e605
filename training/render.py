"""Turn a Performance into mono float audio with FluidSynth (through the pyfluidsynth bindings).

Two FluidSynth behaviours shape this module:
- A synth that has played a note keeps per-voice state (amplitude and filter ramps) that leaks into the
  first 64-sample block of the next note, so the same note renders differently depending on what came
  before. To make a render depend only on its own events, every render gets a fresh synth; the
  SoundFont is loaded once (loading FluidR3 takes ~0.6 s) and lent to each fresh synth, which costs ~4 ms.
- Events take effect on 64-sample block boundaries, so event times are quantised to blocks here and
  audio is always written in whole blocks.
Float output is used rather than 16-bit so that FluidSynth adds no dither noise: a key with no samples
then renders as exact zeros instead of one-bit noise.
"""

from __future__ import annotations

from ctypes import c_int, c_void_p
from pathlib import Path
from typing import Protocol

import numpy as np

from training.performance import Event, Performance

try:
    import fluidsynth
except ImportError as exc:  # pyfluidsynth missing, or libfluidsynth not found by it
    raise ImportError(f"training.render needs pyfluidsynth and libfluidsynth3: {exc}") from exc

BLOCK = 64  # FluidSynth's internal processing block, in samples
_LOG_LEVELS_SILENCED = (1, 2, 3, 4)  # FLUID_ERR, WARN, INFO, DBG: this module reports its own errors

_write_float = fluidsynth.cfunc(
    "fluid_synth_write_float", c_int, ("synth", c_void_p, 1), ("len", c_int, 1),
    ("lout", c_void_p, 1), ("loff", c_int, 1), ("lincr", c_int, 1),
    ("rout", c_void_p, 1), ("roff", c_int, 1), ("rincr", c_int, 1))
_get_sfont_by_id = fluidsynth.cfunc(
    "fluid_synth_get_sfont_by_id", c_void_p, ("synth", c_void_p, 1), ("id", c_int, 1))
_add_sfont = fluidsynth.cfunc(
    "fluid_synth_add_sfont", c_int, ("synth", c_void_p, 1), ("sfont", c_void_p, 1))
_remove_sfont = fluidsynth.cfunc(
    "fluid_synth_remove_sfont", c_int, ("synth", c_void_p, 1), ("sfont", c_void_p, 1))
_set_log_function = fluidsynth.cfunc(
    "fluid_set_log_function", c_void_p, ("level", c_int, 1), ("fun", c_void_p, 1), ("data", c_void_p, 1))


class Renderer(Protocol):
    """What plays a :class:`Performance` on a General MIDI program: a SoundFont (:class:`Library`) or a
    physical model (:class:`training.csound.CsoundLibrary`)."""

    sample_rate: int
    path: Path

    def has_program(self, program: int) -> bool: ...

    def render(self, program: int, performance: Performance) -> np.ndarray: ...


class SoundFontError(Exception):
    """The SoundFont cannot be used: missing, unreadable, not an SF2 file, or lacking a program."""


def _quiet_fluidsynth() -> None:
    for level in _LOG_LEVELS_SILENCED:
        _set_log_function(level, None, None)


def _new_synth(sample_rate: int) -> fluidsynth.Synth:
    # gain 1.0: FluidSynth's 0.2 default leaves single notes near -30 dBFS; 1.0 keeps ff notes well below
    # clipping. Reverb and chorus are off so the data holds the instrument, not a room.
    return fluidsynth.Synth(gain=1.0, samplerate=sample_rate, channels=16, **{
        "synth.reverb.active": 0, "synth.chorus.active": 0, "synth.cpu-cores": 1})


class Library:
    """A loaded SoundFont, rendering performances of its General MIDI (bank 0) programs."""

    def __init__(self, path: str | Path, sample_rate: int = 44100) -> None:
        path = Path(path)
        if not path.is_file():
            raise SoundFontError(f"soundfont not found: {path}")
        if not 8000 <= sample_rate <= 96000:
            raise SoundFontError(f"sample rate {sample_rate} Hz is outside FluidSynth's 8000-96000 Hz")
        _quiet_fluidsynth()
        self.path = path
        self.sample_rate = sample_rate
        self._owner = _new_synth(sample_rate)
        sfont_id = self._owner.sfload(str(path))
        if sfont_id < 0:
            raise SoundFontError(f"cannot load soundfont {path}: not a readable SoundFont 2 (.sf2) file")
        self._sfont = _get_sfont_by_id(self._owner.synth, sfont_id)

    def has_program(self, program: int) -> bool:
        """Whether bank 0 holds this General MIDI program (a missing one would fall back silently)."""
        synth, sfont_id = self._lend()
        try:
            return synth.program_select(0, sfont_id, 0, program) == 0
        finally:
            self._return(synth)

    def render(self, program: int, performance: Performance) -> np.ndarray:
        """Mono float32 audio of `performance` on `program`, performance.length_s long (block-rounded)."""
        synth, sfont_id = self._lend()
        try:
            if synth.program_select(0, sfont_id, 0, program) != 0:
                raise SoundFontError(f"{self.path} has no bank 0 program {program}")
            synth.cc(0, 91, 0)  # reverb send
            synth.cc(0, 93, 0)  # chorus send
            return self._play(synth, performance)
        finally:
            self._return(synth)

    def _lend(self) -> tuple[fluidsynth.Synth, int]:
        """A fresh synth holding the loaded SoundFont, and the SoundFont's id in it."""
        synth = _new_synth(self.sample_rate)
        return synth, _add_sfont(synth.synth, self._sfont)

    def _return(self, synth: fluidsynth.Synth) -> None:
        _remove_sfont(synth.synth, self._sfont)  # the owner keeps the SoundFont; only the synth goes
        synth.delete()

    def _play(self, synth: fluidsynth.Synth, performance: Performance) -> np.ndarray:
        n_blocks = max(1, round(float(performance.length_s * self.sample_rate / BLOCK)))
        stereo = np.zeros((n_blocks * BLOCK, 2), dtype=np.float32)
        event_blocks = [min(n_blocks - 1, round(float(e.time_s * self.sample_rate / BLOCK)))
                        for e in performance.events]
        block = 0
        for i, event in enumerate(performance.events):
            if event_blocks[i] > block:
                self._write(synth, stereo, block, event_blocks[i])
                block = event_blocks[i]
            _send(synth, event)
        self._write(synth, stereo, block, n_blocks)
        return stereo.mean(axis=1)

    @staticmethod
    def _write(synth: fluidsynth.Synth, stereo: np.ndarray, first_block: int, end_block: int) -> None:
        if end_block <= first_block:
            return
        view = stereo[first_block * BLOCK:end_block * BLOCK]
        ptr = view.ctypes.data
        _write_float(synth.synth, len(view), ptr, 0, 2, ptr, 1, 2)


def _send(synth: fluidsynth.Synth, event: Event) -> None:
    if event.kind == "on":
        synth.noteon(0, event.a, event.b)
    elif event.kind == "off":
        synth.noteoff(0, event.a)
    elif event.kind == "cc":
        synth.cc(0, event.a, event.b)
    else:
        synth.pitch_bend(0, event.a)
