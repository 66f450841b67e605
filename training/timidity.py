"""A sample library that is not a SoundFont: Gravis UltraSound patches played by TiMidity++.

Freepats (Debian ``freepats``) is a General MIDI patch set recorded and assembled on its own, not from
the SoundFonts the project already uses, so it is a library of its own and a leave-one-out rotation of
its own.  It covers 12 of the 14 classes (no viola, no contrabass).  FluidSynth cannot read GUS
patches; TiMidity++ can, from a MIDI file.  :class:`PatchLibrary` writes a
:class:`training.performance.Performance` as a one-track MIDI file (with ``mido``) at one tick per
millisecond and renders it with ``timidity`` to 16-bit mono WAV, reverb, chorus and delay off, so the
data holds the instrument and not TiMidity's room.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import mido
import numpy as np
import soundfile as sf

from training.performance import Performance, midi_message

FREEPATS = Path("/etc/timidity/freepats.cfg")
TICKS_PER_SECOND = 1000  # ticks_per_beat at a tempo of one beat per second: a tick is a millisecond
_PATCH_LINE = re.compile(r"^\s*(\d+)\s+\S+\.pat\b")


class PatchError(Exception):
    """timidity or the patch set is missing, or a render failed."""


class PatchLibrary:
    """Renders performances with TiMidity++ from a patch-set configuration such as :data:`FREEPATS`."""

    def __init__(self, config: str | Path = FREEPATS, sample_rate: int = 44100) -> None:
        self.timidity = shutil.which("timidity")
        if self.timidity is None:
            raise PatchError("timidity is not installed (apt-get install timidity freepats); it renders patch sets")
        self.path = Path(config)
        if not self.path.is_file():
            raise PatchError(f"patch set configuration not found: {self.path} (apt-get install freepats)")
        self.sample_rate = sample_rate
        self.programs = melodic_programs(self.path)

    def has_program(self, program: int) -> bool:
        """Whether bank 0 has a patch for this program (TiMidity would fall back to another silently)."""
        return program in self.programs

    def render(self, program: int, performance: Performance) -> np.ndarray:
        if not self.has_program(program):
            raise PatchError(f"{self.path} has no bank 0 patch for General MIDI program {program}")
        length = round(float(performance.length_s * self.sample_rate))
        with tempfile.TemporaryDirectory(prefix="timidity-") as folder:
            midi, wav = Path(folder) / "render.mid", Path(folder) / "render.wav"
            midi_file(program, performance).save(str(midi))
            result = subprocess.run(
                [self.timidity, "-c", str(self.path), "-s", str(self.sample_rate), "--output-mono", "-Ow",
                 "-o", str(wav), "-EFreverb=d", "-EFchorus=d", "-EFdelay=d", "--preserve-silence", str(midi)],
                capture_output=True, text=True, cwd=folder, check=False)
            if result.returncode != 0 or not wav.is_file():
                raise PatchError(f"timidity failed ({result.returncode}): {result.stderr.strip()[-300:]}")
            audio, _ = sf.read(str(wav), dtype="float32")
        out = np.zeros(length, dtype=np.float32)
        out[: min(length, len(audio))] = audio[:length]
        return out


def melodic_programs(config: Path) -> set[int]:
    """The programs of the configuration's ``bank 0`` section (drum sets and other banks left out)."""
    programs: set[int] = set()
    section = ""
    for line in config.read_text(errors="replace").splitlines():
        words = line.split()
        if words and words[0] in ("bank", "drumset"):
            section = " ".join(words[:2])
        elif section == "bank 0" and (match := _PATCH_LINE.match(line)):
            programs.add(int(match.group(1)))
    return programs


def midi_file(program: int, performance: Performance) -> mido.MidiFile:
    """The performance on channel 0 of a one-track MIDI file, at one tick per millisecond."""
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=1_000_000, time=0),
                            mido.Message("program_change", program=program, time=0)])
    now = 0
    for event in sorted(performance.events, key=lambda e: e.time_s):
        tick = round(float(event.time_s * TICKS_PER_SECOND))
        track.append(midi_message(event).copy(time=tick - now))
        now = tick
    end = round(float(performance.length_s * TICKS_PER_SECOND))  # render on through the release
    track.append(mido.MetaMessage("end_of_track", time=max(0, end - now)))
    return mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_SECOND, tracks=[track])

