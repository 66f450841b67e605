"""Timbre-transfer quality: is the output heard as the target, does it keep the melody, how good is its phase?

    python -m benchmarks.transfer --preset violin --phrases data/TimGM6mb --classifier runs/orchestra/cnn.pt \\
        --targets violin,cello,flute,trumpet,clarinet --max-phrases 3
    python -m benchmarks.transfer ... --json
    python -m benchmarks.transfer --preset speakers --phrases data/speech --split runs/judge-speakers/split.csv \\
        --classifier runs/judge-speakers/cnn.pt --targets flite-slt,espeak-en-us-m1 --max-phrases 1

docs/design.md section 5 asks for the target hit rate and the pitch error "on phrases from instruments it never saw
as targets".  So for each target only the legato phrases of the *other* instruments are played
(``DIR/phrases/<class>/*.wav`` with the ``*.notes.csv`` beside each, ``onset_s, offset_s, midi``).  Each
phrase goes through the streaming engine, ``Processor.process_file`` (transfer mode, mix 1, no
transposition, the preset's phase and block size 512 unless told), once per transfer candidate and carrier
(``engine.carrier``: the input's partials under the target's envelope, or the rendered prototype heard
itself), and the output is read back as the file a user would get (16-bit WAV).  Reported per target,
candidate and carrier:

- **hit %**: share of outputs that the direct CNN baseline assigns to the target.  The CNN is an
  independent classifier (not the prototype model that rendered the sound, which would be marking its
  own homework); it sees the output's log-mel at the analysis it was trained on.  Beside it, once, the
  CNN's accuracy on the *input* phrases: a hit rate means little if the CNN cannot name the inputs.
- **pitch ¢**: median absolute difference in cents between pyin on the output and the note of the notes
  file, pooled over the frames inside notes, leaving out the first 50 ms of each note (attack and the
  legato glide have no single pitch).  pyin searches one octave either side of the phrase's notes on its
  default 10-cent grid, so errors read in steps of 10 cents and anything beyond an octave reads as
  about an octave.  **voiced %**: share of those frames where pyin hears a pitch at all; an unvoiced
  frame has no pitch error but does not keep the melody either.  Phrases without notes (``--split``: the
  test side of a split file, e.g. speech, whose judge learnt from the other side) are their own reference:
  pyin on the input against pyin on the output, frame by frame, over the voiced frames of the input.
- **SC**: synthesis quality on the mel frames the stream rendered.  They are captured exactly
  (``Processor.tap`` gives the model's parameters and errors per decided frame; the same
  ``TransferRenderer`` renders them and the same level gate silences quiet frames).  The reference is
  ``|S|``, the linear magnitude that every synthesis is given and that offline Griffin-Lim iterates
  towards: ``MelToMagnitude(frames)`` for the prototype carrier, ``InputCarrier(frames, input STFT)``
  for the input carrier.  Each synthesis -- RTPGHI, the input's own STFT phase, and Griffin-Lim
  (32 momentum iterations) -- is analysed again with the engine's STFT and scored with
  ``spectral_convergence`` (``||S| - |S_est||_F / ||S||_F``, frame by frame), leaving out the first
  ``n_fft / hop - 1`` frames, which have no overlap-add partners.  Griffin-Lim's own figure is the
  offline bound that the two real-time methods stand beside.  Median over phrases.
- **RTF**: processing time of ``process_file`` over audio duration (one thread unless told), and the
  wall time of the whole benchmark.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import librosa
import numpy as np
import soxr
import torch
from threadpoolctl import threadpool_limits

from engine.audiofile import read_audio
from engine.carrier import InputCarrier
from engine.config import AnalysisConfig
from engine.errors import ProtophoneError, UsageError
from engine.frontend import frame_level_db, log_mel
from engine.parameters import CANDIDATES, CARRIERS, plays_rendered_pitch
from engine.preset import with_settings
from engine.processor import Processor
from engine.register import REGISTERS
from engine.stft import stft
from engine.synth import MelToMagnitude, griffin_lim, spectral_convergence, synthesize_magnitudes
from engine.transfer import TransferRenderer
from engine.wetpath import gated_render
from training.baselines import CnnClassifier
from training.layouts import DatasetError, Phrase, scan_phrases
from training.splits import SplitError, read_split

#: Frames right after an onset are left out of the pitch error (attack, legato glide).
ONSET_SKIP_S = 0.05
#: pyin searches this far either side of a phrase's notes: octave errors count, the search stays cheap.
PYIN_MARGIN_SEMITONES = 12
#: pyin's search range for a phrase without notes (speech): low male to high female voices.
VOICE_RANGE_HZ = (50.0, 600.0)
#: pyin frame step (512 samples at 44.1 kHz): pyin's cost grows with the frame count.
PYIN_HOP_S = 0.0116
GRIFFIN_LIM_ITERATIONS = 32


@dataclass
class Tally:
    """What one target/candidate/carrier triple collects over its phrases."""

    hits: int = 0
    phrases: int = 0
    heard: Counter[str] = field(default_factory=Counter)  # what the judge named, transfer by transfer
    cents: list[np.ndarray] = field(default_factory=list)
    reference_frames: int = 0
    convergence: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    audio_s: float = 0.0
    processing_s: float = 0.0


def read_notes(path: Path) -> np.ndarray:
    """The notes file as ``(n, 3)``: onset (s), offset (s), MIDI note."""
    return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


def to_rate(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """``audio`` at ``rate_out`` (soxr, the engine's resampler), untouched when the rates match."""
    return audio if rate_in == rate_out else soxr.resample(audio, rate_in, rate_out).astype(np.float32)


def judge_clip(cnn: CnnClassifier, audio: np.ndarray, rate: int) -> np.ndarray:
    """``audio`` as the judge hears it: log-mel frames of its own analysis, at its own rate (as it was trained)."""
    return log_mel(to_rate(audio, rate, cnn.analysis.sample_rate), cnn.analysis)


def pyin_midi(audio: np.ndarray, sample_rate: int, fmin: float, fmax: float) -> tuple[np.ndarray, np.ndarray]:
    """pyin's pitch per frame as a MIDI number (NaN where unvoiced) and the frames' times.  The frame is sized
    so that two periods of the lowest searched pitch fit, as pyin wants."""
    fmax = min(fmax, 0.45 * sample_rate)
    frame_length = 1 << math.ceil(math.log2(2.0 * sample_rate / fmin + 2.0))
    hop = round(PYIN_HOP_S * sample_rate)
    f0, voiced, _ = librosa.pyin(audio, fmin=fmin, fmax=fmax, sr=sample_rate, frame_length=frame_length,
                                 hop_length=hop)
    midi = np.full(len(f0), np.nan)
    heard = voiced & np.isfinite(f0)
    midi[heard] = librosa.hz_to_midi(f0[heard])
    return midi, librosa.times_like(f0, sr=sample_rate, hop_length=hop)


def pitch_errors(output: np.ndarray, sample_rate: int, notes: np.ndarray | None,
                 source: np.ndarray) -> tuple[np.ndarray, int]:
    """Absolute cents between pyin on ``output`` and the reference pitch, per frame where both have one.

    The reference is the notes file's note inside each note (after :data:`ONSET_SKIP_S`); a phrase without
    notes (speech) is its own reference, pyin on the ``source`` searched over :data:`VOICE_RANGE_HZ`, so the
    figure says how well the pitch is kept frame by frame.  Returns the errors and the number of reference
    frames (voiced in the output or not).
    """
    if notes is None:
        fmin, fmax = VOICE_RANGE_HZ
    else:
        fmin = float(librosa.midi_to_hz(notes[:, 2].min() - PYIN_MARGIN_SEMITONES))
        fmax = float(librosa.midi_to_hz(notes[:, 2].max() + PYIN_MARGIN_SEMITONES))
    heard, times = pyin_midi(output, sample_rate, fmin, fmax)
    if notes is None:
        reference = pyin_midi(source, sample_rate, fmin, fmax)[0]
        n = min(len(reference), len(heard))
        reference, heard = reference[:n], heard[:n]
    else:
        reference = np.full(len(times), np.nan)
        for onset, offset, midi in notes:
            reference[(times >= onset + ONSET_SKIP_S) & (times < offset)] = midi
    scored = np.isfinite(reference) & np.isfinite(heard)
    return np.abs(100.0 * (heard[scored] - reference[scored])), int(np.isfinite(reference).sum())


def output_magnitudes(frames: np.ndarray, spectra: np.ndarray, analysis: AnalysisConfig, carrier: str) -> np.ndarray:
    """The magnitudes the stream's synthesis was given for these rendered frames (see ``engine.carrier``)."""
    return InputCarrier(analysis)(frames, spectra) if carrier != "prototype" else MelToMagnitude(analysis)(frames)


def convergence(magnitudes: np.ndarray, spectra: np.ndarray, analysis: AnalysisConfig) -> dict[str, float]:
    """Spectral convergence of each synthesis of ``magnitudes`` against them (module docstring)."""
    n_fft, hop = analysis.n_fft, analysis.hop
    outputs = {
        "rtpghi": synthesize_magnitudes(magnitudes, n_fft, hop, "rtpghi"),
        "input": synthesize_magnitudes(magnitudes, n_fft, hop, "input", spectra),
        "griffin_lim": griffin_lim(magnitudes, n_fft, hop, GRIFFIN_LIM_ITERATIONS)[: len(magnitudes) * hop],
    }
    skip = analysis.n_fft // analysis.hop - 1
    return {name: spectral_convergence(magnitudes[skip:], audio[skip * analysis.hop :], analysis.hop)
            for name, audio in outputs.items()}


class Capture:
    """A ``Processor.tap`` that keeps the decided frames with their parameters and errors."""

    def __init__(self) -> None:
        self.chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def __call__(self, frames: np.ndarray, params: np.ndarray, errors: np.ndarray, _decisions: np.ndarray) -> None:
        self.chunks.append((frames, params, errors))

    def rendered(self, renderer: TransferRenderer, analysis: AnalysisConfig, gate_db: float) -> np.ndarray:
        """The wet mel frames the stream synthesised: the wet path's own rendering of what it decided."""
        frames, params, errors = (np.concatenate(part) for part in zip(*self.chunks, strict=True))
        return gated_render(renderer, params, errors, frame_level_db(frames, analysis), gate_db)


def select_phrases(root: Path, max_per_class: int | None, split: Path | None = None) -> list[Phrase]:
    """The first ``max_per_class`` phrases of each class (sorted by file name): those under ``root/phrases``
    with a notes file, or with ``split`` the items on the test side of that split file (paths relative to
    ``root``), which have no notes (speech: each is its own pitch reference)."""
    if split is None:
        phrases = [phrase for phrase in scan_phrases(root) if phrase.notes_path is not None]
        if not phrases:
            raise UsageError(f"no phrase under {root / 'phrases'} has a .notes.csv beside it")
    else:
        try:
            phrases = [Phrase(item, None) for item in read_split(split, root)["test"]]
        except (SplitError, KeyError, OSError) as error:
            raise UsageError(f"cannot read the phrases of split file {split}: {error}") from None
    by_class: dict[str, list[Phrase]] = defaultdict(list)
    for phrase in sorted(phrases, key=lambda phrase: phrase.item.path):
        by_class[phrase.item.label].append(phrase)
    return [p for label in sorted(by_class) for p in by_class[label][:max_per_class]]


def transfer_one(proc: Processor, phrase: Phrase, target: str, cnn: CnnClassifier, tally: Tally,
                 scratch: Path) -> None:
    """Play one phrase through ``proc`` into ``target`` and add its figures to ``tally``.  With the preset's
    ``register: target`` the engine moves the phrase by octaves into the target's range; the notes it is held
    to move with it (by the register's last shift: a phrase without pauses is one passage)."""
    analysis = proc.analysis
    capture = Capture()
    proc.tap = capture
    notes = None if phrase.notes_path is None else read_notes(phrase.notes_path)
    proc.set(target=target)
    out_path = scratch / "out.wav"
    summary = proc.process_file(phrase.item.path, out_path)
    proc.tap = None
    if notes is not None:
        notes[:, 2] += proc.register_shift
    output, rate = read_audio(out_path)
    audio, _ = read_audio(phrase.item.path)

    heard = cnn.class_names[cnn.predict([judge_clip(cnn, output, rate)])[0]]
    tally.hits += int(heard == target)
    tally.heard[heard] += 1
    tally.phrases += 1
    cents, reference_frames = pitch_errors(output, rate, notes, audio)
    tally.cents.append(cents)
    tally.reference_frames += reference_frames

    renderer = TransferRenderer(proc.model, target, proc.preset.candidate,
                                pitched=plays_rendered_pitch(proc.preset.carrier))
    wet = capture.rendered(renderer, analysis, proc.preset.gate_db)
    flushed = np.concatenate([audio, np.zeros(summary["latency_samples"], dtype=np.float32)])
    spectra = stft(to_rate(flushed, rate, analysis.sample_rate), analysis.n_fft, analysis.hop)
    n = min(len(wet), len(spectra))
    magnitudes = output_magnitudes(wet[:n], spectra[:n], analysis, proc.preset.carrier)
    for name, value in convergence(magnitudes, spectra[:n], analysis).items():
        tally.convergence[name].append(value)
    tally.audio_s += summary["duration_s"]
    tally.processing_s += summary["realtime_factor"] * summary["duration_s"]


def input_accuracy(phrases: list[Phrase], cnn: CnnClassifier) -> float | None:
    """Share of the input phrases (of classes the CNN knows) that the CNN names correctly."""
    known = [p for p in phrases if p.item.label in cnn.class_names]
    if not known:
        return None
    clips = []
    for phrase in known:
        audio, rate = read_audio(phrase.item.path)
        clips.append(judge_clip(cnn, audio, rate))
    predicted = cnn.predict(clips)
    return float(np.mean([cnn.class_names[i] == p.item.label for i, p in zip(predicted, known, strict=True)]))


def _number(value: float) -> float | None:
    """JSON has no NaN: a figure without data is null."""
    return float(value) if np.isfinite(value) else None


def summarise(target: str, variant: tuple[str, str], tally: Tally) -> dict:
    cents = np.concatenate(tally.cents) if tally.cents else np.zeros(0)
    return {
        "target": target,
        "candidate": variant[0],
        "carrier": variant[1],
        "phrases": tally.phrases,
        "hit_rate": tally.hits / tally.phrases,
        "judge_heard": dict(tally.heard.most_common()),
        "pitch_error_cents": _number(np.median(cents)) if len(cents) else None,
        "voiced_share": len(cents) / tally.reference_frames if tally.reference_frames else None,
        "spectral_convergence": {name: _number(np.median(values)) for name, values in tally.convergence.items()},
        "audio_s": tally.audio_s,
        "processing_s": tally.processing_s,
        "rtf": tally.processing_s / tally.audio_s,
    }


def run(args: argparse.Namespace) -> dict:
    """Load everything (user errors become :class:`UsageError`), play every phrase, return the result."""
    started = time.perf_counter()
    if not args.classifier.is_file():
        raise UsageError(f"classifier not found: {args.classifier} "
                         "(train it with `python -m training.train_baselines`)")
    try:
        first = Processor.from_preset(args.preset)
        cnn = CnnClassifier.load(args.classifier)
        phrases = select_phrases(args.phrases, args.max_phrases, args.split)
    except (ProtophoneError, DatasetError, ValueError) as error:
        raise UsageError(str(error)) from None
    names = first.metadata.class_names
    targets = args.targets.split(",") if args.targets else [first.preset.target or names[0]]
    candidates = args.candidates.split(",")
    carriers = args.carriers.split(",")
    for target in targets:
        if target not in names:
            raise UsageError(f"unknown target {target!r}; the model knows: {', '.join(names)}")
        if target not in cnn.class_names:
            raise UsageError(f"target {target!r} is not a class of the classifier ({', '.join(cnn.class_names)})")
    for candidate in candidates:
        if candidate not in CANDIDATES:
            raise UsageError(f"unknown candidate {candidate!r}; choose from {', '.join(CANDIDATES)}")
    for carrier in carriers:
        if carrier not in CARRIERS:
            raise UsageError(f"unknown carrier {carrier!r}; choose from {', '.join(CARRIERS)}")
    processors = {}
    for variant in ((candidate, carrier) for candidate in candidates for carrier in carriers):
        try:
            preset = with_settings(first.preset, mode="transfer", target=targets[0], mix=1.0, transpose=0.0,
                                   candidate=variant[0], carrier=variant[1], register=args.register)
            processors[variant] = Processor(first.model, preset)
        except (ProtophoneError, ValueError) as error:
            raise UsageError(str(error)) from None
        try:
            processors[variant].prepare(read_audio(phrases[0].item.path)[1], args.block_size)
        except (ProtophoneError, ValueError) as error:
            raise UsageError(str(error)) from None
        except RuntimeError as error:  # TorchScript: a model exported from another version of engine.model
            raise UsageError(f"{first.preset.model} does not run on this engine (export it again): "
                             f"{str(error).splitlines()[0]}") from None
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for target in targets:
            sources = [p for p in phrases if p.item.label != target]
            if not sources:
                raise UsageError(f"no phrase of a class other than {target!r} under {args.phrases}")
            tallies = {variant: Tally() for variant in processors}
            for phrase in sources:
                for variant, proc in processors.items():
                    transfer_one(proc, phrase, target, cnn, tallies[variant], Path(scratch))
            rows += [summarise(target, variant, tallies[variant]) for variant in processors]
            print(f"{target}: {len(sources)} phrases x {len(processors)} variants, "
                  f"{time.perf_counter() - started:.0f} s so far", file=sys.stderr, flush=True)
    return {
        "preset": str(args.preset),
        "model": str(first.preset.model),
        "classifier": str(args.classifier),
        "phrases_root": str(args.phrases),
        "split": None if args.split is None else str(args.split),
        "source_classes": sorted({p.item.label for p in phrases}),
        "phase": first.preset.phase,
        "block_size": args.block_size,
        "register": args.register,
        "threads": args.threads,
        "classifier_input_accuracy": input_accuracy(phrases, cnn),
        "results": rows,
        "wall_s": time.perf_counter() - started,
    }


def table(result: dict) -> str:
    """The result as a readable text table, the variants of one target on adjacent rows."""
    def cell(value: float | None, spec: str, scale: float = 1.0) -> str:
        return "-" if value is None else format(scale * value, spec)

    accuracy = result["classifier_input_accuracy"]
    lines = [
        (f"preset {result['preset']} ({result['model']}), phase {result['phase']}, block {result['block_size']}, "
         f"{result['threads']} thread(s)"),
        (f"phrases {result['phrases_root']} ({', '.join(result['source_classes'])}); classifier "
         f"{result['classifier']} (on the input phrases: {cell(accuracy, '.0f', 100)} % correct)"),
        (f"{'target':<12} {'candidate':<9} {'carrier':<9} {'phrases':>7} {'hit %':>6} {'pitch ¢':>8} {'voiced %':>8} "
         f"{'SC rtpghi':>9} {'SC input':>8} {'SC GL':>6} {'RTF':>6}"),
    ]
    for row in result["results"]:
        sc = row["spectral_convergence"]
        lines.append(
            f"{row['target']:<12} {row['candidate']:<9} {row['carrier']:<9} {row['phrases']:>7} "
            f"{cell(row['hit_rate'], '6.1f', 100)} "
            f"{cell(row['pitch_error_cents'], '8.1f')} {cell(row['voiced_share'], '8.1f', 100)} "
            f"{cell(sc['rtpghi'], '9.3f')} {cell(sc['input'], '8.3f')} {cell(sc['griffin_lim'], '6.3f')} "
            f"{row['rtf']:>6.3f}")
    lines.append(f"wall time {result['wall_s']:.0f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.transfer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", required=True, help="preset name, preset YAML or model file")
    parser.add_argument("--phrases", type=Path, required=True, help="dataset folder holding phrases/<class>/")
    parser.add_argument("--split", type=Path, default=None,
                        help="play the test side of this split file (paths relative to --phrases) instead of "
                             "phrases/: phrases without notes, such as speech; the pitch reference is each "
                             "phrase's own")
    parser.add_argument("--classifier", type=Path, required=True, help="direct CNN baseline (cnn.pt)")
    parser.add_argument("--targets", default=None,
                        help="comma-separated targets (default: the preset's target, else the model's first class)")
    parser.add_argument("--candidates", default=",".join(CANDIDATES), help="comma-separated transfer candidates")
    parser.add_argument("--carriers", default=",".join(CARRIERS),
                        help="comma-separated carriers: input (your partials under the target's envelope), "
                             "prototype (the rendered prototype itself), filter (the input carrier's envelope as "
                             "a filter on the audio); every candidate is run with each")
    parser.add_argument("--register", choices=REGISTERS, default="keep",
                        help="keep: each phrase at its own pitch; target: the engine moves each phrase by the fewest "
                             "octaves that put it inside the target's playing range (engine.register)")
    parser.add_argument("--max-phrases", type=int, default=None, help="phrases per source class (default: all)")
    parser.add_argument("--block-size", type=int, default=512, help="host block size (default 512)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch and numpy (default 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        with threadpool_limits(args.threads):
            result = run(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
