"""A physically modelled instrument library: Csound's digital-waveguide opcodes, played like a SoundFont.

Three General MIDI libraries are three recordings of each instrument; a model that learns from them alone
learns their samples.  Waveguide models (Csound's ``wgbow`` and ``wgclar``) make their sound from a
bow or a reed driving a delay-line string or bore, so they share no sample with any library
(docs/design.md section 6).  :class:`CsoundLibrary` renders the same
:class:`training.performance.Performance` (notes, velocity, CC11 expression, pitch bend) that
:class:`training.render.Library` renders with FluidSynth, so ``training.data render --physical csound`` writes
the same dataset layout, expressive variants and phrases included.

Five of the 14 classes have a waveguide here: the four bowed strings (one bowed string with a different
body each: a few resonances at the instrument's typical body modes) and the clarinet, in tune within
about 35 cents over their ranges.  The others have none: the library leaves them out (``has_program`` is
False), and ``training.data render --physical csound`` renders the five.  Measured with Csound 6.18 and left
out: ``wgbrass`` renders exact silence for every lip tension and pressure tried (0.05-0.95, 0.3-3000), and
``wgflute`` sounds 6-15 semitones off its asked pitch for every jet ratio tried (0.15-0.5), which would
mislabel every note; the Synthesis ToolKit's ``Brass``, ``Flute`` and ``Saxofony`` are the next candidates.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from training.instruments import BY_NAME
from training.performance import CONTROL_PERIOD_S, Performance, control_curves, notes_of

KSMPS = 32


class CsoundError(Exception):
    """Csound is missing or a render failed."""


@dataclass(frozen=True)
class Voice:
    """How one class is played: the Csound instrument (``bowed`` or ``clarinet``), its model parameter
    (bow pressure or reed stiffness) and, for strings, its body: ``(centre Hz,
    bandwidth Hz, gain)`` resonances added to the dry sound."""

    instrument: str
    parameter: float
    resonances: tuple[tuple[float, float, float], ...] = ()


#: Body modes after the air (A0) and main wood (B1-, B1+) resonances and the bridge hill of each string.
VOICES: dict[str, Voice] = {
    "violin": Voice("bowed", 3.0, ((275.0, 60.0, 1.5), (460.0, 80.0, 1.2), (540.0, 90.0, 1.2), (2800.0, 1200.0, 0.8))),
    "viola": Voice("bowed", 3.2, ((220.0, 50.0, 1.5), (350.0, 70.0, 1.2), (440.0, 80.0, 1.0), (2000.0, 900.0, 0.7))),
    "cello": Voice("bowed", 3.5, ((100.0, 25.0, 1.6), (175.0, 40.0, 1.2), (210.0, 50.0, 1.2), (1200.0, 600.0, 0.6))),
    "contrabass": Voice("bowed", 3.8, ((60.0, 15.0, 1.6), (100.0, 25.0, 1.2), (125.0, 30.0, 1.0), (700.0, 400.0, 0.5))),
    "clarinet": Voice("clarinet", -0.3),
}
PROGRAM_VOICES: dict[int, Voice] = {BY_NAME[name].program: voice for name, voice in VOICES.items()}

ORCHESTRA = """
sr = {sample_rate}
ksmps = {ksmps}
nchnls = 1
0dbfs = 1
gisine ftgen 1, 0, 8192, 10, 1

opcode Controls, kk, 0
  ; expression (0-1) and pitch bend (frequency ratio) at the current time, from tables 2 and 3
  kindex = times:k() / {control_period}
  kexpression tablei kindex, 2
  kbend tablei kindex, 3
  xout kexpression, kbend
endop

instr 1 ; bowed string + body resonances: p4 key, p5 velocity, p6 bow pressure, p7.. resonances
  kexpr, kbend Controls
  ifreq = cpsmidinn(p4)
  kamp = (p5 / 127) ^ 1.5 * kexpr * linsegr(0, 0.06, 1, 0.12, 0)
  asig wgbow kamp * 0.4, ifreq * kbend, p6, 0.127, 0, 0, 1, ifreq * 0.7
  abody = asig
  abody += butbp(asig, p7, p8) * p9
  abody += butbp(asig, p10, p11) * p12
  abody += butbp(asig, p13, p14) * p15
  abody += butbp(asig, p16, p17) * p18
  out abody
endin


instr 2 ; clarinet: p6 reed stiffness
  kexpr, kbend Controls
  ifreq = cpsmidinn(p4)
  kamp = (0.4 + 0.6 * p5 / 127) * kexpr * linsegr(0, 0.04, 1, 0.06, 0)
  asig wgclar kamp * 0.5, ifreq * kbend, p6, 0.08, 0.1, 0.05, 0, 0, 1, ifreq * 0.7
  out asig
endin

"""
INSTRUMENT_NUMBERS = {"bowed": 1, "clarinet": 2}


class CsoundLibrary:
    """Renders performances of the classes in :data:`VOICES` with the ``csound`` command line."""

    def __init__(self, sample_rate: int = 44100) -> None:
        self.csound = shutil.which("csound")
        if self.csound is None:
            raise CsoundError("csound is not installed (apt-get install csound); it renders the waveguide library")
        self.sample_rate = sample_rate
        self.path = Path("csound")  # what summary.json names as the source

    def has_program(self, program: int) -> bool:
        return program in PROGRAM_VOICES

    def render(self, program: int, performance: Performance) -> np.ndarray:
        """Mono float32 audio of ``performance`` played by the waveguide voice of ``program``."""
        voice = PROGRAM_VOICES.get(program)
        if voice is None:
            raise CsoundError(f"no waveguide voice for General MIDI program {program}")
        length = round(float(performance.length_s * self.sample_rate))
        with tempfile.TemporaryDirectory(prefix="waveguide-") as folder:
            csd, wav = Path(folder) / "render.csd", Path(folder) / "render.wav"
            csd.write_text(self._csd(voice, performance))
            result = subprocess.run([self.csound, "-d", "-m0", "-W", "-f", "-o", str(wav), str(csd)],
                                    capture_output=True, text=True, check=False)
            if result.returncode != 0 or not wav.is_file():
                raise CsoundError(f"csound failed ({result.returncode}): {result.stderr.strip()[-300:]}")
            audio, _ = sf.read(str(wav), dtype="float32")
        audio = np.nan_to_num(np.asarray(audio, dtype=np.float32))
        out = np.zeros(length, dtype=np.float32)
        out[: min(length, len(audio))] = audio[:length]
        return out

    def _csd(self, voice: Voice, performance: Performance) -> str:
        orchestra = ORCHESTRA.format(sample_rate=self.sample_rate, ksmps=KSMPS, control_period=CONTROL_PERIOD_S)
        expression, bend = control_curves(performance)
        score = [_table(2, expression), _table(3, bend)]
        number = INSTRUMENT_NUMBERS[voice.instrument]
        for start, duration, key, velocity in notes_of(performance):
            fields = [number, f"{start:.4f}", f"{duration:.4f}", key, velocity, voice.parameter]
            fields += [value for resonance in voice.resonances for value in resonance]
            score.append("i " + " ".join(str(f) for f in fields))
        score.append(f"e {performance.length_s:.4f}")
        return (f"<CsoundSynthesizer>\n<CsOptions>\n</CsOptions>\n<CsInstruments>\n{orchestra}\n</CsInstruments>\n"
                f"<CsScore>\n" + "\n".join(score) + "\n</CsScore>\n</CsoundSynthesizer>\n")


def _table(number: int, values: np.ndarray) -> str:
    """A Csound score line defining table ``number`` from ``values`` (GEN -2: no normalisation)."""
    size = len(values)
    return f"f {number} 0 {size} -2 " + " ".join(f"{v:.5f}" for v in values)
