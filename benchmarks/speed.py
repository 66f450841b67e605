"""Speed of the whole engine per host block size, beside the bare front end, on one CPU thread.

    python -m benchmarks.speed --preset violin --json
    python -m benchmarks.speed --model path/to/model.pt
    python -m benchmarks.speed --untrained 28        # shipped architecture, random weights
    python -m benchmarks.speed --untrained 28 --mode transfer

For each block size the same signal (a sawtooth phrase) goes through ``Processor.process`` block by
block.  Reported per block size: the real-time factor (processing time / audio duration; median over
repeats), p50 / p99 / max time per block, and the real-time factor of the bare front end (STFT + mel) on
the same blocks in the same run.  Then where the time goes: the whole signal once more at 256-sample blocks
with a timer around each stage's function (two clock reads a call, so unlike a profiler it does not inflate
the stages that make many small calls), each stage's time per frame and its share of ``process``.  Peak
resident memory of the process is reported once.
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from engine import wetpath
from engine.carrier import InputCarrier
from engine.config import AnalysisConfig
from engine.cudagraph import CudaGraphStep
from engine.errors import ProtophoneError
from engine.filterroute import FilterRoute
from engine.frontend import LogMelFrontEnd
from engine.fusedmodel import FusedModel
from engine.harmonic import HarmonicExcitation
from engine.identify import StreamingIdentifier
from engine.modelfile import LoadedModel, ModelMetadata, load_model, save_model
from engine.parameters import add_setting_flags
from engine.processor import Processor
from engine.synth import StreamingSynth
from engine.transfer import TransferRenderer

BLOCK_SIZES = (64, 128, 256, 512, 1024, 2048)
#: Host block size of the per-stage profile.
STAGE_BLOCK = 256
#: The engine's stages: where each one's function lives (the class or module it is looked up on) and its name.
#: None calls another, so their times add up.
STAGES: dict[str, tuple[object, str]] = {
    "front end (STFT, mel)": (LogMelFrontEnd, "push"),
    "model step (predictor, every prototype's error)": (FusedModel, "step"),
    "model step, CUDA graph": (CudaGraphStep, "step"),
    "model step, TorchScript (a file the kernels do not reproduce, CUDA with look-ahead)": (LoadedModel, "script_step"),
    "identification": (StreamingIdentifier, "update"),
    "transfer rendering (the chosen prototype)": (TransferRenderer, "render"),
    "register (pitch of a passage's first frames)": (wetpath, "frame_pitch"),
    "carrier gains (envelopes, filter design input)": (InputCarrier, "gains"),
    "harmonic carrier's excitation (pitch, oscillators, noise)": (HarmonicExcitation, "push"),
    "harmonic carrier's gains (the target's envelope)": (HarmonicExcitation, "gains"),
    "filter route (filter design, convolution, shifter)": (FilterRoute, "push"),
    "synthesis (RTPGHI, overlap-add)": (StreamingSynth, "push"),
}


def test_signal(seconds: float, sample_rate: int) -> np.ndarray:
    """A sawtooth melody with silences, so the level gate and every path are exercised."""
    rng = np.random.default_rng(0)
    notes = []
    for midi in rng.integers(45, 80, size=int(seconds * 2)):
        t = np.arange(sample_rate // 2) / sample_rate
        phase = (440.0 * 2.0 ** ((midi - 69) / 12.0) * t) % 1.0
        notes.append(0.2 * (2.0 * phase - 1.0) * np.minimum(1.0, 20.0 * (0.5 - t)))
    return np.concatenate(notes).astype(np.float32)[: int(seconds * sample_rate)]


def untrained_model_file(n_prototypes: int, folder: Path) -> Path:
    """The shipped architecture with random weights: speed does not depend on what was learned."""
    from engine.model import PrototypeModel  # torch: only for this model, so the peak memory is the engine's

    config = AnalysisConfig()
    model = PrototypeModel(n_prototypes, config.band_centres_hz, dynamic_range_db=60.0, fitted_gain=True)  # as shipped
    classes = tuple(f"class{i}" for i in range(n_prototypes // 2))
    metadata = ModelMetadata(
        config.sample_rate, config.n_fft, config.hop, config.n_mels, classes,
        tuple(i % len(classes) for i in range(n_prototypes)), (None,) * n_prototypes,
    )
    return save_model(model, metadata, folder / "untrained.pt")


def time_blocks(process, audio: np.ndarray, block: int) -> np.ndarray:
    """Seconds spent in ``process`` for each consecutive block of ``audio``."""
    times = np.empty(len(range(0, len(audio), block)))
    for index, start in enumerate(range(0, len(audio), block)):
        piece = audio[start : start + block]
        began = time.perf_counter()
        process(piece)
        times[index] = time.perf_counter() - began
    return times


def measure(proc: Processor, seconds: float, repeats: int, sample_rate: int) -> list[dict]:
    audio = test_signal(seconds, sample_rate)
    rows = []
    for block in BLOCK_SIZES:
        proc.prepare(sample_rate, block)
        frontend = LogMelFrontEnd(proc.analysis)
        engine_rtf, frontend_rtf, block_times = [], [], []
        for _ in range(repeats):
            proc.reset()
            frontend.reset()
            times = time_blocks(proc.process, audio, block)
            block_times.append(times)
            engine_rtf.append(times.sum() / seconds)
            frontend_rtf.append(time_blocks(frontend.push, audio, block).sum() / seconds)
        times = np.concatenate(block_times)
        rows.append({
            "block_size": block,
            "block_ms": 1000.0 * block / sample_rate,
            "rtf": float(np.median(engine_rtf)),
            "p50_ms": 1000.0 * float(np.percentile(times, 50)),
            "p99_ms": 1000.0 * float(np.percentile(times, 99)),
            "max_ms": 1000.0 * float(times.max()),
            "frontend_rtf": float(np.median(frontend_rtf)),
            "latency_ms": 1000.0 * proc.latency_samples / sample_rate,
        })
    return rows


def _timed(function: Callable, spent: dict[str, float], stage: str) -> Callable:
    """``function`` adding its time to ``spent[stage]``."""
    @functools.wraps(function)
    def timed(*args, **kwargs):
        began = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[stage] += time.perf_counter() - began
    return timed


@contextmanager
def timed_stages() -> Iterator[dict[str, float]]:
    """While inside, every :data:`STAGES` function is timed; yields the seconds spent per stage."""
    spent = dict.fromkeys(STAGES, 0.0)
    originals = [(owner, name, getattr(owner, name)) for owner, name in STAGES.values()]
    for stage, (owner, name, function) in zip(STAGES, originals, strict=True):
        setattr(owner, name, _timed(function, spent, stage))
    try:
        yield spent
    finally:
        for owner, name, function in originals:
            setattr(owner, name, function)


def stage_profile(proc: Processor, audio: np.ndarray) -> dict:
    """Each stage's time per analysis frame (us) and share of ``process``, from one timed run at
    :data:`STAGE_BLOCK`-sample blocks; "other" is the host adapter, the wet path's glue and the level meter."""
    proc.prepare(proc.sample_rate, STAGE_BLOCK)
    proc.reset()
    frames_before = proc.stats.frames
    with timed_stages() as spent:
        total = float(time_blocks(proc.process, audio, STAGE_BLOCK).sum())
    frames = max(proc.stats.frames - frames_before, 1)
    stages = {name: seconds for name, seconds in spent.items() if seconds > 0.0}
    stages["other"] = total - sum(stages.values())
    return {name: {"us_per_frame": 1e6 * spent / frames, "share": spent / total} for name, spent in stages.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", default=None, help="preset name or YAML path (default: identify)")
    source.add_argument("--model", type=Path, help="a model file (.pt) instead of a preset")
    source.add_argument("--untrained", type=int, metavar="K", help="shipped architecture with K random prototypes")
    add_setting_flags(parser, ("mode", "target"))  # transfer without a target: the model's first class
    parser.add_argument("--seconds", type=float, default=10.0, help="audio per repeat (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per block size; the median is kept")
    parser.add_argument("--sample-rate", type=int, default=44100, help="host sample rate (default 44100)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch and numpy (default 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)

    with threadpool_limits(args.threads), tempfile.TemporaryDirectory() as folder:
        try:
            if args.untrained:
                source = untrained_model_file(args.untrained, Path(folder))
            else:
                source = args.model or args.preset or "identify"
            proc = Processor.from_preset(source, device=args.device)
            if args.mode == "transfer":
                proc.set(mode="transfer", target=args.target or proc.target or proc.metadata.class_names[0])
            elif args.mode:
                proc.set(mode=args.mode)
            if "torch" in sys.modules:  # the model runs its TorchScript (CUDA, or a file without fused numbers)
                sys.modules["torch"].set_num_threads(args.threads)
        except (ProtophoneError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        rows = measure(proc, args.seconds, args.repeats, args.sample_rate)
        stages = stage_profile(proc, test_signal(args.seconds, args.sample_rate))
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # before torch loads to count below
    from engine.model import parameter_count  # torch, to count the TorchScript module's parameters

    result = {
        "model": str(proc.preset.model),
        "mode": proc.mode,
        "target": proc.target,
        "device": args.device,
        "threads": args.threads,
        "sample_rate": args.sample_rate,
        "parameters": parameter_count(load_model(proc.preset.model).scripted),
        "prototypes": proc.metadata.n_prototypes,
        "peak_rss_mb": peak_rss_mb,
        "blocks": rows,
        "stages_at_256": stages,
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"{result['model']} ({result['parameters']} parameters, {result['prototypes']} prototypes), "
              f"mode {result['mode']}, {args.device}, {args.threads} thread(s), {args.sample_rate} Hz")
        print(f"{'block':>6} {'ms':>6} {'RTF':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'front RTF':>10}")
        for row in rows:
            print(f"{row['block_size']:>6} {row['block_ms']:>6.1f} {row['rtf']:>7.3f} {row['p50_ms']:>8.3f} "
                  f"{row['p99_ms']:>8.3f} {row['max_ms']:>8.3f} {row['frontend_rtf']:>10.4f}")
        print(f"\nwhere the time goes at {STAGE_BLOCK}-sample blocks (a timer per stage):")
        for name, stage in stages.items():
            print(f"  {name:<72} {stage['us_per_frame']:>8.0f} us/frame {100.0 * stage['share']:>5.1f} %")
        print(f"peak memory {result['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
