"""What the prototype model is trained to do: losses, prototype initialisation and augmentation.

docs/design.md section 1.  With ``e_k`` the clip-mean reconstruction error of prototype ``k``:

- clustering: ``L = min_k e_k``;
- supervised: ``L = min_{k in class y} e_k + w * CE(softmax(-tau * e), y)``, where a class's probability
  is the summed probability of its prototypes (several prototypes per class are allowed).  The paper's
  ``w`` is 0.01; 0.1 measured better here (training.trainer) and is the default.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from engine.model import PrototypeModel

CE_WEIGHT = 0.1
INIT_NOISE = 0.01


def clip_errors(model: torch.nn.Module, crops: Tensor, scored_frames: int = 0) -> Tensor:
    """``e_k`` per clip over its last ``scored_frames`` frames (all if 0): ``(batch, T, n_mels)`` → ``(batch, K)``."""
    _, frame_errors = model(crops, scored_frames)
    return frame_errors.mean(dim=1)


def class_log_probabilities(errors: Tensor, temperature: Tensor, membership: Tensor) -> Tensor:
    """``log p(class)`` where ``p(prototype) = softmax(-tau e)``; ``membership`` is ``(C, K)`` boolean."""
    log_p = F.log_softmax(-temperature * errors, dim=1)
    masked = log_p.unsqueeze(1).masked_fill(~membership.unsqueeze(0), float("-inf"))
    return torch.logsumexp(masked, dim=2)


def supervised_loss(errors: Tensor, labels: Tensor, temperature: Tensor, membership: Tensor,
                    ce_weight: float = CE_WEIGHT) -> Tensor:
    own = errors.masked_fill(~membership[labels], float("inf")).min(dim=1).values
    cross_entropy = F.nll_loss(class_log_probabilities(errors, temperature, membership), labels)
    return own.mean() + ce_weight * cross_entropy


def clustering_loss(errors: Tensor) -> Tensor:
    return errors.min(dim=1).values.mean()


def kmeans_plus_plus(points: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` seeds drawn k-means++-style (each next seed with probability ∝ squared distance)."""
    chosen = [int(rng.integers(len(points)))]
    distance = ((points - points[chosen[0]]) ** 2).sum(axis=1)
    while len(chosen) < count:
        total = distance.sum()
        index = int(rng.choice(len(points), p=distance / total)) if total > 0 else int(rng.integers(len(points)))
        chosen.append(index)
        distance = np.minimum(distance, ((points - points[index]) ** 2).sum(axis=1))
    return points[chosen]


def initial_prototypes(
    clip_means: np.ndarray, labels: np.ndarray | None, prototype_classes: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Prototypes seeded from time-averaged training clips (+ small noise), per class when supervised."""
    prototypes = np.empty((len(prototype_classes), clip_means.shape[1]), dtype=np.float32)
    if labels is None:
        prototypes[:] = kmeans_plus_plus(clip_means, len(prototype_classes), rng)
    else:
        for label in np.unique(prototype_classes):
            slots = np.flatnonzero(prototype_classes == label)
            prototypes[slots] = kmeans_plus_plus(clip_means[labels == label], len(slots), rng)
    return prototypes + INIT_NOISE * rng.standard_normal(prototypes.shape).astype(np.float32)


def augment(
    model: PrototypeModel, crops: Tensor, generator: torch.Generator, stretch: float, offset: float, noise: float
) -> Tensor:
    """Per-clip frequency stretch ``exp(stretch z)`` (the model's own transposition), level offset, bin noise.

    The offset doubles as level augmentation: sample libraries differ by ~2x in loudness per class, and a
    fixed log scale would otherwise make level a false cue.  ``generator`` is a CPU generator whatever the
    crops' device: the same seed draws the same augmentation on the CPU and on CUDA.
    """
    batch = crops.shape[0]
    params = torch.zeros(batch, 1, 6)
    params[:, 0, 0] = stretch * torch.randn(batch, generator=generator)
    params[:, 0, 1] = offset * torch.randn(batch, generator=generator)
    silent = crops.abs().amax(dim=2, keepdim=True) == 0
    moved = model.transform(crops, params.to(crops.device).expand(-1, crops.shape[1], -1))
    moved = moved + noise * torch.randn(crops.shape, generator=generator).to(crops.device)
    return moved.masked_fill(silent, 0.0)
