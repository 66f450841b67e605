"""Is a class's sustained harmonic spectrum enough to be heard as that class?  An offline check made before
building issue #9's harmonic-plus-noise carrier.

    python -m benchmarks.harmonic_table --phrases data/FluidR3_GM --libraries data/TimGM6mb data/sf_GMbank \\
        --classifier runs/judge-fluidr3/cnn.pt --targets violin,cello,flute,trumpet,clarinet --max-phrases 1

A harmonic carrier would play partials at the input's pitch with the target's partial levels.  Here those
levels are the best a table can give: per target and MIDI note of the ``--libraries`` (the transfer model's
training libraries, so the honest judge has not heard them), each harmonic's level relative to the strongest,
averaged over the steady frames (within 10 dB of the note's peak) of its plain, long and vibrato renderings.
Each phrase of another class (the transfer benchmark's phrases: ``DIR/phrases/<class>/*.wav`` with notes) is
resynthesised additively: the notes' own pitches (no tracker error), the nearest note's table, the phrase's
own level envelope, a noise floor 40 dB down.  The judge (``--classifier``) names each output.  Beside it the
target's *own* phrases go through the same resynthesis: that hit rate is the approach's ceiling.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import librosa
import numpy as np

from benchmarks.transfer import read_notes, select_phrases, to_rate
from engine.audiofile import read_audio
from engine.frontend import log_mel
from engine.stft import stft
from training.baselines import CnnClassifier
from training.layouts import scan

N_FFT, HOP = 4096, 512
HARMONICS = 80
#: Renderings whose steady part is a held note (not crescendi, diminuendi or short notes).
STEADY_VARIANTS = ("plain", "long", "vibrato")
STEADY_DB = 10.0
NOISE_FLOOR = 0.01
ENVELOPE_HOP = 256


def harmonic_levels(audio: np.ndarray, rate: int, midi: int) -> np.ndarray | None:
    """``(HARMONICS,)`` levels in dB re the strongest over the steady frames of one note (NaN above Nyquist),
    or None for a note too short to have any."""
    if len(audio) < N_FFT + 4 * HOP:
        return None
    magnitude = np.abs(stft(audio, N_FFT, HOP))
    level = 10.0 * np.log10(np.sum(magnitude**2, axis=1) + 1e-12)
    steady = level > level.max() - STEADY_DB
    steady[:3] = False  # the attack
    if not steady.any():
        return None
    bins_hz = np.arange(magnitude.shape[1]) * rate / N_FFT
    levels = np.full(HARMONICS, np.nan)
    for harmonic in range(1, HARMONICS + 1):
        frequency = harmonic * librosa.midi_to_hz(midi)
        if frequency > min(rate / 2 - 200.0, 16000.0):
            break
        low, high = np.searchsorted(bins_hz, [0.985 * frequency - 6.0, 1.015 * frequency + 6.0])
        levels[harmonic - 1] = np.mean(20.0 * np.log10(magnitude[steady, low:high + 1].max(axis=1) + 1e-9))
    return levels - np.nanmax(levels)


def harmonic_table(libraries: list[Path], label: str) -> dict[int, np.ndarray]:
    """MIDI note → mean harmonic levels of ``label``'s steady notes in ``libraries``."""
    by_note: dict[int, list[np.ndarray]] = {}
    for library in libraries:
        for item in scan(library):
            if item.label != label or item.midi is None or item.variant not in STEADY_VARIANTS:
                continue
            audio, rate = read_audio(item.path)
            levels = harmonic_levels(audio, rate, item.midi)
            if levels is not None:
                by_note.setdefault(item.midi, []).append(levels)
    return {midi: _mean_where_measured(np.array(rows)) for midi, rows in by_note.items()}


def _mean_where_measured(rows: np.ndarray) -> np.ndarray:
    """Mean over rows, ignoring NaN; NaN where no row has a value (harmonics above every note's Nyquist)."""
    counts = np.isfinite(rows).sum(axis=0)
    return np.where(counts > 0, np.nansum(rows, axis=0) / np.maximum(counts, 1), np.nan)


def level_envelope(audio: np.ndarray) -> np.ndarray:
    """RMS per ``ENVELOPE_HOP`` samples, interpolated back to every sample."""
    frames = -(-len(audio) // ENVELOPE_HOP)
    padded = np.pad(audio.astype(np.float64), (0, frames * ENVELOPE_HOP - len(audio)))
    rms = np.sqrt(np.mean(padded.reshape(frames, ENVELOPE_HOP) ** 2, axis=1) + 1e-12)
    return np.interp(np.arange(len(audio)), np.arange(frames) * ENVELOPE_HOP + ENVELOPE_HOP / 2, rms)


def resynthesise(audio: np.ndarray, rate: int, notes: np.ndarray, table: dict[int, np.ndarray],
                 rng: np.random.Generator) -> np.ndarray:
    """The phrase's notes as additive partials with the table's levels, at the phrase's own level."""
    pitch = np.full(len(audio), np.nan)
    for onset, offset, midi in notes:
        pitch[int(onset * rate):int(offset * rate)] = midi
    held = np.flatnonzero(np.isfinite(pitch))
    pitch = pitch[held[np.clip(np.searchsorted(held, np.arange(len(audio))), 0, len(held) - 1)]]  # gaps held
    hz = librosa.midi_to_hz(pitch)
    phase = 2.0 * np.pi * np.cumsum(hz) / rate
    keys = np.array(sorted(table))
    out = np.zeros(len(audio))
    for start in range(0, len(audio), ENVELOPE_HOP):
        span = slice(start, min(start + ENVELOPE_HOP, len(audio)))
        key = int(keys[np.argmin(np.abs(keys - pitch[start]))])
        amplitudes = 10.0 ** (np.nan_to_num(table[key], nan=-200.0) / 20.0)
        for harmonic in np.flatnonzero(amplitudes > 1e-4) + 1:
            if harmonic * hz[start] < rate / 2 - 200.0:
                out[span] += amplitudes[harmonic - 1] * np.sin(harmonic * phase[span])
    out *= level_envelope(audio) / np.maximum(level_envelope(out), 1e-6)
    return (out + NOISE_FLOOR * level_envelope(audio) * rng.standard_normal(len(audio))).astype(np.float32)


def run(args: argparse.Namespace) -> dict:
    judge = CnnClassifier.load(args.classifier)
    phrases = select_phrases(args.phrases, max(args.max_phrases, args.own_phrases))
    rng = np.random.default_rng(0)
    rows = []
    for target in args.targets.split(","):
        table = harmonic_table(args.libraries, target)
        if not table:
            raise SystemExit(f"error: no steady note of {target} under {', '.join(map(str, args.libraries))}")
        for own in (False, True):
            heard: Counter[str] = Counter()
            taken: Counter[str] = Counter()
            for phrase in (p for p in phrases if (p.item.label == target) == own):
                taken[phrase.item.label] += 1
                if taken[phrase.item.label] > (args.own_phrases if own else args.max_phrases):
                    continue
                audio, rate = read_audio(phrase.item.path)
                assert phrase.notes_path is not None  # select_phrases without a split: every phrase has notes
                out = resynthesise(audio, rate, read_notes(phrase.notes_path), table, rng)
                clip = log_mel(to_rate(out, rate, judge.analysis.sample_rate), judge.analysis)
                heard[judge.class_names[judge.predict([clip])[0]]] += 1
            rows.append({"target": target, "phrases": "own" if own else "others", "count": sum(heard.values()),
                         "hits": heard[target], "judge_heard": dict(heard.most_common()),
                         "table_notes": len(table)})
            print(f"{target} ({rows[-1]['phrases']}): {heard[target]}/{sum(heard.values())}", file=sys.stderr)
    return {"phrases_root": str(args.phrases), "libraries": [str(p) for p in args.libraries],
            "classifier": str(args.classifier), "results": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.harmonic_table", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phrases", type=Path, required=True, help="dataset folder holding phrases/<class>/")
    parser.add_argument("--libraries", type=Path, nargs="+", required=True,
                        help="rendered libraries the tables come from (the transfer model's training libraries)")
    parser.add_argument("--classifier", type=Path, required=True, help="the judge (a direct CNN, cnn.pt)")
    parser.add_argument("--targets", default="violin,cello,flute,trumpet,clarinet", help="comma-separated targets")
    parser.add_argument("--max-phrases", type=int, default=1, help="phrases per source class (default 1)")
    parser.add_argument("--own-phrases", type=int, default=5, help="the target's own phrases (default 5)")
    args = parser.parse_args(argv)
    print(json.dumps(run(args), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
