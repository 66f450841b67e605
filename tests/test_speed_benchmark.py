"""The speed and memory benchmarks measure what they say: every stage of the transfer path is found in the
profile and the stages account for the whole of ``process``; a child's peak memory is its own."""

import os
import subprocess
import sys
import time

import pytest

from benchmarks import speed
from benchmarks.file_memory import resident_peak_mb
from engine.processor import Processor

CARRIER_STAGES = {"filter": {"carrier gains (envelopes, filter design input)"},
                  "harmonic": {"harmonic carrier's excitation (pitch, oscillators, noise)",
                               "harmonic carrier's gains (the target's envelope)"}}


@pytest.mark.parametrize("carrier", sorted(CARRIER_STAGES))
def test_the_stage_profile_finds_every_stage_of_the_filter_route_and_accounts_for_all_of_process(carrier):
    proc = Processor.from_preset("violin", mode="transfer", carrier=carrier)
    proc.prepare(48000, 128)
    untimed = [getattr(owner, name) for owner, name in speed.STAGES.values()]
    stages = speed.stage_profile(proc, speed.test_signal(1.0, 48000))
    assert [getattr(owner, name) for owner, name in speed.STAGES.values()] == untimed  # the timers are gone
    expected = {"front end (STFT, mel)", "model step (predictor, every prototype's error)", "identification",
                "transfer rendering (the chosen prototype)", "filter route (filter design, convolution, shifter)",
                "other", *CARRIER_STAGES[carrier]}
    assert expected <= set(stages), sorted(stages)
    other_carrier = {name for other, names in CARRIER_STAGES.items() if other != carrier for name in names}
    assert not other_carrier & set(stages)
    assert "synthesis (RTPGHI, overlap-add)" not in stages  # the filter route synthesises nothing
    assert sum(stage["share"] for stage in stages.values()) == pytest.approx(1.0)
    assert all(stage["share"] > 0.0 and stage["us_per_frame"] > 0.0 for stage in stages.values()), stages


def test_a_child_s_peak_memory_is_read_from_its_own_process():
    """``VmHWM`` of a child that holds 200 MB is at least that, whatever this (larger or smaller) process holds."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; b = bytearray(200 << 20); sys.stdin.read()"],
                             stdin=subprocess.PIPE, text=True)
    try:
        peak, deadline = 0.0, time.monotonic() + 60.0
        while peak < 200.0 and child.poll() is None and time.monotonic() < deadline:  # until it holds 200 MB
            peak = resident_peak_mb(child.pid)
            time.sleep(0.01)
        assert peak >= 200.0
    finally:
        child.communicate("")
    assert resident_peak_mb(child.pid) == 0.0  # gone: nothing to read
    assert resident_peak_mb(os.getpid()) > 0.0
