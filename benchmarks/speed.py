"""Speed of the whole engine per host block size, beside the bare front end, on one CPU thread.

    python -m benchmarks.speed --preset violin --json
    python -m benchmarks.speed --model path/to/model.pt
    python -m benchmarks.speed --untrained 28        # shipped architecture, random weights
    python -m benchmarks.speed --untrained 28 --mode transfer

For each block size the same signal (a sawtooth phrase) goes through ``Processor.process`` block by
block.  Reported per block size: the real-time factor (processing time / audio duration; median over
repeats), p50 / p99 / max time per block, and the real-time factor of the bare front end (STFT + mel) on
the same blocks in the same run.  Peak resident memory of the process is reported once.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from engine.config import AnalysisConfig
from engine.errors import ProtophoneError
from engine.frontend import LogMelFrontEnd
from engine.model import PrototypeModel, parameter_count
from engine.modelfile import ModelMetadata, save_model
from engine.parameters import add_setting_flags
from engine.processor import Processor

BLOCK_SIZES = (64, 128, 256, 512, 1024, 2048)


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
    config = AnalysisConfig()
    model = PrototypeModel(n_prototypes, config.band_centres_hz)
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

    torch.set_num_threads(args.threads)
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
        except (ProtophoneError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        rows = measure(proc, args.seconds, args.repeats, args.sample_rate)
    result = {
        "model": str(proc.preset.model),
        "mode": proc.mode,
        "target": proc.target,
        "device": args.device,
        "threads": args.threads,
        "sample_rate": args.sample_rate,
        "parameters": parameter_count(proc.model.module),
        "prototypes": proc.metadata.n_prototypes,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "blocks": rows,
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
        print(f"peak memory {result['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
