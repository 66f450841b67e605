"""The engine latency of every shipped preset, reported and measured by an impulse, with its parts.

    python -m benchmarks.latency                  # every preset, 44.1 / 48 kHz x 64 / 128 / 256 / 512
    python -m benchmarks.latency --presets violin violin-lowlatency --json
    python -m benchmarks.latency --jack --presets violin violin-lowlatency --blocks 128 256

For each preset, host rate and block size: ``Processor.latency_samples`` and its parts
(``Processor.latency_parts``: window, look-ahead, blocks), and where an impulse sent through
``Processor.process`` really comes out, in the preset's own mode: the dry path (mix 0: the sample that
the host compensates) and, for transfer presets, the wet path at full mix.  The dry measurement must equal
the report to the sample.  The wet one does with the input's phase; RTPGHI rebuilds the phase from the
magnitudes, so the impulse lands within a few samples of it, and the prototype carrier sings a prototype
whose peak lies where its rebuilt phase puts it (tests/test_latency.py checks that it moves exactly with
the report).  The filter carrier passes an impulse only on a sounding note (a closed filter in silence):
there it rides on a sawtooth and comes out a few samples late, the minimum-phase filter's peak (looked for
within the millisecond after it: the frames that analysed the impulse then redesign the filter, and under the
carrier's +45 dB boosts that moves the output more than the impulse did, up to 40 ms later).  The harmonic
carrier plays an excitation of its own, never the impulse, and the level guard it shares with the filter route
follows the impulse at once: no impulse arrival measures it (``wet_measured_samples`` null), so its rows report
what is late instead, the pitch of a new note (``pitch_lag_ms``), beside a level that follows the input within
``engine.harmonic.LEVEL_TIME_S``.

With ``--jack``, each row is also measured from outside: on a private JACK server (dummy backend, the
block size as its period) the engine runs as ``realtime.live`` runs it (PortAudio's JACK client, the same
processing plan), at mix 0 so that ``jack_iodelay``'s test tones pass unchanged through the dry path, which
has the engine's latency by construction.  ``jack_iodelay`` (a client the project did not write) measures
the round trip through the engine, and then once through a plain cable (its output to its input): the
server's own loop.  Their difference is what the engine path adds: the engine latency, the worker's
delay when it runs on the worker, and the block PortAudio's JACK host API buffers, which ``realtime.live
--latency low`` (PortAudio at the server's own period) saves: each row is measured both ways.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from engine.errors import ProtophoneError
from engine.preset import available_presets
from engine.processor import Processor

RATES = (44100, 48000)
BLOCK_SIZES = (64, 128, 256, 512)
#: jack_iodelay's report line, e.g. "   128.000 frames      2.667 ms total roundtrip latency".
ROUND_TRIP = re.compile(r"^\s*([0-9.]+) frames\s+[0-9.]+ ms total roundtrip latency", re.MULTILINE)
#: jack_iodelay reports about ten times a second; the median of the last reports is kept.
IODELAY_SECONDS = 3.0


def impulse_arrival(proc: Processor, mix: float) -> int:
    """Samples between an impulse going into ``proc`` (prepared) and the largest output sample.  On the filter
    carrier's wet path the impulse rides on a steady note and is found in the difference of the outputs with
    and without it: an impulse in silence meets a closed filter (the gate), so only its filter's tail would
    come out, a window later."""
    proc.set(mix=mix)
    rate, block = proc.sample_rate, proc.block_size
    signal = np.zeros(rate, dtype=np.float32)
    on_a_note = mix and proc.preset.carrier == "filter"
    if on_a_note:
        t = np.arange(rate) / rate
        signal += (0.3 * (2.0 * ((220.0 * t) % 1.0) - 1.0)).astype(np.float32)  # a sawtooth at 220 Hz
    at = rate // 4
    kicked = signal.copy()
    kicked[at] += 1.0
    outputs = []
    for source in (signal, kicked):
        proc.reset()
        outputs.append(np.concatenate([proc.process(source[i : i + block]) for i in range(0, rate, block)]))
    difference = np.abs(outputs[1] - outputs[0])
    if on_a_note:
        # the impulse through the note's filter, within a millisecond: later the frames that analysed the
        # impulse redesign the filter, which can move the output more than the impulse itself did
        return int(np.argmax(difference[at : at + rate // 1000]))
    return int(np.argmax(difference)) - at


def measure(preset: str, rate: int, block: int) -> dict:
    proc = Processor.from_preset(preset)
    proc.prepare(rate, block)
    transfer = proc.mode == "transfer"
    harmonic = proc.preset.carrier == "harmonic"  # no impulse comes through its excitation (module docstring)
    reported = proc.latency_samples
    ms = 1e3 / rate
    row = {"preset": preset, "mode": proc.mode, "phase": proc.preset.phase, "carrier": proc.preset.carrier,
           "sample_rate": rate, "block_size": block, "reported_samples": reported, "reported_ms": reported * ms,
           "parts_ms": {part: samples * ms for part, samples in proc.latency_parts().items()},
           "pitch_lag_ms": proc.pitch_lag_samples * ms,
           "dry_measured_samples": impulse_arrival(proc, 0.0) if transfer else None,
           "wet_measured_samples": impulse_arrival(proc, 1.0) if transfer and not harmonic else None}
    if not transfer:  # identify mode plays the dry path whatever the mix
        row["dry_measured_samples"] = impulse_arrival(proc, 1.0)
    return row


@contextmanager
def iodelay(server_name: str) -> Iterator[subprocess.Popen[str]]:
    """``jack_iodelay`` running on the server, line-buffered so its reports can be read as they come."""
    env = {**os.environ, "JACK_DEFAULT_SERVER": server_name}
    process = subprocess.Popen(["stdbuf", "-oL", "jack_iodelay"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


def measured_round_trip(server_name: str, connections: list[tuple[str, str]]) -> float:
    """Median of jack_iodelay's round trips (frames) with its ports wired through ``connections``."""
    env = {**os.environ, "JACK_DEFAULT_SERVER": server_name}
    with iodelay(server_name) as process:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "jack_delay:in" not in subprocess.run(
                ["jack_lsp"], check=False, env=env, capture_output=True, text=True).stdout:
            time.sleep(0.1)
        for source, destination in connections:
            wired = subprocess.run(["jack_connect", source, destination], env=env, check=False, capture_output=True)
            if wired.returncode:
                raise RuntimeError(f"jack_connect {source} {destination} failed: is the server still running?")
        time.sleep(IODELAY_SECONDS)
        process.terminate()
        reports = [float(frames) for frames in ROUND_TRIP.findall(process.communicate(timeout=10)[0])]
    if not reports:
        raise RuntimeError("jack_iodelay reported no round trip (no signal came back)")
    return statistics.median(reports[len(reports) // 2 :])


def jack_round_trip(preset: str, rate: int, block: int, unbuffered: bool = False) -> dict:
    """The round trip through the engine as realtime.live runs it (``unbuffered``: with ``--latency low``),
    minus the server's own loop."""
    from benchmarks.jackrig.clients import portaudio_on_jack
    from benchmarks.jackrig.server import start_jack_server
    from realtime.devicemode import DEFAULT_CLIENT_NAME, hop_at_rate, open_runner, plan_processing

    proc = Processor.from_preset(preset, mix=0.0)
    plan = plan_processing("auto", block, hop_at_rate(proc, rate))
    server = start_jack_server(sample_rate=rate, period=block)
    with portaudio_on_jack(server):
        loop = measured_round_trip(server.name, [("jack_delay:out", "jack_delay:in")])
        runner = open_runner(proc, rate, block, "system", "system", plan, unbuffered=unbuffered)
        try:
            runner.start()
            through = measured_round_trip(server.name, [("jack_delay:out", f"{DEFAULT_CLIENT_NAME}:in_0"),
                                                        (f"{DEFAULT_CLIENT_NAME}:out_0", "jack_delay:in")])
        finally:
            report = runner.stop()
    ms = 1e3 / rate
    expected = proc.latency_samples + report.added_latency_samples + (0 if unbuffered else block)  # PortAudio's block
    return {"server_loop_samples": loop, "round_trip_samples": through, "through_engine_samples": through - loop,
            "through_engine_ms": (through - loop) * ms, "expected_samples": expected,
            "engine_runs_on": plan.mode, "worker_samples": report.added_latency_samples}


def markdown(rows: list[dict]) -> str:
    columns = ("preset", "rate / block", "reported", "window", "look-ahead", "blocks",
               "dry, measured", "wet, measured", "pitch lag")
    lines = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    for row in rows:
        parts = row["parts_ms"]
        wet = row["wet_measured_samples"]
        wet_text = "-" if wet is None else f"{wet - row['reported_samples']:+d} samples"
        jack = row.get("jack")
        jack_text = "" if jack is None else "".join(
            f" {run['through_engine_ms']:.1f} ms ({run['through_engine_samples']:g};"
            f" expected {run['expected_samples']}) |" for run in (jack, row["jack_latency_low"]))
        lines.append(f"| {row['preset']} | {row['sample_rate']} / {row['block_size']} | {row['reported_ms']:.1f} ms "
                     f"({row['reported_samples']}) | {parts['window']:.1f} | {parts['look-ahead']:.1f} | "
                     f"{parts['blocks']:.1f} | "
                     f"{row['dry_measured_samples'] - row['reported_samples']:+d} samples | {wet_text} | "
                     f"{row['pitch_lag_ms']:.1f} |" + jack_text)
    if any("jack" in row for row in rows):
        lines[0] += " through JACK, minus the server's loop | the same with --latency low |"
        lines[1] += "---|---|"
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", metavar="NAME", help="presets to measure (default: every shipped one)")
    parser.add_argument("--rates", nargs="+", type=int, default=list(RATES), metavar="HZ",
                        help="host rates (default 44100 48000)")
    parser.add_argument("--blocks", nargs="+", type=int, default=list(BLOCK_SIZES), metavar="SAMPLES",
                        help="host block sizes (default 64 128 256 512)")
    parser.add_argument("--jack", action="store_true",
                        help="also measure each row from outside with jack_iodelay on a private JACK server")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = parser.parse_args(argv)
    try:
        rows = []
        for preset in args.presets or available_presets():
            for rate in args.rates:
                for block in args.blocks:
                    rows.append(measure(preset, rate, block))
                    if args.jack:
                        rows[-1]["jack"] = jack_round_trip(preset, rate, block)
                        rows[-1]["jack_latency_low"] = jack_round_trip(preset, rate, block, unbuffered=True)
                    print(f"{preset} {rate} / {block}: done", file=sys.stderr, flush=True)
    except (ProtophoneError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(rows, indent=1) if args.json else markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
