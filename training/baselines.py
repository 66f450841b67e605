"""The paper's two baselines, so that every Protophone accuracy figure has its baseline beside it.

docs/design.md sections 1 and 5: identification OA/AA is reported beside a *direct CNN classifier* (4 conv blocks of
8/16/32/64 channels, max over time, small MLP) trained on the same split, and clustering OA/AA beside an
*autoencoder + k-means* (conv autoencoder, one latent per clip, k-means, clusters mapped to classes by
the majority of the training clips they hold).  Both work on plain lists of log-mel clips ``(T, n_mels)``
in Protophone units (0 = silence), train on random fixed-length crops and predict on whole clips.

Model files are a plain dict written with :func:`torch.save` and read with ``weights_only=True``: no
pickled Python objects (k-means centroids are stored as a tensor), so loading a file cannot run code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch import nn
from tqdm import tqdm

from engine.atomic import replacing
from engine.config import AnalysisConfig
from engine.mel import LOG_SCALE, power_to_x, x_to_power
from training.chain import RecordingChain
from training.features import crop_batch

Clips = Sequence[np.ndarray]
_CNN_FORMAT = "protophone-baseline-cnn"
_AE_FORMAT = "protophone-baseline-autoencoder-kmeans"
_FORMAT_VERSION = 1


# --- metrics ---------------------------------------------------------------------------------------

def majority_mapping(cluster_ids_train: np.ndarray, labels_train: np.ndarray, n_clusters: int) -> np.ndarray:
    """Map each cluster to the majority class of the *training* clips assigned to it (docs/design.md section 1).

    Test clips are then scored through this map, which is how clustering accuracy is defined; a cluster
    that no training clip fell into gets the overall majority class (the best guess without evidence).
    Ties go to the lowest class index.  Returns ``(n_clusters,)`` int64.
    """
    clusters = np.asarray(cluster_ids_train, dtype=np.int64)
    labels = np.asarray(labels_train, dtype=np.int64)
    if clusters.shape != labels.shape or clusters.ndim != 1 or clusters.size == 0:
        raise ValueError("cluster_ids_train and labels_train must be non-empty 1-D arrays of equal length")
    if clusters.min() < 0 or clusters.max() >= n_clusters or labels.min() < 0:
        raise ValueError(f"cluster ids must lie in 0..{n_clusters - 1} and labels must be non-negative")
    counts = np.zeros((n_clusters, labels.max() + 1), dtype=np.int64)
    np.add.at(counts, (clusters, labels), 1)
    mapping = counts.argmax(axis=1)
    mapping[counts.sum(axis=1) == 0] = np.bincount(labels).argmax()
    return mapping


def accuracy_metrics(predicted: np.ndarray, true: np.ndarray, n_classes: int) -> dict[str, Any]:
    """OA, AA (percent), per-class recall (percent), the confusion matrix (rows = true class) and the number
    of undecided clips.

    OA counts clips, so large classes dominate it; AA averages the per-class recalls, so every class
    weighs the same.  A class absent from ``true`` has no recall: its entry is NaN and AA skips it.  A
    prediction of -1 means no decision (a clip the level gate found silent): it counts as wrong and has no
    column in the confusion matrix.
    """
    predicted = np.asarray(predicted, dtype=np.int64)
    true = np.asarray(true, dtype=np.int64)
    if predicted.shape != true.shape or true.ndim != 1 or true.size == 0:
        raise ValueError("predicted and true must be non-empty 1-D arrays of equal length")
    if min(predicted.min() + 1, true.min()) < 0 or max(predicted.max(), true.max()) >= n_classes:
        raise ValueError(f"class indices must lie in 0..{n_classes - 1} (-1 for an undecided prediction)")
    decided = predicted >= 0
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (true[decided], predicted[decided]), 1)
    support = np.bincount(true, minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, 100.0 * np.diag(confusion) / support, np.nan)
    return {
        "OA": float(100.0 * np.trace(confusion) / true.size),
        "AA": float(np.nanmean(recall)),
        "undecided": int(np.count_nonzero(~decided)),
        "per_class_recall": recall.tolist(),
        "confusion": confusion.tolist(),
    }


# --- data helpers ----------------------------------------------------------------------------------

def _check_clips(clips: Clips, n_mels: int | None = None) -> int:
    """Validate a list of ``(T, n_mels)`` clips and return ``n_mels``."""
    if len(clips) == 0:
        raise ValueError("no clips given")
    n_mels = n_mels or np.shape(clips[0])[-1]
    for i, clip in enumerate(clips):
        shape = np.shape(clip)
        if len(shape) != 2 or shape[1] != n_mels or shape[0] == 0:
            raise ValueError(f"clip {i} has shape {shape}; expected (T >= 1, {n_mels})")
    return int(n_mels)


def _check_labels(labels: Sequence[int] | np.ndarray, n_clips: int, n_classes: int) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (n_clips,):
        raise ValueError(f"expected {n_clips} labels, got shape {labels.shape}")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels must lie in 0..{n_classes - 1} (one per class name)")
    return labels


def _pad(clip: np.ndarray, frames: int) -> np.ndarray:
    """Zero-pad at the start to at least ``frames`` frames, like training crops; zero is silence."""
    clip = np.asarray(clip, dtype=np.float32)
    if len(clip) >= frames:
        return clip
    return np.concatenate([np.zeros((frames - len(clip), clip.shape[1]), np.float32), clip])


def random_gain(x: np.ndarray, max_offset: float, rng: np.random.Generator) -> np.ndarray:
    """Apply one random gain per clip of up to ``±max_offset`` x units (1 unit = 170 dB) to ``(B, T, F)``.

    Sample libraries differ in level (docs/design.md section 3), so a fixed log scale makes loudness a false
    class cue.  The gain multiplies the mel *power*, so silent bands stay at the floor (~0) instead of
    shifting with the offset, which adding the offset to x would do (turning padding into fake noise).
    """
    offsets = rng.uniform(-max_offset, max_offset, size=(len(x), 1, 1))
    return power_to_x(x_to_power(x) * 10.0 ** (LOG_SCALE * offsets)).astype(np.float32)


def _length_batches(clips: Clips, min_frames: int,
                    batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Whole clips batched with others of the same (padded) length, so no clip sees extra padding.

    Yields ``(indices, batch (B, T, F))``; the outputs are exactly those of one clip at a time.
    """
    lengths = np.array([max(len(c), min_frames) for c in clips])
    for length in np.unique(lengths):
        same = np.flatnonzero(lengths == length)
        for start in range(0, len(same), batch_size):
            idx = same[start:start + batch_size]
            yield idx, np.stack([_pad(clips[i], min_frames) for i in idx])


def _fit(model: nn.Module, clips: Clips, loss_fn: Callable[[torch.Tensor, np.ndarray], torch.Tensor], *,
         epochs: int, crop_frames: int, batch_size: int, lr: float, gain_offset: float, seed: int,
         device: str, progress: bool, desc: str, chain: RecordingChain | None = None) -> None:
    """Shared training loop: one random crop per clip per epoch, AdamW, cosine-decayed learning rate.

    ``loss_fn(crops, clip_indices)`` runs the model on a batch of crops ``(B, T, F)`` and returns its
    loss.  The caller seeds torch before building ``model`` (its initial weights are part of the run);
    ``seed`` seeds the crops and augmentation here.  ``chain`` draws a recording chain per crop, as the
    prototype trainer does, so both models learn from the same kind of sound.
    """
    if epochs < 1 or crop_frames < 1 or batch_size < 1:
        raise ValueError("epochs, crop_frames and batch_size must be positive")
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr)
    steps_per_epoch = -(-len(clips) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs * steps_per_epoch)
    model.to(device).train()
    bar = tqdm(range(epochs), desc=desc, disable=not progress, unit="epoch")
    for _ in bar:
        order = rng.permutation(len(clips))
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            x = crop_batch([clips[i] for i in idx], crop_frames, rng)
            if gain_offset > 0:
                x = random_gain(x, gain_offset, rng)
            crops = torch.from_numpy(x)
            if chain is not None:
                crops = chain(crops, generator)
            loss = loss_fn(crops.to(device), idx)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(idx)
        bar.set_postfix(loss=f"{total / len(clips):.4f}")
    model.eval()


# --- saving and loading ----------------------------------------------------------------------------

def _save(path: str | Path, payload: dict[str, Any]) -> None:
    with replacing(path) as temporary:
        torch.save(payload, temporary)


def _load(path: str | Path, fmt: str, device: str) -> dict[str, Any]:
    """Read a model dict with ``weights_only=True`` and check that it is a ``fmt`` file."""
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises many types for corrupt or foreign content
        raise ValueError(f"{path}: not a readable model file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path}: not a {fmt} file (found {found!r})")
    if payload.get("version") != _FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported {fmt} version {payload.get('version')!r}")
    missing = [key for key in ("class_names", "config", "state_dict") if key not in payload]
    if missing:
        raise ValueError(f"{path}: {fmt} file lacks {missing}")
    return payload


def saved_analysis(payload: dict) -> AnalysisConfig:
    """The analysis a baseline file was trained with; files from before it was saved: the 44.1 kHz default."""
    return AnalysisConfig(**payload["analysis"]) if isinstance(payload.get("analysis"), dict) else AnalysisConfig()


def _restore(module: nn.Module, state_dict: dict[str, torch.Tensor], path: str | Path) -> None:
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not fit the stored configuration ({exc})") from exc


# --- direct CNN classifier -------------------------------------------------------------------------

def _conv_block(c_in: int, c_out: int, pool: tuple[int, int], ceil_mode: bool = False) -> nn.Sequential:
    """Conv 3x3 over (time, mel), BatchNorm, ReLU, max-pool: the block of both baselines."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                         nn.MaxPool2d(pool, ceil_mode=ceil_mode))


class CnnNet(nn.Module):
    """The paper's direct classifier: 4 conv blocks (8/16/32/64), max over time, small MLP.

    Every block halves the mel axis; the first two also halve time (neighbouring frames are nearly
    equal, and it cuts compute 4x).  The max over time makes the output independent of clip length,
    so a net trained on crops classifies whole clips.
    """

    CHANNELS = (8, 16, 32, 64)
    TIME_POOLS = (2, 2, 1, 1)

    def __init__(self, n_mels: int, n_classes: int, hidden: int = 64) -> None:
        super().__init__()
        if n_mels % 16:
            raise ValueError(f"n_mels must be a multiple of 16 (4 halvings), got {n_mels}")
        blocks, c_in = [], 1
        for c_out, t_pool in zip(self.CHANNELS, self.TIME_POOLS, strict=True):
            blocks.append(_conv_block(c_in, c_out, (t_pool, 2)))
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Linear(c_in * n_mels // 16, hidden), nn.ReLU(),
                                  nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, n_mels)`` with ``T >= 4`` to class logits ``(B, C)``."""
        h = self.features(x.unsqueeze(1))                   # (B, 64, T/4, n_mels/16)
        h = h.amax(dim=2).flatten(1)                        # max over time
        return self.head(h)


class CnnClassifier:
    """A trained :class:`CnnNet` with its class names; predicts whole clips of any length."""

    def __init__(self, net: CnnNet, class_names: Sequence[str], n_mels: int, crop_frames: int,
                 device: str = "cpu", analysis: AnalysisConfig | None = None) -> None:
        self.net = net.to(device).eval()
        self.analysis = analysis or AnalysisConfig()  # the features it was trained on, which it must be given
        # plain Python types: numpy scalars (e.g. names from an np.array) would not load with weights_only
        self.class_names = [str(name) for name in class_names]
        self.n_mels = int(n_mels)
        self.crop_frames = int(crop_frames)
        self.device = device

    @torch.no_grad()
    def predict_proba(self, clips: Clips, batch_size: int = 256) -> np.ndarray:
        """Class posteriors ``(n, C)``; clips shorter than the training crop are zero-padded to it, as in
        training, and longer ones are seen whole."""
        _check_clips(clips, self.n_mels)
        proba = np.zeros((len(clips), len(self.class_names)), dtype=np.float32)
        for idx, x in _length_batches(clips, self.crop_frames, batch_size):
            logits = self.net(torch.from_numpy(x).to(self.device))
            proba[idx] = torch.softmax(logits, dim=1).cpu().numpy()
        return proba

    def predict(self, clips: Clips) -> np.ndarray:
        """Class index per clip (int64)."""
        return self.predict_proba(clips).argmax(axis=1)

    def save(self, path: str | Path) -> None:
        _save(path, {"format": _CNN_FORMAT, "version": _FORMAT_VERSION, "class_names": self.class_names,
                     "config": {"n_mels": self.n_mels, "crop_frames": self.crop_frames},
                     "analysis": asdict(self.analysis), "state_dict": self.net.state_dict()})

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> CnnClassifier:
        """Load a file written by :meth:`save`; a corrupt or foreign file raises ``ValueError``."""
        payload = _load(path, _CNN_FORMAT, device)
        config, names = payload["config"], payload["class_names"]
        net = CnnNet(config["n_mels"], len(names))
        _restore(net, payload["state_dict"], path)
        return cls(net, names, config["n_mels"], config["crop_frames"], device, saved_analysis(payload))


def train_cnn(train_clips: Clips, train_labels: Sequence[int] | np.ndarray, class_names: Sequence[str], *,
              epochs: int, crop_frames: int = 64, batch_size: int = 64, lr: float = 1e-3,
              gain_offset: float = 0.0, seed: int = 0, device: str = "cpu",
              progress: bool = True, chain: RecordingChain | None = None,
              analysis: AnalysisConfig | None = None) -> CnnClassifier:
    """Train the direct CNN with cross-entropy on random crops for a fixed number of epochs.

    ``gain_offset > 0`` augments each crop with a random level change of up to that many x units
    (see :func:`random_gain`), against the level differences between sample libraries.
    """
    n_mels = _check_clips(train_clips)
    labels = torch.from_numpy(_check_labels(train_labels, len(train_clips), len(class_names)))
    torch.manual_seed(seed)
    net = CnnNet(n_mels, len(class_names))
    crop_frames = max(crop_frames, 4)  # two time poolings of 2
    loss = nn.CrossEntropyLoss()
    _fit(net, train_clips, lambda x, idx: loss(net(x), labels[idx].to(device)), epochs=epochs,
         crop_frames=crop_frames, batch_size=batch_size, lr=lr, gain_offset=gain_offset, seed=seed,
         device=device, progress=progress, desc="CNN baseline", chain=chain)
    return CnnClassifier(net, class_names, n_mels, crop_frames, device, analysis)


# --- autoencoder + k-means -------------------------------------------------------------------------

class ConvAutoencoder(nn.Module):
    """A small conv autoencoder: four blocks halve the mel axis (8/16/32/64 channels; the first two
    also halve time, as in :class:`CnnNet`: 3x cheaper training on CPU), and a 1x1 conv squeezes to
    ``latent_channels``.  The decoder mirrors it with stride-2 transposed convs (learned upsampling,
    a further 2x: a 3x3 conv to one output channel at full resolution was the slowest layer on CPU).

    Time pools round up (``ceil_mode``), so a whole clip of any length encodes without padding; the
    clip's latent is the bottleneck averaged over time.  Training crops are a multiple of 4 frames so
    that the reconstruction has the input's length.
    """

    CHANNELS = (8, 16, 32, 64)
    TIME_POOLS = (2, 2, 1, 1)

    def __init__(self, n_mels: int, latent_channels: int = 8) -> None:
        super().__init__()
        if n_mels % 16:
            raise ValueError(f"n_mels must be a multiple of 16 (4 halvings), got {n_mels}")
        self.latent_channels = int(latent_channels)
        encoder, c_in = [], 1
        for c_out, t_pool in zip(self.CHANNELS, self.TIME_POOLS, strict=True):
            encoder.append(_conv_block(c_in, c_out, (t_pool, 2), ceil_mode=True))
            c_in = c_out
        self.encoder = nn.Sequential(*encoder, nn.Conv2d(c_in, latent_channels, 1))
        decoder: list[nn.Module] = [nn.Conv2d(latent_channels, c_in, 1)]
        for c_out, t_pool in zip(reversed((1, *self.CHANNELS[:-1])), reversed(self.TIME_POOLS), strict=True):
            decoder.append(nn.ConvTranspose2d(c_in, c_out, (t_pool, 2), stride=(t_pool, 2)))
            if c_out > 1:  # no normalisation or ReLU on the output: it is x itself
                decoder += [nn.BatchNorm2d(c_out), nn.ReLU()]
            c_in = c_out
        self.decoder = nn.Sequential(*decoder)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, n_mels)`` to latents ``(B, latent_channels, ceil(T/4), n_mels/16)``."""
        return self.encoder(x.unsqueeze(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of ``x``, same shape."""
        return self.decoder(self.encode(x)).squeeze(1)


@torch.no_grad()
def _clip_latents(net: ConvAutoencoder, clips: Clips, device: str, batch_size: int = 256) -> np.ndarray:
    """The bottleneck of each whole clip averaged over time, flattened: ``(n, latent_channels * F/16)``."""
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for idx, x in _length_batches(clips, 1, batch_size):
        z = net.encode(torch.from_numpy(x).to(device)).mean(dim=2).flatten(1)
        out.append((idx, z.cpu().numpy()))
    latents = np.zeros((len(clips), out[0][1].shape[1]), dtype=np.float32)
    for idx, z in out:
        latents[idx] = z
    return latents


def _nearest(latents: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (squared Euclidean) of each latent, without an (n, K, D) array."""
    return ((centroids**2).sum(axis=1)[None] - 2.0 * latents @ centroids.T).argmin(axis=1)


class AutoencoderKMeans:
    """A trained :class:`ConvAutoencoder`, k-means centroids of its clip latents and the
    cluster-to-class majority map learnt from the training clips."""

    def __init__(self, net: ConvAutoencoder, centroids: np.ndarray, mapping: np.ndarray,
                 class_names: Sequence[str], n_mels: int, device: str = "cpu",
                 analysis: AnalysisConfig | None = None) -> None:
        self.net = net.to(device).eval()
        self.analysis = analysis or AnalysisConfig()  # the features it was trained on, which it must be given
        self.centroids = np.asarray(centroids, dtype=np.float32)
        self.mapping = np.asarray(mapping, dtype=np.int64)
        self.class_names = [str(name) for name in class_names]  # plain str: see CnnClassifier
        self.n_mels = int(n_mels)
        self.device = device

    def latents(self, clips: Clips) -> np.ndarray:
        """One latent per clip ``(n, D)``: the bottleneck averaged over the clip's frames."""
        _check_clips(clips, self.n_mels)
        return _clip_latents(self.net, clips, self.device)

    def cluster(self, clips: Clips) -> np.ndarray:
        """Index of the nearest centroid per clip (what ``KMeans.predict`` returns)."""
        return _nearest(self.latents(clips), self.centroids)

    def predict(self, clips: Clips) -> np.ndarray:
        """Class index per clip through the training-set majority map."""
        return self.mapping[self.cluster(clips)]

    def save(self, path: str | Path) -> None:
        _save(path, {"format": _AE_FORMAT, "version": _FORMAT_VERSION, "class_names": self.class_names,
                     "config": {"n_mels": self.n_mels, "latent_channels": self.net.latent_channels},
                     "state_dict": self.net.state_dict(), "centroids": torch.from_numpy(self.centroids),
                     "mapping": torch.from_numpy(self.mapping), "analysis": asdict(self.analysis)})

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> AutoencoderKMeans:
        """Load a file written by :meth:`save`; a corrupt or foreign file raises ``ValueError``."""
        payload = _load(path, _AE_FORMAT, device)
        config = payload["config"]
        net = ConvAutoencoder(config["n_mels"], config["latent_channels"])
        _restore(net, payload["state_dict"], path)
        return cls(net, payload["centroids"].cpu().numpy(), payload["mapping"].cpu().numpy(),
                   payload["class_names"], config["n_mels"], device, saved_analysis(payload))


def train_autoencoder_kmeans(train_clips: Clips, train_labels: Sequence[int] | np.ndarray,
                             class_names: Sequence[str], *, n_clusters: int | None = None, epochs: int,
                             crop_frames: int = 64, batch_size: int = 64, lr: float = 1e-3,
                             latent_channels: int = 8, gain_offset: float = 0.0, seed: int = 0,
                             device: str = "cpu", progress: bool = True,
                             chain: RecordingChain | None = None,
                             analysis: AnalysisConfig | None = None) -> AutoencoderKMeans:
    """Train the autoencoder (MSE on random crops), k-means its training latents, map clusters to classes.

    Labels are used only for the majority map, as the clustering protocol prescribes (docs/design.md section 1);
    ``n_clusters`` defaults to the number of classes.
    """
    n_mels = _check_clips(train_clips)
    labels = _check_labels(train_labels, len(train_clips), len(class_names))
    n_clusters = n_clusters or len(class_names)
    if not 1 <= n_clusters <= len(train_clips):
        raise ValueError(f"n_clusters must lie in 1..{len(train_clips)} (number of clips), got {n_clusters}")
    torch.manual_seed(seed)
    net = ConvAutoencoder(n_mels, latent_channels)
    crop_frames = -(-crop_frames // 4) * 4  # the decoder restores 4x pooled time exactly
    _fit(net, train_clips, lambda x, idx: nn.functional.mse_loss(net(x), x), epochs=epochs,
         crop_frames=crop_frames, batch_size=batch_size, lr=lr, gain_offset=gain_offset, seed=seed,
         device=device, progress=progress, desc="autoencoder baseline", chain=chain)
    latents = _clip_latents(net, train_clips, device)
    kmeans = KMeans(n_clusters, n_init=10, random_state=seed).fit(latents.astype(np.float64))
    centroids = kmeans.cluster_centers_.astype(np.float32)
    mapping = majority_mapping(_nearest(latents, centroids), labels, n_clusters)
    return AutoencoderKMeans(net, centroids, mapping, class_names, n_mels, device, analysis)
