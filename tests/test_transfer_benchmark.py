"""benchmarks.transfer end to end on a tiny world: synthetic timbres, their phrases, a CNN trained here.

The tiny model with ``head_std=0`` predicts identity parameters, so every transfer renders the target's
prototype at its reference note (A3).  Phrases played at that note must then come out at that pitch,
which pins the pitch measurement (notes file, pyin, onset skipping) to a known answer.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from tiny_model import REFERENCE_MIDI, TIMBRES, midi_to_hz, tone, write_tiny_model

from benchmarks.transfer import Capture, main, output_magnitudes, pitch_errors
from engine.audiofile import read_audio
from engine.config import AnalysisConfig
from engine.frontend import log_mel
from engine.processor import Processor
from engine.stft import stft
from engine.synth import synthesize_magnitudes
from engine.transfer import TransferRenderer
from training.baselines import train_cnn

RATE = 44100
NOTE_S = 0.6


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A preset, a phrases folder (two notes at the reference pitch per timbre) and a trained CNN."""
    folder = tmp_path_factory.mktemp("transfer-benchmark")
    write_tiny_model(folder / "tiny.pt", head_std=0.0)
    preset = folder / "tiny.yaml"
    preset.write_text("model: tiny.pt\nmode: transfer\ntarget: square\n")
    for timbre in TIMBRES:
        phrase_dir = folder / "data" / "phrases" / timbre
        phrase_dir.mkdir(parents=True)
        notes = [tone(timbre, midi_to_hz(REFERENCE_MIDI), NOTE_S, RATE, amplitude) for amplitude in (0.3, 0.15)]
        sf.write(phrase_dir / f"{timbre}-phrase-000.wav", np.concatenate(notes), RATE)
        (phrase_dir / f"{timbre}-phrase-000.notes.csv").write_text(
            f"onset_s,offset_s,midi\n0.0,{NOTE_S},{REFERENCE_MIDI}\n{NOTE_S},{2 * NOTE_S},{REFERENCE_MIDI}\n")
    config = AnalysisConfig()
    clips, labels = [], []
    for label, timbre in enumerate(TIMBRES):
        for midi in range(48, 68, 3):
            clips.append(log_mel(tone(timbre, midi_to_hz(midi), 0.5, RATE), config))
            labels.append(label)
    cnn = train_cnn(clips, labels, TIMBRES, epochs=20, crop_frames=16, batch_size=8, progress=False)
    cnn.save(folder / "cnn.pt")
    return {"preset": preset, "phrases": folder / "data", "classifier": folder / "cnn.pt"}


def _args(world: dict[str, Path], **overrides: str) -> list[str]:
    options = {key: str(value) for key, value in world.items()} | overrides
    return [item for key, value in options.items() for item in (f"--{key}", value)]


def test_json_reports_every_figure_for_both_candidates_and_carriers(world, capsys):
    assert main([*_args(world, targets="sine,square"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = {(row["target"], row["candidate"], row["carrier"]): row for row in result["results"]}
    assert set(rows) == {(t, c, k) for t in ("sine", "square") for c in ("winner", "target")
                         for k in ("input", "prototype", "filter", "harmonic")}
    assert 0.0 <= result["classifier_input_accuracy"] <= 1.0 and result["wall_s"] > 0
    for row in rows.values():
        assert row["phrases"] == 2  # the two other timbres, never the target's own phrase
        assert 0.0 <= row["hit_rate"] <= 1.0
        assert sum(row["judge_heard"].values()) == 2 and row["judge_heard"].get(row["target"], 0) == round(
            2 * row["hit_rate"])  # what the judge named, the hits among it
        assert row["pitch_error_cents"] is not None and 0.0 <= row["pitch_error_cents"] < 50.0, row
        assert row["voiced_share"] > 0.5, row
        assert set(row["spectral_convergence"]) == {"rtpghi", "input", "griffin_lim"}
        assert all(0.0 < value < 2.0 for value in row["spectral_convergence"].values()), row
        assert row["rtf"] > 0 and row["audio_s"] == pytest.approx(4 * NOTE_S, rel=0.01)


def test_phrases_of_a_split_file_without_notes_are_their_own_pitch_reference(world, capsys):
    """Speech has no notes: ``--split`` plays the test side of a split file, and each output's pitch is held to
    its input's, frame by frame."""
    split = world["phrases"] / "split.csv"
    rows = [f"{side},phrases/{timbre}/{timbre}-phrase-000.wav,{timbre},tiny,,"
            for side, timbre in zip(("train", "test", "test"), TIMBRES, strict=False)]
    split.write_text("split,path,label,library,midi,variant\n" + "\n".join(rows) + "\n")
    target = TIMBRES[1]
    assert main([*_args(world, targets=target, candidates="winner", carriers="filter"), "--split", str(split),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    (row,) = result["results"]
    assert result["split"] == str(split) and result["source_classes"] == sorted(TIMBRES[1:3])
    assert row["phrases"] == 1  # the train side is never played, nor the target's own phrase
    assert row["pitch_error_cents"] is not None and row["pitch_error_cents"] < 20.0 and row["voiced_share"] > 0.5


def test_a_phrase_without_notes_is_scored_against_its_own_pitch():
    source = tone("sawtooth", 220.0, 1.0, RATE)
    same, same_frames = pitch_errors(source, RATE, None, source)
    higher, _ = pitch_errors(tone("sawtooth", 220.0 * 2 ** (1 / 12), 1.0, RATE), RATE, None, source)
    assert same_frames > 50 and len(same) > 0.9 * same_frames and np.median(same) < 5.0
    assert np.median(higher) == pytest.approx(100.0, abs=10.0)


def test_table_has_one_row_per_target_and_candidate(world, capsys):
    assert main(_args(world, candidates="winner", carriers="input")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "hit %" in lines[2] and "SC rtpghi" in lines[2]
    assert lines[3].split()[:4] == ["square", "winner", "input", "2"] and lines[4].startswith("wall time")


def test_captured_frames_are_the_ones_the_stream_synthesised(world):
    """The SC figures are only about the stream's frames if resynthesising the capture gives its output."""
    proc = Processor.from_preset(world["preset"])
    proc.prepare(RATE, 512)
    capture = Capture()
    proc.tap = capture
    phrase = world["phrases"] / "phrases" / "sawtooth" / "sawtooth-phrase-000.wav"
    out_path = world["phrases"].parent / "streamed.wav"
    proc.process_file(phrase, out_path)
    streamed, _ = read_audio(out_path)
    wet = capture.rendered(TransferRenderer(proc.model, "square"), proc.analysis, proc.preset.gate_db)
    analysis = proc.analysis
    audio, _ = read_audio(phrase)
    tail = np.zeros(proc.latency_samples + analysis.n_fft, dtype=np.float32)  # what process_file flushes with
    spectra = stft(np.concatenate([audio, tail]), analysis.n_fft, analysis.hop)[: len(wet)]
    magnitudes = output_magnitudes(wet, spectra, analysis, proc.preset.carrier)
    # process_file's output stops short of the wet part of a last partial hop, so compare whole hops
    whole_hops = len(streamed) // analysis.hop * analysis.hop
    resynthesised = synthesize_magnitudes(magnitudes, analysis.n_fft, analysis.hop, proc.preset.phase,
                                          spectra)[:whole_hops]
    assert np.abs(streamed).max() > 0.05
    np.testing.assert_allclose(streamed[:whole_hops], resynthesised, atol=1e-4)  # 16-bit file


@pytest.mark.parametrize("override, message", [
    ({"preset": "no-such-preset"}, "unknown preset"),
    ({"classifier": "missing.pt"}, "classifier not found"),
    ({"phrases": "no/such/folder"}, "does not exist"),
    ({"targets": "kazoo"}, "unknown target"),
    ({"candidates": "loudest"}, "unknown candidate"),
    ({"carriers": "kazoo"}, "unknown carrier"),
])
def test_bad_inputs_give_one_line_errors(world, capsys, override, message):
    assert main(_args(world, **override)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
