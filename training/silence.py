"""Find renders that hold no instrument sound, and cut the silence after a note's release.

FluidR3_GM has no samples for some keys (contrabass MIDI 58-67, violin 94): FluidSynth then renders
zeros (one-bit noise once dithered to 16 bits). Training on those files would teach a class that
silence is contrabass, so they must be detected and dropped, never written.
"""

from __future__ import annotations

import numpy as np

SILENT_PEAK_DBFS = -60.0  # a real note at pp peaks far above this (about -35 dBFS at the quietest)
SILENT_RMS_DBFS = -75.0
TAIL_FLOOR_DB = -60.0  # trailing frames this far below the loudest frame count as silence
FRAME_S = 0.01
FADE_S = 0.01


def level_dbfs(audio: np.ndarray) -> tuple[float, float]:
    """(peak, RMS) of audio in dBFS; -inf for digital silence."""
    if audio.size == 0:
        return float("-inf"), float("-inf")
    peak = float(np.max(np.abs(audio)))
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    with np.errstate(divide="ignore"):
        return float(20 * np.log10(peak)), float(20 * np.log10(rms))


def is_silent(audio: np.ndarray) -> bool:
    """True when the render is silence or near-silence (peak below -60 dBFS or RMS below -75 dBFS)."""
    peak_db, rms_db = level_dbfs(audio)
    return peak_db < SILENT_PEAK_DBFS or rms_db < SILENT_RMS_DBFS


def trim_trailing_silence(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Cut after the last 10 ms frame within 60 dB of the loudest one, with a 10 ms fade-out.

    The fade avoids a click where a long release is cut; nothing before the cut point is changed.
    """
    frame = max(1, int(FRAME_S * sample_rate))
    n_frames = len(audio) // frame
    if n_frames == 0:
        return audio
    frames = audio[: n_frames * frame].reshape(n_frames, frame).astype(np.float64)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    if rms.max() <= 0.0:
        return audio
    loud = np.nonzero(rms >= rms.max() * 10 ** (TAIL_FLOOR_DB / 20))[0]
    end = min(len(audio), (int(loud[-1]) + 1) * frame + int(FADE_S * sample_rate))
    if end >= len(audio):
        return audio
    out = audio[:end].copy()
    fade = min(int(FADE_S * sample_rate), end)
    out[end - fade:] *= np.linspace(1.0, 0.0, fade, dtype=out.dtype)
    return out
