"""Peak memory of file mode against the file's length: does an hour of audio fit in constant memory?

    python -m benchmarks.file_memory                       # 1 and 10 minutes, the identify preset
    python -m benchmarks.file_memory --minutes 1 10 60 --json

For each length a stereo 16-bit WAV of that many minutes (a sawtooth melody with rests, 44.1 kHz) is
written to a temporary folder and run through the real command line,
``python -m realtime.live --preset P --input long.wav --output out.wav``, in a child process.  Reported:
the child's peak resident memory (``VmHWM``, read from ``/proc`` while it runs: ``ru_maxrss`` would count
this benchmark's own memory, which a forked child carries until it executes Python), its wall time and
real-time factor, and the input's size on disk.  Peak memory that does not grow with the length is what
constant memory means; the difference between the longest and the shortest file is the figure to read.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.speed import test_signal

RATE = 44100
#: Seconds between reads of the child's peak memory: the peak only grows, so only a peak reached in the child's
#: last few milliseconds, as it exits, could be missed.
POLL_S = 0.01
#: Seconds of signal generated at a time: the benchmark itself must not hold an hour in memory either.
CHUNK_S = 60


def write_long_file(path: Path, minutes: float) -> None:
    """A stereo 16-bit WAV of ``minutes`` minutes, written a minute at a time."""
    minute = test_signal(CHUNK_S, RATE)
    with sf.SoundFile(str(path), "w", samplerate=RATE, channels=2, subtype="PCM_16") as file:
        left = int(minutes * 60 * RATE)
        while left > 0:
            piece = minute[:left]
            file.write(np.stack([piece, 0.5 * piece], axis=1))
            left -= len(piece)


def resident_peak_mb(pid: int) -> float:
    """A running process's peak resident memory so far (``VmHWM``), MB; 0 once it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    line = next((line for line in status.splitlines() if line.startswith("VmHWM:")), "VmHWM: 0 kB")
    return int(line.split()[1]) / 1024


def measure(preset: str, minutes: float, folder: Path) -> dict:
    source = folder / f"long-{minutes:g}min.wav"
    write_long_file(source, minutes)
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen([sys.executable, "-m", "realtime.live", "--preset", preset, "--input", str(source),
                                  "--output", str(folder / "out.wav"), "--json"], stdout=out, stderr=err, text=True)
        peak_mb = 0.0
        while child.poll() is None:
            peak_mb = max(peak_mb, resident_peak_mb(child.pid))
            time.sleep(POLL_S)
        wall_s = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if child.returncode:
            raise SystemExit(f"file mode failed on {minutes:g} min: {err.read().strip().splitlines()[-1]}")
        summary = json.loads(out.read())
    source.unlink()
    return {"minutes": minutes, "input_mb": round(minutes * 60 * RATE * 4 / 1e6, 1), "peak_rss_mb": round(peak_mb),
            "wall_s": round(wall_s, 1), "realtime_factor": round(summary["realtime_factor"], 3),
            "output_frames": sf.info(folder / "out.wav").frames}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.file_memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="identify", help="preset to run (default identify)")
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0],
                        help="file lengths in minutes (default 1 10)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        rows = [measure(args.preset, minutes, Path(folder)) for minutes in sorted(args.minutes)]
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print("| minutes | input (MB, stereo 16-bit) | peak RSS (MB) | wall (s) | RTF |\n|---|---|---|---|---|")
        for row in rows:
            print(f"| {row['minutes']:g} | {row['input_mb']} | {row['peak_rss_mb']} | {row['wall_s']} | "
                  f"{row['realtime_factor']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
