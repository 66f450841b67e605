"""Playable prototypes: one audible 2-second WAV per prototype and a picture of the bank."""

import numpy as np
import soundfile as sf
from tiny_model import TIMBRES, write_tiny_model

from training.prototypes import main


def test_every_prototype_becomes_an_audible_wav_and_the_bank_a_picture(tmp_path):
    model = write_tiny_model(tmp_path / "tiny.pt")
    assert main(["--preset", str(model), "--out", str(tmp_path / "out")]) == 0
    for index, name in enumerate(TIMBRES):
        audio, rate = sf.read(tmp_path / "out" / f"{index:02d}-{name}.wav")
        assert rate == 44100 and abs(len(audio) / rate - 2.0) < 0.1
        assert 0.5 < np.abs(audio).max() <= 1.0
    assert (tmp_path / "out" / "bank.png").stat().st_size > 1000


def test_unknown_preset_is_one_line(tmp_path, capsys):
    assert main(["--preset", "kazoo", "--out", str(tmp_path)]) == 2
    assert "unknown preset" in capsys.readouterr().err
