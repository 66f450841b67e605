"""The independence check tells a shared recording from another recording of the same note."""

from __future__ import annotations

import numpy as np

from benchmarks.independence import RELATED, SHARED, kept_with, similarity

RATE = 44100
MAX_LAG = int(0.05 * RATE)


def _recording(seed: int, f0: float = 220.0, seconds: float = 0.5) -> np.ndarray:
    """A harmonic note as one player and microphone might record it: partials of their own levels and
    phases, and a slow vibrato of its own."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    frequency = f0 * (1 + 0.004 * np.sin(2 * np.pi * rng.uniform(4, 6) * t + rng.uniform(0, 2 * np.pi)))
    phase = 2 * np.pi * np.cumsum(frequency) / RATE
    return sum(rng.uniform(0.2, 1.0) / np.sqrt(k) * np.sin(k * phase + rng.uniform(0, 2 * np.pi)) for k in range(1, 11))


def test_a_shared_recording_scores_as_shared_whatever_its_level_and_start() -> None:
    recording = _recording(0)
    shifted = 0.3 * np.concatenate((np.zeros(400), recording[:-400]))
    assert similarity(recording, shifted, MAX_LAG) > SHARED


def test_other_recordings_of_the_same_note_score_below_related() -> None:
    scores = [similarity(_recording(0), _recording(seed), MAX_LAG) for seed in range(1, 6)]
    assert max(scores) < RELATED, scores


def test_a_new_run_replaces_the_pairs_it_measured_and_keeps_the_others() -> None:
    def row(a: str, b: str, median: float) -> dict:
        return {"libraries": [a, b], "median": median}

    kept = [row("Merlin", "Merlin", 1.0), row("Merlin", "FluidR3_GM", 0.32), row("FluidR3_GM", "freepats", 0.39)]
    measured = [row("sonivox", "sonivox", 1.0), row("FluidR3_GM", "freepats", 0.40)]
    assert kept_with(kept, measured) == [row("Merlin", "Merlin", 1.0), row("Merlin", "FluidR3_GM", 0.32),
                                         row("FluidR3_GM", "freepats", 0.40), row("sonivox", "sonivox", 1.0)]
