"""Log-mel features of dataset items, cached on disk, and fixed-length crops of them for batches.

Features come from the engine's own batch front end (:func:`engine.frontend.log_mel`), so a model is
trained on exactly the frames the streaming engine will feed it.  Computing them is the slow part of a
training run's start, so each file's features are cached as ``.npy`` under a key that changes when the
file or the analysis settings change.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soxr
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from engine.atomic import replacing
from engine.audiofile import read_audio
from engine.config import AnalysisConfig
from engine.errors import AudioFileError
from engine.frontend import log_mel
from training.layouts import Item

# Bump when the way features are computed changes, so old cache entries are not reused.
FEATURE_VERSION = 1
RESAMPLE_QUALITY = "HQ"


class SkippedFileWarning(UserWarning):
    """An audio file that was left out of a dataset (unreadable, corrupt or too short)."""


def audio_features(path: Path, config: AnalysisConfig) -> np.ndarray:
    """Log-mel frames ``(T, n_mels)`` float32 of a file: mono, resampled to the model rate (soxr HQ).

    Raises :class:`engine.errors.AudioFileError` when the file cannot be read or holds NaN/infinite samples.
    """
    audio, sample_rate = read_audio(path)
    broken = int(np.count_nonzero(~np.isfinite(audio)))
    if broken:
        raise AudioFileError(f"{path} holds {broken} NaN or infinite samples (a corrupt file)")
    if sample_rate != config.sample_rate:
        audio = soxr.resample(audio, sample_rate, config.sample_rate, quality=RESAMPLE_QUALITY)
    return log_mel(audio, config)


class FeatureCache:
    """Per-file log-mel features under ``cache_dir``, keyed by (absolute path, size, mtime, config).

    Editing or replacing a file, or changing any analysis setting, gives a new key, so a stale entry is
    never read.  Entries are written atomically (temporary file + rename), so parallel workers and an
    interrupted run never leave a half-written file behind.
    """

    def __init__(self, cache_dir: str | Path, config: AnalysisConfig) -> None:
        self.cache_dir = Path(cache_dir)
        self.config = config

    def key(self, path: Path) -> str:
        stat = path.resolve().stat()
        settings = sorted(asdict(self.config).items())
        text = repr((FEATURE_VERSION, str(path.resolve()), stat.st_size, stat.st_mtime_ns, settings))
        return hashlib.sha256(text.encode()).hexdigest()

    def path_for(self, path: Path) -> Path:
        """Where the features of ``path`` are (or would be) cached."""
        key = self.key(path)
        return self.cache_dir / key[:2] / f"{key}.npy"

    def get(self, item: Item) -> np.ndarray:
        """Features of ``item`` from the cache, computed and stored on a miss."""
        try:
            cached = self.path_for(item.path)
        except OSError as exc:
            raise AudioFileError(f"audio file not found: {item.path} ({exc.strerror or exc})") from None
        if cached.is_file():
            try:
                features = np.load(cached)
                if np.isfinite(features).all():  # entries of NaN audio cached by older versions are recomputed
                    return features
            except (OSError, ValueError, EOFError):  # a damaged entry: recompute and overwrite it
                pass
        features = audio_features(item.path, self.config)
        self._store(cached, features)
        return features

    @staticmethod
    def _store(target: Path, features: np.ndarray) -> None:
        with replacing(target) as temporary, temporary.open("wb") as f:
            np.save(f, features)


@dataclass
class ClipSet:
    """Features of the items that loaded, aligned with ``items``; ``skipped`` lists (file, reason)."""

    features: list[np.ndarray] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return [item.label for item in self.items]


def _load_one(cache: FeatureCache, item: Item, min_frames: int) -> tuple[np.ndarray | None, str]:
    """(features, "") or (None, reason): one file's outcome, never an exception."""
    try:
        features = cache.get(item)
    except AudioFileError as exc:
        return None, str(exc)
    if len(features) < min_frames:
        return None, (f"too short: {len(features)} frame(s) < {min_frames} "
                      f"(needs at least {cache.config.n_fft} samples at {cache.config.sample_rate} Hz)")
    return features, ""


# Set in the parent before the pool forks, so workers get the cache settings without pickling per task.
_WORKER_ARGS: tuple[FeatureCache, int] | None = None


def _one_blas_thread() -> None:
    threadpool_limits(1)


def _load_in_worker(item: Item) -> tuple[np.ndarray | None, str]:
    assert _WORKER_ARGS is not None
    cache, min_frames = _WORKER_ARGS
    return _load_one(cache, item, min_frames)


def _outcomes(items: list[Item], cache: FeatureCache, min_frames: int, jobs: int
              ) -> Iterator[tuple[np.ndarray | None, str]]:
    global _WORKER_ARGS  # noqa: PLW0603 - set before the pool forks, so workers inherit it without pickling
    if jobs <= 1 or len(items) < 2:
        yield from (_load_one(cache, item, min_frames) for item in items)
        return
    _WORKER_ARGS = (cache, min_frames)
    # fork: workers inherit the imported engine instead of importing it again (seconds each).
    with multiprocessing.get_context("fork").Pool(jobs, initializer=_one_blas_thread) as pool:
        yield from pool.imap(_load_in_worker, items, chunksize=16)


def load_clips(items: Iterable[Item], config: AnalysisConfig, cache_dir: str | Path, progress: bool = True,
               jobs: int = 1, min_frames: int = 1) -> ClipSet:
    """Features of every item, in order; files that cannot be used are skipped, never fatal.

    A skipped file (unreadable, corrupt, or shorter than ``min_frames`` frames) is named in a
    :class:`SkippedFileWarning` and listed in ``ClipSet.skipped`` with its reason.  ``jobs > 1`` computes
    features in that many processes.

    BLAS is held to one thread per process meanwhile: the mel projection of one clip is a small matrix
    product, and OpenBLAS's threads made it about 20x slower (measured, 2 cores) than one thread.
    """
    items = list(items)
    cache = FeatureCache(cache_dir, config)
    clips = ClipSet()
    with threadpool_limits(1):
        outcomes: Iterable = _outcomes(items, cache, min_frames, jobs)
        if progress:
            outcomes = tqdm(outcomes, total=len(items), desc="features", unit="file")
        for item, (features, reason) in zip(items, outcomes, strict=True):
            if features is None:
                warnings.warn(f"skipped {item.path}: {reason}", SkippedFileWarning, stacklevel=2)
                clips.skipped.append((item.path, reason))
            else:
                clips.features.append(features)
                clips.items.append(item)
    return clips


def random_crop(features: np.ndarray, n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``(n_frames, n_mels)`` window of a clip; a shorter clip is zero-padded at the start.

    Zero is silence in these units (``x = (log10(power) + 10) / 17`` is 0 at power 1e-10), so padding
    adds silent frames, not a level step.  Padding goes before the clip because training scores the last
    frames of a crop and uses the first ones as the causal predictor's context: a note preceded by
    silence is exactly what a stream sees.
    """
    n_available = len(features)
    if n_available >= n_frames:
        start = int(rng.integers(0, n_available - n_frames + 1))
        return features[start:start + n_frames]
    padded = np.zeros((n_frames, features.shape[1]), dtype=features.dtype)
    padded[n_frames - n_available:] = features
    return padded


def crop_batch(clips: list[np.ndarray], n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Stack one random crop of each clip: ``(B, n_frames, n_mels)`` float32."""
    if not clips:
        raise ValueError("crop_batch needs at least one clip")
    return np.stack([random_crop(clip, n_frames, rng) for clip in clips]).astype(np.float32, copy=False)
