"""benchmarks.readout's figures of one phrase: switches between named classes, how the phrase ends."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.readout import main, phrase_figures
from training.scoring import ClipReadout

FRAME_RATE = 4.0  # so that the live checkpoints (0.25 s and 1 s) fall on frames 1 and 4 of sound
CLASSES = {"a": 0, "b": 1}


def _readout(live: list[int], clip: str | None) -> ClipReadout:
    levels = np.where(np.arange(len(live)) < len(live) - 1, -10.0, -120.0)  # sound, then silence at the end
    return ClipReadout(np.array(live), clip, levels)


def test_a_phrase_that_wavers_counts_its_switches_and_ends_on_the_clip_decision():
    figures = phrase_figures(_readout([0, 0, -1, 1, 1, 0, 0, -1], "a"), 0, CLASSES, FRAME_RATE)
    assert figures["switches"] == 2  # a -> b -> a; the unnamed frame before b is no switch of its own
    assert figures["ends on the clip decision"] and figures["ends right"]
    assert figures["live 0.25 s"] and not figures["live 1 s"]  # the first sounding frame shows a, the fourth b
    assert figures["right frames"] == pytest.approx(4 / 7)  # the sounding frames: all but the last
    assert figures["unnamed frames"] == pytest.approx(1 / 7)


def test_a_phrase_ending_on_another_class_than_the_clip_decision():
    figures = phrase_figures(_readout([0, 0, 0, 0, 1, 1, 1, -1], "a"), 0, CLASSES, FRAME_RATE)
    assert figures["switches"] == 1
    assert not figures["ends on the clip decision"] and not figures["ends right"]
    nothing = phrase_figures(_readout([-1, -1, -1], None), 1, CLASSES, FRAME_RATE)
    assert nothing["switches"] == 0 and nothing["ends on the clip decision"] and not nothing["ends right"]


def test_ratios_under_one_are_refused_in_one_line(capsys):
    with pytest.raises(SystemExit):
        main(["--ratios", "0.5"])
    assert "ratios must be at least 1" in capsys.readouterr().err
