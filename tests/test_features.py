"""Tests for training features (training.features): engine parity, caching, bad files, resampling, crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

import training.features as features_module
from engine.config import AnalysisConfig
from engine.frontend import log_mel
from training.features import FeatureCache, SkippedFileWarning, crop_batch, load_clips, random_crop
from training.layouts import Item, scan

CONFIG = AnalysisConfig()  # instruments: 44.1 kHz, n_fft 2048, hop 512


def _tone(path: Path, seconds: float = 0.3, sample_rate: int = 44100, freq: float = 440.0,
          channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    mono = 0.3 * np.sin(2 * np.pi * freq * t)
    audio = mono if channels == 1 else np.stack([mono * (1 + c) / channels for c in range(channels)], axis=1)
    sf.write(path, audio.astype(np.float32), sample_rate, subtype="FLOAT")
    return path


def _item(path: Path, label: str = "violin") -> Item:
    return Item(path.resolve(), label)


def test_features_equal_engine_log_mel_of_the_file(tmp_path: Path) -> None:
    path = _tone(tmp_path / "violin" / "a.wav", channels=2)
    audio, _ = sf.read(path, dtype="float32", always_2d=True)
    expected = log_mel(audio.mean(axis=1), CONFIG)
    got = FeatureCache(tmp_path / "cache", CONFIG).get(_item(path))
    assert got.dtype == np.float32 and got.shape == (expected.shape[0], CONFIG.n_mels)
    np.testing.assert_array_equal(got, expected)


def test_cache_hit_returns_identical_array_without_recomputing(tmp_path: Path, monkeypatch) -> None:
    item = _item(_tone(tmp_path / "a.wav"))
    cache = FeatureCache(tmp_path / "cache", CONFIG)
    first = cache.get(item)
    cached_file = cache.path_for(item.path)
    assert cached_file.is_file()

    def fail(*_args):
        raise AssertionError("features recomputed despite a cache entry")

    monkeypatch.setattr(features_module, "audio_features", fail)
    np.testing.assert_array_equal(FeatureCache(tmp_path / "cache", CONFIG).get(item), first)
    assert not list(cached_file.parent.glob("*.tmp"))


def test_cache_key_changes_with_file_and_config(tmp_path: Path) -> None:
    path = _tone(tmp_path / "a.wav")
    cache = FeatureCache(tmp_path / "cache", CONFIG)
    before = cache.path_for(path)
    assert FeatureCache(tmp_path / "cache", AnalysisConfig(n_fft=1024, hop=256)).path_for(path) != before
    _tone(path, freq=660.0, seconds=0.35)  # rewritten: new size (and mtime)
    assert cache.path_for(path) != before
    assert cache.get(_item(path)).shape[0] == log_mel(sf.read(path, dtype="float32")[0], CONFIG).shape[0]


def test_resampling_to_the_model_rate(tmp_path: Path) -> None:
    path = _tone(tmp_path / "a.wav", seconds=1.0, sample_rate=22050)
    got = FeatureCache(tmp_path / "cache", CONFIG).get(_item(path))
    audio, _ = sf.read(path, dtype="float32")
    expected = log_mel(soxr.resample(audio, 22050, 44100, quality="HQ"), CONFIG)
    assert got.shape == ((44100 - CONFIG.n_fft) // CONFIG.hop + 1, CONFIG.n_mels)
    np.testing.assert_array_equal(got, expected)
    # the tone stays at 440 Hz: the loudest band is the one whose centre is nearest 440 Hz
    peak_band = int(np.argmax(got.mean(axis=0)))
    assert abs(CONFIG.band_centres_hz[peak_band] - 440.0) < 60.0


@pytest.mark.parametrize("jobs", [1, 2])
def test_corrupt_and_short_files_are_skipped_by_name(tmp_path: Path, jobs: int) -> None:
    root = tmp_path / "data"
    for i in range(3):
        _tone(root / "violin" / f"good{i}.wav")
    _tone(root / "flute" / "good.wav")
    (root / "flute" / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    _tone(root / "flute" / "tiny.wav", seconds=0.01)  # 441 samples < n_fft: no complete frame
    items = scan(root)
    with pytest.warns(SkippedFileWarning) as record:
        clips = load_clips(items, CONFIG, tmp_path / "cache", progress=False, jobs=jobs)
    skipped = {path.name: reason for path, reason in clips.skipped}
    assert set(skipped) == {"broken.wav", "tiny.wav"}
    assert "too short" in skipped["tiny.wav"]
    assert any("broken.wav" in str(w.message) for w in record)
    assert sorted(item.path.name for item in clips.items) == ["good.wav", "good0.wav", "good1.wav", "good2.wav"]
    assert len(clips.features) == len(clips.items) and clips.labels.count("violin") == 3
    for item, features in zip(clips.items, clips.features, strict=True):
        np.testing.assert_array_equal(features, log_mel(sf.read(item.path, dtype="float32")[0], CONFIG))


def test_random_crop_and_padding() -> None:
    rng = np.random.default_rng(0)
    clip = np.arange(10 * 4, dtype=np.float32).reshape(10, 4) + 1.0
    crop = random_crop(clip, 6, rng)
    start = int(crop[0, 0] - 1) // 4
    np.testing.assert_array_equal(crop, clip[start:start + 6])
    padded = random_crop(clip, 13, rng)
    np.testing.assert_array_equal(padded[3:], clip)
    assert not padded[:3].any()
    batch = crop_batch([clip, clip[:3]], 8, rng)
    assert batch.shape == (2, 8, 4) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[1, 5:], clip[:3])
    assert not batch[1, :5].any()
