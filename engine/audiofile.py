"""Reading and writing audio files with clear errors (soundfile: WAV, FLAC, OGG and more)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from engine.errors import AudioFileError


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read any soundfile-supported file as float32 mono; a clear :class:`AudioFileError` otherwise."""
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"audio file not found: {path}")
    try:
        audio, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as error:
        raise AudioFileError(f"cannot read {path} as audio ({error}); use WAV, FLAC or OGG") from None
    if not len(audio):
        raise AudioFileError(f"{path} contains no samples")
    return audio.mean(axis=1), int(sample_rate)


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write float32 audio; the format follows the extension (WAV, FLAC, OGG)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), audio, sample_rate)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError) as error:
        raise AudioFileError(f"cannot write {path} ({error}); check the folder and the extension") from None
