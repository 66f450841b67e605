"""Latency composed from the stages' declared delays, and checked by an impulse through the real wet path.

A grid of host rates, block sizes, look-aheads, phases and carriers (pedalboard's and Neutone's habit):
the reported ``latency_samples`` must be where the sound really comes out, in transfer mode at full mix,
not only through the dry path.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_model import write_tiny_model

from engine.processor import Processor

BLOCKS = (64, 128, 256, 512, 700, 1024)
GRID_BLOCKS = (128, 700)
RATES = (32000, 44100, 48000)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """The tiny model with 0 and 2 frames of look-ahead, its predictor's head zeroed: every frame gets the
    same gain, pitch and shelves, so the output's shape follows the input's, not the random head's."""
    folder = tmp_path_factory.mktemp("latency")
    return {lookahead: write_tiny_model(folder / f"tiny{lookahead}.pt", lookahead=lookahead, head_std=0.0)
            for lookahead in (0, 2)}


@pytest.mark.parametrize("phase", ["rtpghi", "input"])
@pytest.mark.parametrize("lookahead", [0, 2])
@pytest.mark.parametrize("rate", RATES)
def test_the_latency_is_the_sum_of_the_declared_delays(models, phase, lookahead, rate):
    proc = Processor.from_preset(models[lookahead], phase=phase)
    analysis = proc.analysis.at_rate(rate)  # the model's window and hop at the host's rate: no resampler
    synthesis_frames = 1 if phase == "rtpghi" else 0  # RTPGHI's look-ahead
    latencies = set()
    for block in BLOCKS:
        proc.prepare(rate, block)
        parts = proc.latency_parts()
        assert parts == {"window": analysis.n_fft - analysis.hop,
                         "look-ahead": (lookahead + synthesis_frames) * analysis.hop,
                         "blocks": analysis.hop - 1}, block
        assert proc.latency_samples == sum(parts.values())
        latencies.add(proc.latency_samples)
    assert len(latencies) == 1  # the same whatever the host's block size


def _impulse_offset(proc: Processor, rate: int, block: int) -> int:
    """Where an impulse comes out of ``proc`` in transfer mode at full mix, minus where it should."""
    proc.prepare(rate, block)
    proc.reset()
    signal = np.zeros(rate, dtype=np.float32)
    at = rate // 4 + 123
    signal[at] = 1.0
    out = np.concatenate([proc.process(signal[i : i + block]) for i in range(0, len(signal), block)])
    assert np.abs(out).max() > 0.01, "the wet path was silent"
    return int(np.argmax(np.abs(out))) - at - proc.latency_samples


@pytest.mark.parametrize("carrier", ["input", "prototype"])
@pytest.mark.parametrize("phase", ["input", "rtpghi"])
def test_an_impulse_through_the_wet_path_arrives_at_the_reported_latency(models, phase, carrier):
    offsets = {}
    for lookahead, path in models.items():
        proc = Processor.from_preset(path, phase=phase, carrier=carrier, mode="transfer", target="sawtooth", mix=1.0)
        for rate in RATES:
            for block in GRID_BLOCKS:
                offsets[lookahead, rate, block] = _impulse_offset(proc, rate, block)
    if phase == "input":  # the input's own phase puts the impulse back exactly where it was
        assert set(offsets.values()) == {0}, offsets
        return
    # RTPGHI rebuilds the phase from magnitudes: the input carrier's impulse lands within a few samples; the
    # prototype carrier sings the prototype, whose peak lies where its rebuilt phase puts it (a waveform's
    # shape, which differs between rates).  Either way the reported latency must move exactly with the real
    # delay across blocks and look-aheads, to the sample at every rate (there is no resampler's filter).
    for rate in RATES:
        at_rate = [offset for (_, r, _), offset in offsets.items() if r == rate]
        assert max(at_rate) == min(at_rate), offsets
    if carrier == "input":
        assert max(abs(offset) for offset in offsets.values()) <= 16, offsets


def test_the_latency_benchmark_measures_what_it_reports(models, tmp_path, monkeypatch, capsys):
    from benchmarks import latency

    (tmp_path / "tiny.yaml").write_text(f"model: {models[2]}\nmode: transfer\ntarget: sawtooth\nphase: input\n")
    monkeypatch.setenv("PROTOPHONE_PRESETS", str(tmp_path))
    assert latency.main(["--rates", "44100", "48000", "--blocks", "128", "700", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(row["preset"], row["sample_rate"], row["block_size"]) for row in rows] == \
        [("tiny", rate, block) for rate in (44100, 48000) for block in (128, 700)]
    for row in rows:
        assert row["dry_measured_samples"] == row["wet_measured_samples"] == row["reported_samples"], row
        assert sum(row["parts_ms"].values()) == pytest.approx(row["reported_ms"])


def test_jack_iodelay_measures_the_engine_path_as_reported(models, tmp_path, monkeypatch):
    """An outside client (jack_iodelay) through the engine as realtime.live runs it, on a private server."""
    import shutil
    import warnings

    from jack_server import JackUnavailable

    from benchmarks import latency

    if shutil.which("jack_iodelay") is None:
        warnings.warn("jack_iodelay missing (apt-get install jackd2): JACK latency test SKIPPED", stacklevel=1)
        pytest.skip("jack_iodelay missing")
    (tmp_path / "tiny.yaml").write_text(f"model: {models[0]}\nphase: input\n")
    monkeypatch.setenv("PROTOPHONE_PRESETS", str(tmp_path))
    measured: dict[bool, float] = {}
    for attempt, unbuffered in ((1, False), (2, False), (1, True), (2, True)):
        # a stall of the shared machine (an xrun) may move the delay: one loud second run
        if attempt == 2 and unbuffered in measured:
            continue
        try:
            row = latency.jack_round_trip("tiny", 48000, 256, unbuffered)
        except JackUnavailable as error:
            warnings.warn(f"JACK latency test SKIPPED: {error}", stacklevel=1)
            pytest.skip(str(error))
        if attempt == 1 and row["through_engine_samples"] != pytest.approx(row["expected_samples"], abs=1):
            warnings.warn(f"jack_iodelay disagreed with the report on the first run ({row}); running it again",
                          stacklevel=1)
            continue
        assert row["server_loop_samples"] == 256  # the dummy backend's own loop: one period
        assert row["through_engine_samples"] == pytest.approx(row["expected_samples"], abs=1), row
        measured[unbuffered] = row["through_engine_samples"]
    assert measured[False] - measured[True] == pytest.approx(256, abs=1)  # --latency low saves PortAudio's block
