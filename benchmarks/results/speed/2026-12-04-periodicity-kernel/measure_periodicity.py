"""engine.register.frame_periodicity before (numpy steps, commit 099acf1) and after (one numba pass per frame),
one frame a call as the harmonic carrier calls it, on the demo clip's STFT frames at 48 kHz, 7 interleaved runs.

Run from the repository root: ``python benchmarks/results/speed/2026-12-04-periodicity-kernel/measure_periodicity.py``.
"""

import importlib.util
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.config import AnalysisConfig
from engine.register import frame_periodicity
from engine.stft import stft

BEFORE = "099acf1"
with tempfile.TemporaryDirectory() as scratch:
    source = Path(scratch) / "register_before.py"
    source.write_text(subprocess.run(["git", "show", f"{BEFORE}:engine/register.py"], capture_output=True,
                                     text=True, check=True).stdout)
    spec = importlib.util.spec_from_file_location("register_before", source)
    assert spec is not None and spec.loader is not None
    before = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(before)

analysis = AnalysisConfig().at_rate(48000)
audio, rate = sf.read("presets/demo.flac", dtype="float32")
audio = np.interp(np.arange(len(audio) * 48000 // rate) * rate / 48000, np.arange(len(audio)), audio)
spectra = stft(audio.astype(np.float32), analysis.n_fft, analysis.hop)
pitch_a, share_a = before.frame_periodicity(spectra, analysis)
pitch_b, share_b = frame_periodicity(spectra, analysis)
assert np.array_equal(pitch_a, pitch_b, equal_nan=True) and np.array_equal(share_a, share_b)
times: dict[str, list[float]] = {"before": [], "after": []}
for _ in range(7):
    for name, function in (("before", before.frame_periodicity), ("after", frame_periodicity)):
        started = time.perf_counter()
        for index in range(len(spectra)):
            function(spectra[index : index + 1], analysis)
        times[name].append((time.perf_counter() - started) / len(spectra) * 1e6)
for name, runs in times.items():
    print(f"{name}: median {np.median(runs):.0f} us per frame (runs {', '.join(f'{t:.0f}' for t in runs)})")
print(f"ratio {np.median(times['before']) / np.median(times['after']):.2f}; pitch and periodicity identical")
