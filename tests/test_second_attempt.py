"""The retry that real-time tests rely on must be loud and must judge the last attempt; the witness of
the machine's stalls must explain only the xruns that follow lost time."""

from __future__ import annotations

import os
import signal
import time
import warnings

import pytest
from second_attempt import retry_if_disturbed

from benchmarks.jackrig.stallwitness import Stall, StallWitness, lost_share, unexplained_xruns, wait_for_calm


def _settled(record: list[str]):
    """A settle step that only records when it was called (the real one watches the machine)."""
    return lambda: record.append("settled") or 0.0


def test_an_undisturbed_attempt_runs_once_and_silently() -> None:
    calls: list[int] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert retry_if_disturbed(lambda: calls.append(1) or len(calls), lambda r: None) == 1
    assert calls == [1]


def test_a_disturbed_attempt_warns_with_the_reason_and_returns_the_second_result() -> None:
    results = iter(["xrun at 1.0 s", "xrun at 2.0 s", "never reached"])
    record: list[str] = []
    with pytest.warns(UserWarning, match="attempt 1 of 2 disturbed, trying again after .* s for the machine to "
                                         "calm down: xrun at 1.0 s"):
        last = retry_if_disturbed(lambda: record.append("attempt") or next(results), lambda r: r,
                                  settle=_settled(record))
    assert last == "xrun at 2.0 s"  # disturbed again: handed back for the caller's assertions to fail
    assert record == ["attempt", "settled", "attempt"]  # settles before the next attempt, not after the last


def test_more_attempts_stop_at_the_first_clean_one() -> None:
    results = iter(["xrun", "xrun", "", "never reached"])
    with pytest.warns(UserWarning, match="attempt 2 of 4 disturbed"):
        assert retry_if_disturbed(lambda: next(results), lambda r: r, attempts=4, settle=_settled([])) == ""


PERIOD_S = 0.01


def test_an_xrun_is_explained_only_by_enough_lost_time_just_before_it() -> None:
    stalls = [Stall(10.0, 10.004), Stall(10.0, 10.003)]  # one stop seen by both CPUs' sleepers: 4 ms lost
    assert unexplained_xruns([10.005, 10.05], stalls, PERIOD_S) == []  # soon after; within 6 periods
    assert unexplained_xruns([9.99, 10.07, 11.0], stalls, PERIOD_S) == [9.99, 10.07, 11.0]  # before; too late
    assert unexplained_xruns([10.005], [Stall(10.0, 10.002)], PERIOD_S) == [10.005]  # 2 ms < a quarter period
    assert unexplained_xruns([10.05], [Stall(10.0, 10.0015), Stall(10.02, 10.0215)], PERIOD_S) == []  # 3 ms


def test_the_lost_share_counts_a_stop_every_cpu_saw_once_and_only_inside_the_window() -> None:
    stalls = [Stall(1.0, 1.01), Stall(1.0, 1.01), Stall(2.95, 3.05)]
    assert lost_share(stalls, 0.0, 3.0) == pytest.approx((0.01 + 0.05) / 3.0)  # the last one cut at 3 s
    assert lost_share(stalls, 1.5, 2.5) == 0.0


def test_waiting_for_calm_watches_at_least_one_window_and_gives_up_at_its_deadline() -> None:
    if not StallWitness().available:
        pytest.skip("no real-time scheduling here: the witness cannot run (CI runs as root, where it can)")
    waited = wait_for_calm(window_s=0.2, deadline_s=0.0)
    assert 0.2 <= waited < 30.0  # one window, then the deadline (already passed) ends it


def test_the_witness_records_a_stop_of_its_own_making() -> None:
    """Nothing this project runs can delay the sleepers, so stop them (SIGSTOP) for 30 ms instead: the
    gap must show as a stall of about that length."""
    witness = StallWitness()
    if not witness.available:
        pytest.skip("no real-time scheduling here: the witness cannot run (CI runs as root, where it can)")
    with witness:
        time.sleep(0.05)
        for sleeper in witness._sleepers:
            os.kill(sleeper.pid, signal.SIGSTOP)
        time.sleep(0.03)
        for sleeper in witness._sleepers:
            os.kill(sleeper.pid, signal.SIGCONT)
        time.sleep(0.05)
    longest = max((s.length_s for s in witness.stalls), default=0.0)
    assert 0.025 < longest < 0.2, witness.stalls
