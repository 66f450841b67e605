"""A sample library built into a synthesiser: the Sonivox EAS General MIDI wavetable.

Sonivox EAS (Debian ``libsonivox3``; the MIDI synthesiser of Android) carries its own General MIDI wavetable,
compiled into the library: samples made by Sonic Network for embedded devices, recorded and looped on their
own and not taken from the SoundFonts the project already uses (``python -m benchmarks.independence``
measures that), so it is a library of its own.  It is small and band-limited: the synthesiser runs at
22.05 kHz, so nothing lies above 11 kHz, as in a phone's or a small speaker's recording of an instrument.

:class:`SonivoxLibrary` drives the library through ctypes, as a live MIDI stream: every render gets a fresh
synthesiser (no voice state leaks from one note into the next), events take effect on the synthesiser's
128-sample mix blocks, reverb and chorus are bypassed so the data holds the instrument and not a room, and the
mono mix is resampled to the dataset's rate.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from pathlib import Path

import numpy as np
import scipy.signal

from training.performance import Performance, midi_message

_EAS_OK = 0
_MODULE_REVERB, _MODULE_CHORUS, _PARAM_BYPASS = 2, 3, 0  # eas.h E_FX_MODULES; eas_reverb.h, eas_chorus.h
_FULL_SCALE = 32768.0


class SonivoxError(Exception):
    """libsonivox is missing, or the synthesiser refused a call."""


class _Config(ctypes.Structure):
    """eas.h's S_EAS_LIB_CONFIG up to the fields read here (EAS_U32 and EAS_I32 are C longs)."""

    _fields_ = [("lib_version", ctypes.c_ulong), ("checked_version", ctypes.c_uint),
                ("max_voices", ctypes.c_long), ("channels", ctypes.c_long), ("sample_rate", ctypes.c_long),
                ("mix_block", ctypes.c_long), ("filter_enabled", ctypes.c_uint)]


def _load() -> ctypes.CDLL:
    name = ctypes.util.find_library("sonivox")
    if name is None:
        raise SonivoxError("libsonivox is not installed (apt-get install libsonivox3); it renders the sonivox library")
    lib = ctypes.CDLL(name)
    lib.EAS_Config.restype = ctypes.POINTER(_Config)
    for function in ("EAS_Init", "EAS_Shutdown", "EAS_Render", "EAS_OpenMIDIStream", "EAS_WriteMIDIStream",
                     "EAS_CloseMIDIStream", "EAS_SetParameter"):
        getattr(lib, function).restype = ctypes.c_long
    return lib


class _Synth:
    """One EAS instance with one MIDI stream open: send MIDI bytes, render mix blocks."""

    def __init__(self, lib: ctypes.CDLL, config: _Config) -> None:
        self._lib, self._config = lib, config
        self._handle, self._stream = ctypes.c_void_p(), ctypes.c_void_p()
        self._check(lib.EAS_Init(ctypes.byref(self._handle)), "EAS_Init")
        for module in (_MODULE_REVERB, _MODULE_CHORUS):
            self._check(lib.EAS_SetParameter(self._handle, ctypes.c_long(module), ctypes.c_long(_PARAM_BYPASS),
                                             ctypes.c_long(1)), "bypassing an effect")
        self._check(lib.EAS_OpenMIDIStream(self._handle, ctypes.byref(self._stream), None), "EAS_OpenMIDIStream")
        self._block = (ctypes.c_short * (config.mix_block * config.channels))()

    def send(self, *message: int) -> None:
        data = (ctypes.c_ubyte * len(message))(*message)
        self._check(self._lib.EAS_WriteMIDIStream(self._handle, self._stream, data, ctypes.c_long(len(message))),
                    "EAS_WriteMIDIStream")

    def render(self, blocks: int) -> np.ndarray:
        """``blocks`` mix blocks, mono, as float in [-1, 1]."""
        out = np.empty((blocks, self._config.mix_block), dtype=np.float32)
        generated = ctypes.c_long()
        for index in range(blocks):
            self._check(self._lib.EAS_Render(self._handle, self._block, ctypes.c_long(self._config.mix_block),
                                             ctypes.byref(generated)), "EAS_Render")
            frames = np.frombuffer(self._block, dtype=np.int16).reshape(-1, self._config.channels)
            out[index] = frames.mean(axis=1) / _FULL_SCALE
        return out.reshape(-1)

    def close(self) -> None:
        self._lib.EAS_CloseMIDIStream(self._handle, self._stream)
        self._lib.EAS_Shutdown(self._handle)

    @staticmethod
    def _check(result: int, what: str) -> None:
        if result != _EAS_OK:
            raise SonivoxError(f"Sonivox EAS refused {what} (error {result})")


class SonivoxLibrary:
    """Renders performances of any General MIDI program with the Sonivox EAS wavetable."""

    def __init__(self, sample_rate: int = 44100) -> None:
        self._lib = _load()
        self._config = self._lib.EAS_Config().contents
        self.sample_rate = sample_rate
        self.path = Path("sonivox")

    def has_program(self, program: int) -> bool:
        """Every General MIDI melodic program has a voice in the wavetable."""
        return 0 <= program < 128

    def render(self, program: int, performance: Performance) -> np.ndarray:
        """Mono float32 audio of ``performance`` on ``program`` at the library's rate, performance.length_s long."""
        if not self.has_program(program):
            raise SonivoxError(f"no General MIDI program {program}")
        native = int(self._config.sample_rate)
        block = int(self._config.mix_block)
        n_blocks = max(1, math.ceil(performance.length_s * native / block))
        synth = _Synth(self._lib, self._config)
        try:
            synth.send(0xC0, program)
            pieces, done = [], 0
            for event in sorted(performance.events, key=lambda e: e.time_s):
                due = min(n_blocks, round(float(event.time_s * native / block)))
                if due > done:
                    pieces.append(synth.render(due - done))
                    done = due
                synth.send(*midi_message(event).bytes())
            pieces.append(synth.render(n_blocks - done))
        finally:
            synth.close()
        audio = np.concatenate(pieces)
        if self.sample_rate != native:
            step = math.gcd(self.sample_rate, native)
            audio = scipy.signal.resample_poly(audio, self.sample_rate // step, native // step)
        length = round(float(performance.length_s * self.sample_rate))
        out = np.zeros(length, dtype=np.float32)
        out[: min(length, len(audio))] = audio[:length]
        return out

