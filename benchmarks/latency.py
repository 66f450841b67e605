"""The engine latency of every shipped preset, reported and measured by an impulse, with its parts.

    python -m benchmarks.latency                  # every preset, 44.1 / 48 kHz x 64 / 128 / 256 / 512
    python -m benchmarks.latency --presets violin violin-lowlatency --json

For each preset, host rate and block size: ``Processor.latency_samples`` and its parts
(``Processor.latency_parts``: window, look-ahead, blocks and resampling), and where an impulse sent through
``Processor.process`` really comes out, in the preset's own mode: the dry path (mix 0: the sample that
the host compensates) and, for transfer presets, the wet path at full mix.  The dry measurement must equal
the report to the sample.  The wet one does with the input's phase; RTPGHI rebuilds the phase from the
magnitudes, so the impulse lands within a few samples of it, and the prototype carrier sings a prototype
whose peak lies where its rebuilt phase puts it (tests/test_latency.py checks that it moves exactly with
the report).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from engine.errors import ProtophoneError
from engine.preset import available_presets
from engine.processor import Processor

RATES = (44100, 48000)
BLOCK_SIZES = (64, 128, 256, 512)


def impulse_arrival(proc: Processor, mix: float) -> int:
    """Samples between an impulse going into ``proc`` (prepared) and the largest output sample."""
    proc.set(mix=mix)
    proc.reset()
    rate, block = proc.sample_rate, proc.block_size
    signal = np.zeros(rate, dtype=np.float32)
    at = rate // 4
    signal[at] = 1.0
    out = np.concatenate([proc.process(signal[i : i + block]) for i in range(0, len(signal), block)])
    return int(np.argmax(np.abs(out))) - at


def measure(preset: str, rate: int, block: int) -> dict:
    proc = Processor.from_preset(preset)
    proc.prepare(rate, block)
    transfer = proc.mode == "transfer"
    reported = proc.latency_samples
    ms = 1e3 / rate
    row = {"preset": preset, "mode": proc.mode, "phase": proc.preset.phase, "carrier": proc.preset.carrier,
           "sample_rate": rate, "block_size": block, "reported_samples": reported, "reported_ms": reported * ms,
           "parts_ms": {part: samples * ms for part, samples in proc.latency_parts().items()},
           "dry_measured_samples": impulse_arrival(proc, 0.0) if transfer else None,
           "wet_measured_samples": impulse_arrival(proc, 1.0) if transfer else None}
    if not transfer:  # identify mode plays the dry path whatever the mix
        row["dry_measured_samples"] = impulse_arrival(proc, 1.0)
    return row


def markdown(rows: list[dict]) -> str:
    columns = ("preset", "rate / block", "reported", "window", "look-ahead", "blocks and resampling",
               "dry, measured", "wet, measured")
    lines = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    for row in rows:
        parts = row["parts_ms"]
        wet = row["wet_measured_samples"]
        wet_text = "-" if wet is None else f"{wet - row['reported_samples']:+d} samples"
        lines.append(f"| {row['preset']} | {row['sample_rate']} / {row['block_size']} | {row['reported_ms']:.1f} ms "
                     f"({row['reported_samples']}) | {parts['window']:.1f} | {parts['look-ahead']:.1f} | "
                     f"{parts['blocks and resampling']:.1f} | "
                     f"{row['dry_measured_samples'] - row['reported_samples']:+d} samples | {wet_text} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", metavar="NAME", help="presets to measure (default: every shipped one)")
    parser.add_argument("--rates", nargs="+", type=int, default=list(RATES), metavar="HZ",
                        help="host rates (default 44100 48000)")
    parser.add_argument("--blocks", nargs="+", type=int, default=list(BLOCK_SIZES), metavar="SAMPLES",
                        help="host block sizes (default 64 128 256 512)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = parser.parse_args(argv)
    try:
        rows = [measure(preset, rate, block) for preset in args.presets or available_presets()
                for rate in args.rates for block in args.blocks]
    except (ProtophoneError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(rows, indent=1) if args.json else markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
