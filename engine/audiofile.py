"""Reading and writing audio files with clear errors (soundfile: WAV, FLAC, OGG and more)."""

from __future__ import annotations

import re
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.atomic import replacing
from engine.errors import AudioFileError


class AudioFileWarning(UserWarning):
    """An audio file that can be used, but not as its maker meant (e.g. cut short)."""


#: Sound files the project reads (datasets, folder jobs): what libsndfile reads without extra codecs.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif")
#: libsndfile's note on a WAV/AIFF whose data chunk is shorter than its header says: "data : 288000 (should be 99956)".
_TRUNCATED = re.compile(r"^(data|SSND)\s*:.*should be", re.MULTILINE)


@contextmanager
def open_audio(path: str | Path) -> Iterator[sf.SoundFile]:
    """A sound file open for reading block by block, with clear :class:`AudioFileError` for a missing,
    unreadable or empty file, and an :class:`AudioFileWarning` for one cut short."""
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"audio file not found: {path}")
    try:
        file = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, ValueError) as error:
        raise AudioFileError(f"cannot read {path} as audio ({error}); use WAV, FLAC or OGG") from None
    with file:
        if not file.frames:
            raise AudioFileError(f"{path} contains no samples")
        if _TRUNCATED.search(file.extra_info):
            warnings.warn(f"{path} is truncated (its header promises more audio than the file holds); "
                          f"using the {file.frames / file.samplerate:.1f} s that are there", AudioFileWarning,
                          stacklevel=3)
        yield file


def read_mono(file: sf.SoundFile, frames: int = -1) -> np.ndarray:
    """The next ``frames`` (all that are left: -1) of an open file as float32 mono (channels averaged)."""
    try:
        return file.read(frames, dtype="float32", always_2d=True).mean(axis=1)
    except (sf.LibsndfileError, RuntimeError, ValueError) as error:
        raise AudioFileError(f"cannot read {file.name} past {file.tell()} samples ({error})") from None


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read any soundfile-supported file as float32 mono; a clear :class:`AudioFileError` otherwise."""
    with open_audio(path) as file:
        return read_mono(file), int(file.samplerate)


def matching_subtype(source: str | Path, destination: str | Path) -> str | None:
    """``source``'s sample format (PCM_24, FLOAT, ...) when ``destination``'s format can hold it, else
    None (that format's default): so a 24-bit or float take is not written back as 16-bit."""
    try:
        subtype = sf.info(str(source)).subtype
    except (sf.LibsndfileError, RuntimeError, ValueError):
        return None
    extension = Path(destination).suffix.lstrip(".").upper()
    return subtype if extension in sf.available_formats() and sf.check_format(extension, subtype) else None


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int, subtype: str | None = None) -> None:
    """Write float32 audio whole or not at all (a failed write leaves any earlier file at ``path``); the
    format follows the extension (WAV, FLAC, OGG), the sample format is ``subtype`` or the format's default."""
    path = Path(path)
    try:
        with replacing(path) as temporary:
            sf.write(str(temporary), audio, sample_rate, subtype=subtype)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError) as error:
        raise AudioFileError(f"cannot write {path} ({error}{free_space(path)}); check the folder, the free space "
                             "and the extension (any earlier file there is untouched)") from None


def free_space(path: Path) -> str:
    """``"; N MB free on its disk"`` for an error message, or nothing when the folder cannot be asked."""
    try:
        return f"; {shutil.disk_usage(path.parent).free / 1e6:.0f} MB free on its disk"
    except OSError:
        return ""


def clipped_samples(audio: np.ndarray, destination: str | Path | None, subtype: str | None = None) -> int:
    """How many samples of ``audio`` a file at ``destination`` clips: those beyond full scale, unless the
    file stores floats (float WAV keeps them; so does no file at all)."""
    if destination is None:
        return 0
    subtype = subtype or sf.default_subtype(Path(destination).suffix.lstrip(".").upper())
    if subtype in ("FLOAT", "DOUBLE"):
        return 0
    return int(np.count_nonzero(np.abs(audio) > 1.0))
