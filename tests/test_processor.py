"""The plugin-style Processor: streaming == batch, measured latency, identification, bad input."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from tiny_model import REFERENCE_MIDI, TIMBRES, midi_to_hz, tone, write_tiny_model

from engine.errors import AudioFileError, PresetError
from engine.frontend import frame_level_db, log_mel
from engine.identify import ClassMap, StreamingIdentifier
from engine.modelfile import load_model
from engine.preset import available_presets, load_preset
from engine.processor import Processor
from presets import demo_file

RATE = 44100


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny.pt")


@pytest.fixture(scope="module")
def identity_model_path(tmp_path_factory):
    """Transformations fixed at identity: each timbre's own prototype reconstructs it best."""
    return write_tiny_model(tmp_path_factory.mktemp("models") / "identity.pt", head_std=0.0)


def _phrase(seconds: float = 1.5) -> np.ndarray:
    """Three timbres in a row with a gap of silence: exercises the level gate and the decisions."""
    f0 = midi_to_hz(REFERENCE_MIDI)
    parts = [np.concatenate([tone(t, f0, seconds / 3, RATE), np.zeros(2000, np.float32)]) for t in TIMBRES]
    return np.concatenate(parts)


def _stream(proc: Processor, audio: np.ndarray, block: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    taps: dict[str, list] = {"frames": [], "params": [], "errors": [], "decisions": []}
    proc.tap = lambda f, p, e, d: [taps[k].append(v) for k, v in zip(taps, (f, p, e, d), strict=True)]
    out = np.concatenate([proc.process(audio[i : i + block]) for i in range(0, len(audio), block)])
    proc.tap = None
    return out, {k: np.concatenate(v) for k, v in taps.items()}


@pytest.mark.parametrize("lookahead", [0, 2])
@pytest.mark.parametrize("block", [64, 100, 256, 1000])
def test_streaming_engine_equals_batch_model(tmp_path, lookahead, block):
    path = write_tiny_model(tmp_path / "m.pt", lookahead=lookahead)
    proc = Processor.from_preset(path)
    assert proc.model.module is None  # the stream runs on the file's fused numbers; the batch is its TorchScript
    proc.prepare(RATE, block)
    audio = _phrase()
    _, streamed = _stream(proc, audio, block)

    analysis = proc.analysis
    frames = log_mel(audio, analysis)
    with torch.no_grad():
        params, errors = load_model(path).module(torch.from_numpy(frames)[None])  # the TorchScript module
    identifier = StreamingIdentifier(proc.class_map, proc._wet.identifier.temperature, analysis.frame_rate)
    decisions = identifier.update(errors[0].numpy(), frame_level_db(frames, analysis))

    n = len(streamed["frames"])
    assert n >= len(frames) - lookahead - block // analysis.hop - 1
    np.testing.assert_allclose(streamed["frames"], frames[:n], atol=1e-5)
    np.testing.assert_allclose(streamed["params"], params[0, :n].numpy(), atol=1e-5)
    np.testing.assert_allclose(streamed["errors"], errors[0, :n].numpy(), atol=1e-5)
    np.testing.assert_array_equal(streamed["decisions"], decisions[:n])
    assert proc.clip_label == identifier.clip_label() or n < len(frames)


def test_file_mode_on_the_cpu_runs_without_torch_and_writes_what_the_module_gives(tmp_path):
    """The command line's file mode never imports torch (about 200 MB less memory: the fused kernels read the
    model file's own numbers) and writes, sample for sample, what the preset gives with its TorchScript module
    loaded and checked."""
    script = ("import runpy, sys\n"
              "try:\n    runpy.run_module('realtime.live', run_name='__main__', alter_sys=True)\n"
              "finally:\n    print('torch imported' if 'torch' in sys.modules else 'no torch', file=sys.stderr)\n")
    out = tmp_path / "violin.wav"
    run = subprocess.run([sys.executable, "-c", script, "--preset", "violin", "--input", "demo", "--output", str(out),
                          "--block-size", "512"], capture_output=True, text=True, check=False,
                         cwd=Path(__file__).parent.parent)
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip().splitlines()[-1] == "no torch"
    preset = load_preset("violin")
    proc = Processor(load_model(preset.model), preset)
    assert proc.model.module is not None and proc.model.fused_step
    proc.prepare(44100, 512)
    proc.process_file(demo_file(), tmp_path / "with-module.wav")
    np.testing.assert_array_equal(sf.read(out)[0], sf.read(tmp_path / "with-module.wav")[0])


def test_no_kernel_is_compiled_or_loaded_while_audio_is_processed():
    """numba compiles a kernel, or loads it from its cache (~25 ms), at its first call: each kernel the audio
    path calls is called once where its part is built, never in the first audio callback or when the register
    first moves a passage.  In a fresh process, since this one has loaded every kernel already."""
    script = """
import numpy as np
from numba.core import dispatcher
from benchmarks.speed import test_signal
from engine.processor import Processor

first_call, processing = dispatcher.Dispatcher._compile_for_args, [False]
def spied(self, *args, **kwargs):
    if processing[0]:
        print(self.py_func.__module__, self.py_func.__name__)
    return first_call(self, *args, **kwargs)
dispatcher.Dispatcher._compile_for_args = spied
low = 0.2 * (2.0 * (98.0 * np.arange(72000) / 48000 % 1.0) - 1.0)  # G2, under the violin: a passage moved
melody = np.concatenate([test_signal(2.0, 48000), np.zeros(24000), low]).astype(np.float32)
for preset, settings in [("violin", {}), ("violin-lowlatency", {"transpose": -3}), ("identify", {}),
                         ("violin", {"carrier": "input", "transpose": 5}), ("cello", {"carrier": "prototype"})]:
    processing[0] = False
    proc = Processor.from_preset(preset, **settings)
    proc.prepare(48000, 256)
    processing[0], moved = True, False
    for start in range(0, len(melody), 256):
        proc.process(melody[start:start + 256])
        moved = moved or proc.register_shift != 0
    assert moved or preset != "violin" or settings, "the register never moved a passage"
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False,
                         cwd=Path(__file__).parent.parent)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "", f"compiled while processing audio:\n{run.stdout}"


@pytest.mark.parametrize("rate,block", [(44100, 64), (44100, 512), (44100, 1000), (48000, 256), (22050, 100)])
def test_latency_is_the_delay_of_an_impulse(model_path, tmp_path, rate, block):
    proc = Processor.from_preset(model_path)
    proc.prepare(rate, block)
    latency = proc.latency_samples
    assert 0 < latency < rate // 5
    impulse = np.zeros(rate, dtype=np.float32)
    impulse[5000] = 1.0
    out = np.concatenate([proc.process(impulse[i : i + block]) for i in range(0, len(impulse), block)])
    assert int(np.argmax(np.abs(out))) == 5000 + latency
    sf.write(tmp_path / "impulse.wav", impulse, rate, subtype="FLOAT")
    summary = proc.process_file(tmp_path / "impulse.wav", tmp_path / "out.wav")
    aligned, out_rate = sf.read(tmp_path / "out.wav", dtype="float32")
    assert out_rate == rate and len(aligned) == len(impulse)
    assert int(np.argmax(np.abs(aligned))) == 5000
    assert summary["latency_samples"] == latency


def test_wet_path_never_runs_dry_with_prepared_blocks(model_path):
    proc = Processor.from_preset(model_path)
    for rate, block in [(44100, 64), (48000, 333), (96000, 2048)]:
        proc.prepare(rate, block)
        proc.process(np.zeros(rate * 2, dtype=np.float32))
        assert proc.stats.wet_underrun_samples == 0


@pytest.mark.parametrize("timbre", TIMBRES)
def test_each_timbre_is_identified(identity_model_path, tmp_path, timbre):
    proc = Processor.from_preset(identity_model_path)
    audio = tone(timbre, midi_to_hz(REFERENCE_MIDI), 1.0, RATE)
    sf.write(tmp_path / "note.wav", audio, RATE)
    summary = proc.process_file(tmp_path / "note.wav")
    assert summary["label"] == timbre
    assert summary["live_label"] == timbre
    assert max(summary["probabilities"], key=summary["probabilities"].get) == timbre


def test_silence_is_not_identified(identity_model_path):
    proc = Processor.from_preset(identity_model_path)
    proc.prepare(RATE, 256)
    out = proc.process(np.zeros(RATE, dtype=np.float32))
    assert proc.identification.label is None and proc.identification.frames_seen == 0
    assert not out.any()


def test_nonfinite_input_is_replaced_counted_and_never_reaches_the_model(identity_model_path):
    proc = Processor.from_preset(identity_model_path)
    proc.prepare(RATE, 512)
    audio = tone("square", midi_to_hz(REFERENCE_MIDI), 1.0, RATE)
    audio[1000:1010] = np.nan
    audio[3000] = np.inf
    out = proc.process(audio)
    assert proc.stats.nonfinite_samples == 11
    assert np.isfinite(out).all()
    assert proc.identification.label == "square"


def test_dc_clipping_and_huge_values_do_not_break_the_stream(identity_model_path):
    proc = Processor.from_preset(identity_model_path)
    proc.prepare(RATE, 256)
    for signal in (np.full(RATE // 2, 0.5), np.clip(tone("sine", 220, 0.5, RATE) * 10, -1, 1), np.full(5000, 1e30)):
        assert np.isfinite(proc.process(signal.astype(np.float32))).all()
    assert proc.stats.clamped_samples == 5000
    proc.process(tone("sawtooth", midi_to_hz(REFERENCE_MIDI), 1.0, RATE))
    assert np.isfinite(list(proc.identification.probabilities.values())).all()


def test_block_shapes_and_dtypes(identity_model_path):
    proc = Processor.from_preset(identity_model_path)
    proc.prepare(RATE, 256)
    assert proc.process(np.zeros(0, dtype=np.float32)).shape == (0,)
    stereo = np.zeros((256, 2), dtype=np.float64)
    assert proc.process(stereo).dtype == np.float32
    pcm = (tone("sine", 220, 0.1, RATE) * 32767).astype(np.int16)
    assert np.abs(proc.process(pcm)).max() <= 1.0
    assert proc.process(np.zeros(5000, dtype=np.float32)).shape == (5000,)  # longer than prepared
    with pytest.raises(ValueError, match="shape"):
        proc.process(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="zero channels"):
        proc.process(np.zeros((10, 0)))
    with pytest.raises(TypeError, match="dtype"):
        proc.process(np.array(["a", "b"]))


def test_processing_needs_prepare_and_sane_settings(identity_model_path):
    proc = Processor.from_preset(identity_model_path)
    with pytest.raises(RuntimeError, match="prepare"):
        proc.process(np.zeros(10, dtype=np.float32))
    for rate, block in [(0, 256), (10**7, 256), (44100.5, 256), (44100, 0), (44100, 10**8)]:
        with pytest.raises(ValueError):
            proc.prepare(rate, block)
    with pytest.raises(ValueError, match="unknown target"):
        proc.set(target="kazoo")
    with pytest.raises(ValueError, match="mix"):
        proc.set(mix=1.5)
    with pytest.raises(ValueError, match="mode"):
        proc.set(mode="karaoke")


def test_reset_makes_a_stream_repeatable(model_path):
    proc = Processor.from_preset(model_path)
    proc.prepare(RATE, 300)
    audio = _phrase(0.9)
    first = _stream(proc, audio, 300)[1]["errors"]
    proc.reset()
    second = _stream(proc, audio, 300)[1]["errors"]
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("name", available_presets())
def test_every_shipped_preset_loads_and_plays(name):
    proc = Processor.from_preset(name)
    proc.prepare(48000, 256)
    out = proc.process(tone("sawtooth", 220.0, 0.5, 48000))
    assert out.dtype == np.float32 and np.isfinite(out).all()


def test_a_class_without_prototypes_is_never_decided_and_never_blocks_the_others():
    """A clustering model's majority mapping can leave a class without prototypes (measured: viola)."""
    class_map = ClassMap(("a", "b", "c"), (0, 0, 2))
    identifier = StreamingIdentifier(class_map, temperature=10.0, frame_rate=86.0)
    errors = np.array([[0.3, 0.2, 0.1], [0.3, 0.2, 0.1]])
    decisions = identifier.update(errors, np.zeros(2))
    assert decisions.tolist() == [2, 2] and identifier.clip_label() == "c"
    snapshot = identifier.snapshot()
    assert snapshot.probabilities["b"] == 0.0 and snapshot.probabilities["c"] > snapshot.probabilities["a"] > 0.0


def test_the_carrier_can_be_chosen_over_the_preset():
    assert Processor.from_preset("violin").preset.carrier == "harmonic"
    assert Processor.from_preset("violin", carrier="prototype").preset.carrier == "prototype"
    with pytest.raises(PresetError, match="carrier must be one of input, prototype"):
        Processor.from_preset("violin", carrier="kazoo")


def test_unknown_preset_lists_the_available_ones(tmp_path, monkeypatch):
    (tmp_path / "cello.yaml").write_text("model: orchestra.pt\n")
    monkeypatch.setenv("PROTOPHONE_PRESETS", str(tmp_path))
    with pytest.raises(PresetError, match="available presets: cello"):
        Processor.from_preset("kazoo")


@pytest.mark.parametrize(
    "text,message",
    [("model: [unclosed", "not valid YAML"), ("- a list", "mapping"), ("mode: identify", "model"),
     ("model: m.pt\nvolume: 11", "unknown setting"), ("model: m.pt\nmix: loud", "mix must be a number"),
     ("model: m.pt\nmode: karaoke", "mode must be"), ("model: m.pt\ncarrier: kazoo", "carrier must be"),
     ("model: m.pt\ncarrier: input\nphase: input\ntranspose: 12", "need phase 'rtpghi'")],
)
def test_bad_preset_files_name_the_problem(tmp_path, text, message):
    preset = tmp_path / "bad.yaml"
    preset.write_text(text)
    with pytest.raises(PresetError, match=message):
        Processor.from_preset(preset)


def test_corrupt_and_missing_audio_files(identity_model_path, tmp_path):
    proc = Processor.from_preset(identity_model_path)
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(AudioFileError, match="cannot read"):
        proc.process_file(tmp_path / "broken.wav")
    with pytest.raises(AudioFileError, match="not found"):
        proc.process_file(tmp_path / "absent.wav")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine: CPU/GPU parity not run")
def test_cuda_gives_the_cpu_results(model_path):
    audio = _phrase()
    results = []
    for device in ("cpu", "cuda"):
        proc = Processor.from_preset(model_path, device=device)
        proc.prepare(RATE, 256)
        results.append(_stream(proc, audio, 256)[1])
    for key in ("params", "errors"):
        np.testing.assert_allclose(results[0][key], results[1][key], atol=1e-4)
    np.testing.assert_array_equal(results[0]["decisions"], results[1]["decisions"])
