"""A second physically modelled library: the Synthesis ToolKit's instruments, played like a SoundFont.

The Synthesis ToolKit (Debian ``stk``) models a saxophone, a flute, a clarinet and a bowed string with
its own waveguides, independent of Csound's (:mod:`training.csound`), so it is a library of its own
and a leave-one-out rotation of its own.  :class:`StkLibrary` turns a
:class:`training.performance.Performance` into a SKINI score (note on/off; pitch bend as fractional note
numbers) and renders it with ``stk-demo``.  Bowed strings get the same body resonances as the Csound
strings.

The winds only speak above a breath pressure of about 90/128: at 64 the clarinet squeaks 6 semitones
sharp at a tenth of its level and the flute falls 75 cents (measured).  So every note is blown at a
speaking pressure that grows a little with velocity, and velocity and CC11 expression shape the level of
the rendered audio instead.

Measured pitch over each voice's range (autocorrelation, 0.3-0.8 s into a note): ``Saxofony`` 6-33
cents flat, ``Flute`` 24-46 cents sharp (tuned down 35 cents here), ``Clarinet`` exact, ``Bowed`` within
43 cents.  ``Brass`` does not speak below about MIDI 70 (peaks of 0.003 for every lip tension), so the
brass classes have no voice here either.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile as sf

from training.csound import VOICES as CSOUND_VOICES
from training.instruments import BY_NAME
from training.performance import CONTROL_PERIOD_S, Performance, control_curves, level_curve, notes_of

#: The NoteOn velocity STK gets: a speaking pressure, from 92 at velocity 0 to 112 at 127 (Saxofony
#: clips at 120).
SPEAKING_VELOCITY = (92.0, 112.0)


class StkError(Exception):
    """stk-demo is missing or a render failed."""


@dataclass(frozen=True)
class StkVoice:
    """An STK instrument, a tuning correction (cents) and, for strings, body resonances as in Csound's."""

    instrument: str
    tuning_cents: float = 0.0
    resonances: tuple[tuple[float, float, float], ...] = ()


VOICES: dict[str, StkVoice] = {
    "alto_sax": StkVoice("Saxofony"),
    "flute": StkVoice("Flute", tuning_cents=-35.0),
    "clarinet": StkVoice("Clarinet"),
    **{name: StkVoice("Bowed", resonances=CSOUND_VOICES[name].resonances)
       for name in ("violin", "viola", "cello", "contrabass")},
}
PROGRAM_VOICES: dict[int, StkVoice] = {BY_NAME[name].program: voice for name, voice in VOICES.items()}


class StkLibrary:
    """Renders performances of the classes in :data:`VOICES` with ``stk-demo``."""

    def __init__(self, sample_rate: int = 44100) -> None:
        self.stk_demo = shutil.which("stk-demo")
        if self.stk_demo is None:
            raise StkError("stk-demo is not installed (apt-get install stk); it renders the STK library")
        self.sample_rate = sample_rate
        self.path = Path("stk-demo")

    def has_program(self, program: int) -> bool:
        return program in PROGRAM_VOICES

    def render(self, program: int, performance: Performance) -> np.ndarray:
        voice = PROGRAM_VOICES.get(program)
        if voice is None:
            raise StkError(f"no STK voice for General MIDI program {program}")
        length = round(float(performance.length_s * self.sample_rate))
        with tempfile.TemporaryDirectory(prefix="stk-") as folder:
            score, wav = Path(folder) / "render.ski", Path(folder) / "render.wav"
            score.write_text(skini(performance, voice.tuning_cents))
            result = subprocess.run([self.stk_demo, voice.instrument, "-ow", str(wav), "-if", str(score),
                                     "-s", str(self.sample_rate)], capture_output=True, text=True, cwd=folder,
                                    check=False)
            if result.returncode != 0 or not wav.is_file():
                raise StkError(f"stk-demo failed ({result.returncode}): {result.stderr.strip()[-300:]}")
            audio, _ = sf.read(str(wav), dtype="float64")
        audio = audio.mean(axis=1) if audio.ndim > 1 else audio
        out = np.zeros(length)
        out[: min(length, len(audio))] = audio[:length]
        return (self._body(out, voice) * level_curve(performance, self.sample_rate, length)).astype(np.float32)

    def _body(self, audio: np.ndarray, voice: StkVoice) -> np.ndarray:
        body = audio.copy()
        for centre, bandwidth, gain in voice.resonances:
            band = (max(centre - bandwidth / 2, 10.0), centre + bandwidth / 2)
            sos = scipy.signal.butter(2, band, btype="bandpass", fs=self.sample_rate, output="sos")
            body += gain * scipy.signal.sosfilt(sos, audio)
        return body / (1.0 + sum(gain for *_, gain in voice.resonances))


def skini(performance: Performance, tuning_cents: float = 0.0) -> str:
    """The performance as SKINI messages with delta times: notes and their pitch bends."""
    _, bend = control_curves(performance)
    low, high = SPEAKING_VELOCITY
    messages: list[tuple[float, str]] = []
    for start, duration, key, velocity in notes_of(performance):
        note = key + tuning_cents / 100
        messages.append((start, f"NoteOn {{dt}} 1 {note:.4f} {low + (high - low) * velocity / 127:.1f}"))
        first, last = round(float(start / CONTROL_PERIOD_S)), round(float((start + duration) / CONTROL_PERIOD_S))
        previous = 1.0
        for index in range(first, min(last, len(bend))):
            if bend[index] != previous:
                sent = note + 12 * np.log2(bend[index])
                messages.append((index * CONTROL_PERIOD_S + 1e-4, f"PitchChange {{dt}} 1 {sent:.4f}"))
                previous = bend[index]
        messages.append((start + duration, f"NoteOff {{dt}} 1 {key} 64"))
    messages.sort(key=lambda message: message[0])
    lines, now = [], 0.0
    for time_s, text in messages:
        lines.append(text.format(dt=f"{max(time_s - now, 0.0):.6f}"))
        now = max(now, time_s)
    # A silent message at the end, so that the render runs on through the release.
    lines.append(f"ControlChange {max(performance.length_s - now, 0.0):.6f} 1 1 0")
    return "\n".join(lines) + "\n"
