"""A file job's timeline picture (realtime.timeline): snapshots every period of processed audio, the runs of
the decision, the waveform read in chunks, and the PNG a file job writes beside its output."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import soundfile as sf
from test_live import REPO, sawtooth_phrase
from tiny_model import write_tiny_model

from engine.identify import Identification
from engine.processor import Processor
from realtime import timeline
from realtime.timeline import (
    MAX_POINTS,
    PERIOD_S,
    Timeline,
    decimated,
    decision_spans,
    draw_timeline,
    waveform_peaks,
)

RATE = 44100


def test_one_snapshot_per_period_boundary_crossed():
    log = Timeline(("a", "b"), RATE)
    calls = []

    def snapshot() -> Identification:
        calls.append(1)
        return Identification("b", {"a": 0.25, "b": 0.75}, 10)

    log.observe(int(0.05 * RATE), snapshot)  # no boundary yet: no snapshot taken
    log.observe(int(0.35 * RATE), snapshot)  # three boundaries at once: one snapshot, three rows
    assert len(calls) == 1 and log.labels == ["b"] * 3
    np.testing.assert_array_equal(np.array(log.probabilities), [[0.25, 0.75]] * 3)


def test_decision_spans_are_runs_of_the_same_label():
    assert decision_spans([None, None, "a", "a", None, "b"]) == [(0, 2, None), (2, 4, "a"), (4, 5, None), (5, 6, "b")]
    assert decision_spans([]) == []


def test_a_long_curve_is_drawn_as_the_largest_value_of_each_stretch():
    """An hour of periods becomes at most MAX_POINTS points; a one-period spike survives; a short curve is as is."""
    times = np.arange(36000) * PERIOD_S
    values = np.zeros((36000, 3))
    values[12345, 1] = 0.9
    drawn_times, drawn = decimated(times, values)
    assert len(drawn) <= MAX_POINTS and drawn.shape[1] == 3 and len(drawn_times) == len(drawn)
    assert drawn[:, 1].max() == 0.9 and drawn[:, [0, 2]].max() == 0.0
    assert drawn_times[0] >= times[0] and drawn_times[-1] <= times[-1] and np.all(np.diff(drawn_times) > 0)
    spike_at = drawn_times[int(np.argmax(drawn[:, 1]))]
    assert abs(spike_at - times[12345]) < len(times) / MAX_POINTS * PERIOD_S
    short_times, short = decimated(times[:100], values[:100])
    np.testing.assert_array_equal(short_times, times[:100])
    np.testing.assert_array_equal(short, values[:100])


def test_waveform_peaks_read_in_chunks_equal_the_whole_file(tmp_path, monkeypatch):
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, (int(2.37 * RATE), 2)).astype(np.float32)
    audio[int(1.0 * RATE), 1] = 0.9
    sf.write(tmp_path / "in.wav", audio, RATE, subtype="FLOAT")
    monkeypatch.setattr(timeline, "READ_FRAMES", 1000)  # many chunks, none a whole period
    peaks, period_s = waveform_peaks(tmp_path / "in.wav")
    period = round(PERIOD_S * RATE)
    expected = [np.abs(audio[i:i + period]).max() for i in range(0, len(audio), period)]
    assert period_s == period / RATE
    np.testing.assert_allclose(peaks, expected, rtol=0, atol=1e-7)
    assert int(np.argmax(peaks)) == 10


def test_the_timeline_of_a_phrase_names_its_notes_and_marks_the_silence_before(tmp_path):
    write_tiny_model(tmp_path / "tiny.pt", head_std=0.0)
    proc = Processor.from_preset(tmp_path / "tiny.pt", mode="identify")
    proc.prepare(RATE, 512)
    silence = np.zeros(RATE // 2, dtype=np.float32)
    audio = np.concatenate([silence, sawtooth_phrase(RATE, notes=2)])
    log = Timeline(proc.metadata.class_names, RATE)
    for start in range(0, len(audio) - 511, 512):
        proc.process(audio[start:start + 512])
        log.observe(start + 512, lambda: proc.identification)
    assert len(log.labels) == int(len(audio) // 512 * 512 / (PERIOD_S * RATE))
    assert log.labels[:4] == [None] * 4  # nothing heard before the first note
    assert log.labels.count("sawtooth") > 0.6 * len(log.labels)
    sf.write(tmp_path / "in.wav", audio, RATE)
    path = draw_timeline(log, tmp_path / "in.wav", tmp_path / "in.png", "in.wav")
    import matplotlib.image

    assert matplotlib.image.imread(path).shape == (550, 1100, 4)


def test_a_file_job_writes_its_timeline_beside_its_output(tmp_path):
    write_tiny_model(tmp_path / "tiny.pt", head_std=0.0)
    sf.write(tmp_path / "in.wav", sawtooth_phrase(RATE, notes=1), RATE)
    run = subprocess.run([sys.executable, "-m", "realtime.live", "--preset", str(tmp_path / "tiny.pt"), "--input",
                          str(tmp_path / "in.wav"), "--output", str(tmp_path / "out.wav")],
                         cwd=REPO, capture_output=True, text=True, timeout=180, check=False)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.png", "out.wav", "tiny.pt"]
    assert (tmp_path / "out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
