"""General MIDI SoundFonts as the WebAudioFont collection publishes them: one JavaScript file per instrument.

Surikov's WebAudioFont (github.com/surikov/webaudiofontdata, ``sound/``) carries the General MIDI instruments of
several freely distributed SoundFonts, each instrument a file ``<program * 10 + variant>_<font>.js`` that holds
the SoundFont's zones: key range, root pitch and tuning, sustain loop, sample rate, and the sample itself (an
MP3, or 16-bit PCM, in base64).  Of its fonts, GeneralUserGS, Aspirin and JCLive share no recording with the
project's other libraries (:data:`INDEPENDENT_FONTS`, measured by ``python -m benchmarks.independence``); its
FluidR3_GM is the FluidR3 the project already has, and useful as a check of this player against FluidSynth.

:class:`WebAudioFont` plays one font's files the way WebAudioFont's own player does: each key sounds the zone
whose key range holds it (the last listed, as the player searches), transposed from the zone's root and tuning,
looping its sustain loop while held, bent by the performance's pitch bend, faded out after the note-off, scaled
by velocity and CC11 expression (:func:`training.performance.level_curve`).  The SoundFonts' own envelopes and
filters are not read (neither does WebAudioFont's player): the samples carry the attack.
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from training.instruments import INSTRUMENTS
from training.sampler import Voice, VoicedLibrary

#: Where ``training/fetch_webaudiofont.sh`` puts the instruments' files.
DEFAULT_SOUND_DIR = Path("data/sources/webaudiofontdata/sound")
#: The fonts of the collection that hold all 14 classes and are not FluidR3_GM: library name -> the font's name
#: in the collection's file names.
FONTS = {"GeneralUserGS": "GeneralUserGS_sf2_file", "Aspirin": "Aspirin_sf2_file", "JCLive": "JCLive_sf2_file",
         "SBLive": "SBLive_sf2", "SoundBlasterOld": "SoundBlasterOld_sf2", "Chaos": "Chaos_sf2_file"}
#: Those that share no recording with the project's other libraries (benchmarks/results/independence: SBLive
#: shares 4-6 classes with TimGM6mb and sf_GMbank, Chaos shares Aspirin's and sf_GMbank's, SoundBlasterOld is
#: related to sf_GMbank).
INDEPENDENT_FONTS = ("GeneralUserGS", "Aspirin", "JCLive")
_FIELD = re.compile(r"(\w+)\s*:\s*(?:'([^']*)'|(-?[\d.]+))")
_PCM_FULL_SCALE = 32768.0


def file_prefix(program: int) -> str:
    """How the collection's file names begin for General MIDI ``program`` (0-based), its first variant: ``0400``
    for the violin (``training/fetch_webaudiofont.sh`` asks for the same files)."""
    return f"{program * 10:04d}"


class WebAudioFontError(Exception):
    """The instruments' folder is missing, holds no file of the font, or a file cannot be read."""


@dataclass(frozen=True)
class Zone:
    """One sample of an instrument and the keys it plays."""

    key_low: int
    key_high: int
    root_cents: float  # the pitch the sample sounds at its own rate, MIDI cents (6900 = A4)
    audio: np.ndarray  # mono float64
    sample_rate: int  # of ``audio`` (an MP3 may decode at another rate than the SoundFont's sample)
    loop: tuple[int, int] | None  # in samples of ``audio``

    def ratio(self, key: int, output_rate: int) -> float:
        """Samples of ``audio`` read per output sample for ``key``."""
        return 2.0 ** ((100.0 * key - self.root_cents) / 1200.0) * self.sample_rate / output_rate


def read_zones(path: Path) -> list[Zone]:
    """The zones of one instrument file, in the order the file lists them."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if "zones:[" not in text:
        raise WebAudioFontError(f"{path} is not a WebAudioFont instrument (no zones)")
    zones = []
    for chunk in text[text.index("zones:[") :].split("}")[:-1]:
        fields = {m.group(1): m.group(2) if m.group(2) is not None else m.group(3) for m in _FIELD.finditer(chunk)}
        if "originalPitch" in fields and ("file" in fields or "sample" in fields):
            zones.append(_zone(fields, path))
    if not zones:
        raise WebAudioFontError(f"{path} holds no zone with a sample")
    return zones


def _zone(fields: dict[str, str], path: Path) -> Zone:
    stored_rate = float(fields["sampleRate"])
    try:
        if "file" in fields:
            audio, rate = sf.read(io.BytesIO(base64.b64decode(fields["file"])), dtype="float64", always_2d=True)
            audio = audio.mean(axis=1)
        else:
            audio = np.frombuffer(base64.b64decode(fields["sample"]), dtype="<i2") / _PCM_FULL_SCALE
            rate = round(stored_rate)
    except (ValueError, sf.LibsndfileError, RuntimeError) as error:
        raise WebAudioFontError(f"cannot decode a sample of {path}: {error}") from error
    # loop points count the SoundFont's samples; an MP3 holds the sample resampled to its own rate
    loop_start, loop_end = (round(int(fields.get(name, "0")) * rate / stored_rate) for name in ("loopStart", "loopEnd"))
    loop = (loop_start, loop_end) if 1 <= loop_start < loop_end <= len(audio) else None
    tuning = 100.0 * float(fields.get("coarseTune", "0")) + float(fields.get("fineTune", "0"))
    root = float(fields["originalPitch"]) - tuning
    return Zone(int(fields["keyRangeLow"]), int(fields["keyRangeHigh"]), root, audio, int(rate), loop)


class WebAudioFont(VoicedLibrary):
    """Plays one font of the collection, ``<sound_dir>/<program * 10>_<font>.js`` per class (``font`` as the
    file names spell it, e.g. ``GeneralUserGS_sf2_file``: :data:`FONTS`)."""

    def __init__(self, font: str, sound_dir: str | Path = DEFAULT_SOUND_DIR, sample_rate: int = 44100) -> None:
        self.path = Path(sound_dir)
        if not self.path.is_dir():
            raise WebAudioFontError(f"instruments folder not found: {self.path} "
                                    "(training/fetch_webaudiofont.sh fetches it)")
        self.sample_rate = sample_rate
        named = ((inst.program, self.path / f"{file_prefix(inst.program)}_{font}.js") for inst in INSTRUMENTS)
        self.files = {program: path for program, path in named if path.is_file()}
        if not self.files:
            raise WebAudioFontError(f"{self.path} holds no instrument of the font {font}")
        self._zones: dict[int, list[Zone]] = {}

    def has_program(self, program: int) -> bool:
        return program in self.files

    def voice(self, program: int, key: int) -> Voice | None:
        zone = self._zone_for(program, key)
        return None if zone is None else (zone.audio, zone.ratio(key, self.sample_rate), zone.loop)

    def _zone_for(self, program: int, key: int) -> Zone | None:
        """The zone WebAudioFont's player sounds for ``key``: the last whose key range holds it, or none."""
        if program not in self._zones:
            self._zones[program] = read_zones(self.files[program])
        holding = [zone for zone in self._zones[program] if zone.key_low <= key <= zone.key_high]
        return holding[-1] if holding else None
