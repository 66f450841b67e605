"""Filter route cost per frame at 48 kHz / 256-sample blocks, coarseness 1 against 2, interleaved."""
import statistics
import time

import numpy as np

from engine.config import AnalysisConfig
from engine.filterroute import FilterRoute

ANALYSIS = AnalysisConfig(sample_rate=48000, n_fft=2240, hop=560)
BLOCK = 256
rng = np.random.default_rng(0)
signal = rng.standard_normal(48000 * 5).astype(np.float32)
n_frames = (len(signal) - ANALYSIS.n_fft) // ANALYSIS.hop + 1
gains = np.exp(rng.standard_normal((n_frames, ANALYSIS.n_fft // 2 + 1)) * 0.1)


def us_per_frame(coarseness: int) -> float:
    route, done = FilterRoute(ANALYSIS, coarseness), 0
    start_time = time.perf_counter()
    for start in range(0, len(signal), BLOCK):
        piece = signal[start : start + BLOCK]
        completed = max(0, (start + len(piece) - ANALYSIS.n_fft) // ANALYSIS.hop + 1) - done
        route.push(piece, completed, gains[done : done + completed] if completed else None)
        done += completed
    return (time.perf_counter() - start_time) / n_frames * 1e6


times: dict[int, list[float]] = {1: [], 2: []}
for coarseness in times:  # compile and warm
    us_per_frame(coarseness)
for _ in range(7):
    for coarseness, runs in times.items():
        runs.append(us_per_frame(coarseness))
for coarseness, runs in times.items():
    listed = ", ".join(f"{t:.0f}" for t in runs)
    print(f"coarseness {coarseness}: median {statistics.median(runs):.0f} us per frame (runs {listed})")
print(f"ratio {statistics.median(times[1]) / statistics.median(times[2]):.2f}")
