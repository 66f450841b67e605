"""The engine live through a real JACK server at 48 kHz, with the rest of the machine kept busy.

    python -m benchmarks.live --minutes 1 --json                       # shipped architecture, untrained
    python -m benchmarks.live --minutes 5 --preset violin --periods 128 256 512

For each JACK period a private jackd (dummy backend: no sound card, but a real-time clock and real xruns)
starts at 48 kHz; the engine runs through ``realtime.audio.DuplexRunner`` with one callback per period
(``unbuffered``), in the callback or on the worker thread as ``python -m realtime.live --processing``
decides (``--processing``, default auto), under the same thread policy as ``python -m realtime.live``;
a second JACK client loops a sawtooth melody with rests into it; and spinning processes keep every other
CPU core busy.  Reported per period: xruns (PortAudio's callback flags and the server's own count),
deadline misses (callbacks longer than a period), p50/p99/max time per callback and, on the worker,
the blocks played dry (not processed in time), the worker's p99/max per block and its added latency.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.jackrig.clients import JackPatch, portaudio_on_jack
from benchmarks.jackrig.server import JackUnavailable, start_jack_server
from benchmarks.speed import test_signal, untrained_model_file
from engine.errors import ProtophoneError
from engine.processor import Processor
from realtime.devicemode import ProcessingChoice, audio_thread_summary, hop_at_rate, open_runner, plan_processing
from realtime.metering import MeteredProcessor
from realtime.rtpolicy import audio_thread_policy

SAMPLE_RATE = 48000
PHRASE_S = 20.0
SPIN = "while True: pass"


def spinners(count: int) -> list[subprocess.Popen[bytes]]:
    """``count`` processes that each keep one core at 100 %: the load a performer's laptop carries."""
    return [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(count)]


def measure_period(proc: Processor, period: int, seconds: float, load: int, processing: ProcessingChoice,
                   worker_delay: int | None) -> dict:
    """One run on a fresh server with ``period``-sample callbacks; the row of the report."""
    plan = plan_processing(processing, period, hop_at_rate(proc, SAMPLE_RATE), worker_delay)
    server = start_jack_server(sample_rate=SAMPLE_RATE, period=period)
    busy = spinners(load)
    try:
        with portaudio_on_jack(server), audio_thread_policy():
            metered = MeteredProcessor(proc)
            runner = open_runner(metered, SAMPLE_RATE, period, "system", "system", plan, unbuffered=True)
            patch = JackPatch(test_signal(PHRASE_S, SAMPLE_RATE), loop=True)
            try:
                runner.start()
                patch.connect_to_engine()
                patch.armed = True
                time.sleep(seconds)
                server_xruns = patch.xruns  # before the engine's stream closes (closing may xrun)
                report = runner.stop()
            finally:
                runner.stop()
                patch.close()
    finally:
        for process in busy:
            process.kill()
            process.wait()
        server.stop()
    return {
        "period": period,
        "period_ms": 1e3 * period / SAMPLE_RATE,
        "realtime_scheduling": server.realtime,
        "seconds": report.blocks * report.block_ms / 1e3,
        "callbacks": report.blocks,
        "xruns": report.xruns,
        "server_xruns": server_xruns,
        "deadline_misses": report.deadline_misses,
        "overloaded_blocks": report.overloaded_blocks,
        "wrong_size_blocks": report.wrong_size_blocks,
        "p50_ms": report.callback_time.p50_ms,
        "p99_ms": report.callback_time.p99_ms,
        "max_ms": report.callback_time.max_ms,
        "audio_thread": audio_thread_summary(report),
        "engine_latency_ms": 1e3 * proc.latency_samples / SAMPLE_RATE,
        "worker_latency_ms": 1e3 * report.added_latency_samples / SAMPLE_RATE,
        "identified": proc.identification.label,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.live", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", help="preset name or YAML path (default: --untrained 28)")
    source.add_argument("--untrained", type=int, default=28, metavar="K",
                        help="shipped architecture with K random prototypes (default 28)")
    parser.add_argument("--mode", choices=("identify", "transfer"), default="transfer",
                        help="transfer (default) runs identification + transfer + synthesis")
    parser.add_argument("--minutes", type=float, default=1.0, help="run length per period (default 1)")
    parser.add_argument("--periods", type=int, nargs="+", default=[128, 256], help="JACK periods (default 128 256)")
    parser.add_argument("--load", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                        help="spinning processes (default: one per core but one)")
    parser.add_argument("--processing", choices=("auto", "callback", "worker"), default="auto",
                        help="where the engine runs, as python -m realtime.live --processing (default auto)")
    parser.add_argument("--worker-delay", type=int, metavar="BLOCKS",
                        help="worker mode: blocks of slack and added latency (default: one hop's worth)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as folder:
        try:
            proc = Processor.from_preset(args.preset or untrained_model_file(args.untrained, Path(folder)))
            proc.set(mode=args.mode, target=proc.target or proc.metadata.class_names[0])
            rows = [measure_period(proc, period, 60.0 * args.minutes, args.load, args.processing, args.worker_delay)
                    for period in args.periods]
        except (ProtophoneError, ValueError, JackUnavailable) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    result = {"model": args.preset or f"untrained {args.untrained}", "mode": proc.mode, "target": proc.target,
              "sample_rate": SAMPLE_RATE, "load_processes": args.load, "cpus": os.cpu_count(), "periods": rows}
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"{result['model']}, {result['mode']} -> {result['target']}, {SAMPLE_RATE} Hz, "
              f"{args.load} spinning process(es) on {result['cpus']} CPUs")
        print(f"{'period':>6} {'ms':>5} {'thread':>8} {'+ms':>5} {'s':>6} {'xruns':>6} {'server':>6} {'misses':>6} "
              f"{'dry':>5} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}")
        for row in rows:
            thread = row["audio_thread"]
            print(f"{row['period']:>6} {row['period_ms']:>5.2f} {thread['mode']:>8} {row['worker_latency_ms']:>5.1f} "
                  f"{row['seconds']:>6.1f} {row['xruns']:>6} {row['server_xruns']:>6} {row['deadline_misses']:>6} "
                  f"{thread.get('dry_blocks', 0):>5} {row['p50_ms']:>7.3f} {row['p99_ms']:>7.3f} {row['max_ms']:>7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
