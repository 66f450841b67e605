"""How closely the harmonic carrier's filters follow their gains, per band, with the route's half window
(n_fft / 2 taps) and the quarter window that was tried (designed on every second bin, n_fft / 4 taps).

Run from the repository root: ``python benchmarks/results/speed/2026-12-04-coarse-harmonic-filters/measure_low_end.py``.
"""

from pathlib import Path

import numpy as np

from engine import filterroute
from engine.processor import Processor

BANDS_HZ = [(0, 300), (300, 1000), (1000, 4000), (4000, 24000)]
recorded: list[np.ndarray] = []
design = filterroute.minimum_phase_filters


def recording(gains: np.ndarray, n_fft: int, taps: int) -> np.ndarray:
    recorded.append(gains.copy())
    return design(gains, n_fft, taps)


def shortfall_db(filters: np.ndarray, wanted: np.ndarray, fine_hz: np.ndarray) -> list[float]:
    """Median over frames of each band's power through ``filters`` minus the ``wanted`` gains' power there (dB),
    both on the frequencies ``fine_hz``."""
    response = np.abs(np.fft.rfft(filters, n=2 * (len(fine_hz) - 1), axis=-1))
    result = []
    for low, high in BANDS_HZ:
        band = (fine_hz >= low) & (fine_hz < high)
        ratio = np.mean(response[:, band] ** 2, 1) / np.mean(wanted[:, band] ** 2, 1)
        result.append(round(float(np.median(10 * np.log10(ratio))), 1))
    return result


filterroute.minimum_phase_filters = recording
for preset in ("cello", "violin", "flute"):
    recorded.clear()
    proc = Processor.from_preset(Path(f"presets/{preset}.yaml"))
    out = Path(f"/tmp/low-end-{preset}.wav")
    out.unlink(missing_ok=True)
    proc.process_file(Path("presets/demo.flac"), out)
    gains = np.concatenate(recorded)
    gains = gains[gains.max(axis=1) > 0]
    n_fft, rate = proc.analysis.n_fft, proc.analysis.sample_rate
    fine_hz = np.fft.rfftfreq(8 * n_fft, 1 / rate)
    wanted = np.array([np.interp(fine_hz, np.arange(n_fft // 2 + 1) * rate / n_fft, row) for row in gains])
    print(f"{preset}: {len(gains)} frames at {rate} Hz, n_fft {n_fft}, bands {BANDS_HZ}")
    print("  half window   ", shortfall_db(design(gains, n_fft, n_fft // 2), wanted, fine_hz))
    print("  quarter window", shortfall_db(design(gains[:, ::2], n_fft // 2, n_fft // 4), wanted, fine_hz))
    print("  full design cut to a quarter", shortfall_db(design(gains, n_fft, n_fft // 4), wanted, fine_hz))
