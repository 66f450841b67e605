"""The training loop of a prototype model: curriculum, warm-up, reassignment, checkpoints, DDP.

Curriculum (docs/design.md section 1): first only the prototypes learn, with every transformation held at
identity (but for a fitted gain, which no stage holds); each time the epoch loss has not improved for
``patience`` epochs (or, when set, after ``max_stage_epochs``, so that a short CPU budget still reaches every
stage) the next stage is enabled — gain, pitch, shelves, temperature (supervised only) — and finally the
learning rate drops tenfold.  A part that starts learning warms its learning rate up linearly from
``warmup_start`` over ``warmup_batches``.

Measured departure from the reference (orchestra split, 300 test notes, 12 epochs of prototypes only):
the temperature learns from the start (``early_temperature``, its own ``theta_lr``) and the
cross-entropy weight is 0.1 — 61 % against 52 % with weight 0.01; with the temperature only in the last
stage the cross-entropy term stays flat (``tau`` near its initial value) for most of the run.

Every random draw of epoch ``e`` comes from generators seeded with ``(seed, e, rank)``, so a run resumed
from the checkpoint of epoch ``e - 1`` continues exactly as if it had never stopped.

With validation clips (held-out notes of the training libraries, never a test library), every epoch ends
by scoring them with the engine's clip decision, and the weights of the best epoch so far are kept in
``best.pt``: the run's model is the best epoch's, not the last one's.  The training loss does not rank
runs by accuracy (measured: two seeds with final losses 0.066 and 0.059 scored 82.7 and 85.3 % OA).
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from engine.atomic import replacing
from engine.config import AnalysisConfig
from engine.errors import ProtophoneError
from engine.frontend import frame_level_db
from engine.identify import DEFAULT_GATE_DB, ClassMap, SoundingGate
from engine.model import PrototypeModel, check_lookahead
from training.chain import RecordingChain
from training.features import crop_batch
from training.objective import CE_WEIGHT, augment, clip_errors, clustering_loss, initial_prototypes, supervised_loss

STAGES = ("prototypes", "gain", "pitch", "shelves", "temperature", "finetune")
#: Which transformation parameters (engine.transformation.PARAMETER_NAMES order) each stage switches on.
STAGE_ENABLES = {"gain": (1,), "pitch": (0,), "shelves": (2, 3, 4, 5)}
LOG_COLUMNS = ["epoch", "stage", "loss", "seconds", "reassigned", "validation_oa"]


class CheckpointError(ProtophoneError):
    """A checkpoint that cannot be resumed: damaged, or written under other settings."""


#: The smallest value of each counted or non-negative training setting.
SMALLEST_SETTINGS = {"prototypes_per_class": 1, "n_prototypes": 0, "channels": 1, "epochs": 1, "batch_size": 1,
                     "crop_frames": 1, "scored_frames": 1, "batches_per_epoch": 0, "weight_decay": 0, "patience": 0,
                     "max_stage_epochs": 0, "min_improvement": 0, "warmup_batches": 0, "stretch": 0, "offset": 0,
                     "noise": 0, "reassign_share": 0, "ce_weight": 0, "dynamic_range_db": 0, "validate_every": 1,
                     "fitted_tilt_db": 0, "band_channels": 0}
#: The ways a batch can draw its clips (TrainSettings.balance).
BALANCES = ("clips", "sources")
#: Settings that must be above zero: rates.
POSITIVE_SETTINGS = ("lr", "theta_lr", "warmup_start", "finetune_lr_scale")
#: How the learning rate moves through the last stage (TrainSettings.finetune_schedule).
FINETUNE_SCHEDULES = ("constant", "cosine")


@dataclass
class TrainSettings:
    """Hyper-parameters (the ``train`` section of a config file)."""

    mode: str = "supervised"
    prototypes_per_class: int = 2
    n_prototypes: int = 0
    channels: int = 128
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    lookahead: int = 0
    pitch_mode: str = "hz"
    dynamic_range_db: float = 0.0  # 0: no floor (engine.model.PrototypeModel.floored)
    #: Learn each prototype's body (``PrototypeModel.bodies``): a part of its spectrum that stays at fixed
    #: frequencies when the prototype is transposed, as an instrument's resonances do.
    bodies: bool = False
    #: Solve each prototype's gain per frame instead of predicting it (``PrototypeModel.fitted_gain``): the
    #: decision then compares spectral shapes, never levels.
    fitted_gain: bool = False
    #: Solve each prototype's tilt across the bands per frame too, up to this many dB from the lowest band to the
    #: highest, and leave it out of the errors (``PrototypeModel.max_tilt``); 0: off.
    fitted_tilt_db: float = 0.0
    #: Channels of the predictor's convolution along each frame's bands (TransformationPredictor), 0 for none.
    band_channels: int = 0
    epochs: int = 60
    batch_size: int = 64
    crop_frames: int = 48
    scored_frames: int = 16
    batches_per_epoch: int = 0
    #: Score the validation notes (:class:`Validation`) every this many epochs and after the last: each scoring
    #: costs about an epoch of training, so a long run scores less often.
    validate_every: int = 2
    lr: float = 1e-3
    weight_decay: float = 1e-6
    patience: int = 2
    max_stage_epochs: int = 0
    min_improvement: float = 1e-3
    warmup_batches: int = 200
    warmup_start: float = 1e-3
    stretch: float = 0.15
    offset: float = 0.05
    noise: float = 0.01
    reassign_share: float = 0.02
    theta_lr: float = 0.01
    #: The last stage's learning rates as a share of ``lr`` and ``theta_lr`` at its start.
    finetune_lr_scale: float = 0.1
    #: ``constant``: the last stage keeps that rate to the end; ``cosine``: it falls batch by batch along half a
    #: cosine to zero at the last epoch, so a long run settles instead of ending on its noisiest steps.
    finetune_schedule: str = "constant"
    ce_weight: float = CE_WEIGHT
    early_temperature: bool = True
    #: How a batch draws its clips: ``clips`` uniformly (a class or a library with more notes weighs more), or
    #: ``sources`` every (class, library) pair equally often (each class equally, each of its libraries
    #: equally within it), so a library that lacks a class does not lower that class's share.
    balance: str = "clips"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("supervised", "clustering"):
            raise ValueError(f"train.mode must be 'supervised' or 'clustering', got {self.mode!r}")
        if self.finetune_schedule not in FINETUNE_SCHEDULES:
            raise ValueError(f"train.finetune_schedule must be one of {', '.join(FINETUNE_SCHEDULES)}, "
                             f"got {self.finetune_schedule!r}")
        if self.balance not in BALANCES:
            raise ValueError(f"train.balance must be one of {', '.join(BALANCES)}, got {self.balance!r}")
        for name, least in SMALLEST_SETTINGS.items():
            if getattr(self, name) < least:
                raise ValueError(f"train.{name} must be at least {least}, got {getattr(self, name)}")
        for name in POSITIVE_SETTINGS:
            if not getattr(self, name) > 0:
                raise ValueError(f"train.{name} must be above 0, got {getattr(self, name)}")
        self.dilations = tuple(int(d) for d in self.dilations)
        if not self.dilations or min(self.dilations) < 1:
            raise ValueError(f"train.dilations must list one dilation (1 or more) per block, "
                             f"got {list(self.dilations)}")
        check_lookahead(self.lookahead, self.dilations, name="train.lookahead")

    def stages(self) -> tuple[str, ...]:
        """The curriculum; the temperature has no stage of its own when it learns from the start."""
        learns_temperature_late = self.mode == "supervised" and not self.early_temperature
        return tuple(s for s in STAGES if s != "temperature" or learns_temperature_late)


@dataclass(frozen=True)
class Validation:
    """Held-out clips of the training libraries that choose the epoch to keep, and how they are decided."""

    clips: list[np.ndarray]
    labels: np.ndarray
    analysis: AnalysisConfig
    gate_db: float = DEFAULT_GATE_DB
    #: The first 0.56 s (44.1 kHz / 512) of each clip (every ``TrainSettings.validate_every`` epochs): the
    #: model's batch forward renders every prototype at every frame, about 1 s per 64 such clips on 2 cores.
    max_frames: int = 48


@dataclass
class TrainState:
    """Everything besides weights and optimiser that a resumed run needs."""

    epoch: int = 0
    stage: int = 0
    best_loss: float = float("inf")
    stale_epochs: int = 0
    stage_epochs: int = 0
    warmup: dict[str, int] = field(default_factory=lambda: {"predictor": -1, "theta": -1})
    best_validation_oa: float = -1.0
    best_epoch: int = 0
    #: The epoch (counted from 0) the last stage began, -1 before it: where its cosine schedule starts.
    finetune_start: int = -1


def validation_accuracy(model: PrototypeModel, class_map: ClassMap, validation: Validation,
                        batch_size: int = 64) -> float:
    """OA (%) of the engine's clip decision (lowest mean class error over the sounding frames) on the
    first ``validation.max_frames`` frames of each clip.

    Clips are zero-padded at the start to a common length and run in batches: zero is silence, which the
    causal predictor sees as a stream's reset state and the gate leaves out, so padding changes nothing.
    """
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(validation.clips), batch_size):
        clips = [clip[: validation.max_frames] for clip in validation.clips[start:start + batch_size]]
        length = max(len(clip) for clip in clips)
        batch = np.zeros((len(clips), length, clips[0].shape[1]), dtype=np.float32)
        for row, clip in enumerate(clips):
            batch[row, length - len(clip):] = clip
        with torch.no_grad():
            _, errors = model(torch.from_numpy(batch).to(model.prototypes.device))
        errors = errors.cpu()
        gate = SoundingGate(validation.analysis.frame_rate, validation.gate_db, shape=(len(clips),))
        active = gate(frame_level_db(batch, validation.analysis))
        for row, label in enumerate(validation.labels[start:start + batch_size]):
            if active[row].any():
                class_errors = class_map.class_errors(errors[row].numpy().astype(np.float64)[active[row]])
                correct += int(np.argmin(class_errors.mean(axis=0)) == label)
    model.train(was_training)
    return 100.0 * correct / max(1, len(validation.clips))


def draw_weights(labels: np.ndarray, libraries: list[str] | None, balance: str) -> np.ndarray | None:
    """Each clip's probability of being drawn into a batch under ``balance`` (see TrainSettings.balance);
    None for uniform draws."""
    if balance == "clips":
        return None
    if libraries is None or len(libraries) != len(labels):
        raise ValueError("balance 'sources' needs the library of every training clip")
    pairs = [(int(label), library) for label, library in zip(labels, libraries, strict=True)]
    counts = Counter(pairs)
    libraries_of = Counter(label for label, _ in counts)
    classes = len(libraries_of)
    return np.array([1.0 / (classes * libraries_of[label] * counts[label, library]) for label, library in pairs])


def prototype_classes_for(settings: TrainSettings, n_classes: int) -> np.ndarray:
    """Class of each prototype: ``prototypes_per_class`` each (supervised); clustering gives all class 0..K."""
    if settings.mode == "supervised":
        return np.repeat(np.arange(n_classes), settings.prototypes_per_class)
    return np.arange(settings.n_prototypes or 2 * n_classes)


class Trainer:
    """Trains one :class:`PrototypeModel` on clips of log-mel frames; one instance per process."""

    def __init__(
        self,
        settings: TrainSettings,
        band_centres_hz: np.ndarray,
        clips: list[np.ndarray],
        labels: np.ndarray,
        n_classes: int,
        out_dir: Path,
        chain: RecordingChain | None = None,
        validation: Validation | None = None,
        libraries: list[str] | None = None,
        device: str = "cpu",
    ) -> None:
        self.settings = settings
        #: Where the model trains (``cpu`` or ``cuda``).  Batches are drawn and passed through the recording
        #: chain on the CPU with the same generators either way, then moved: the same seed draws the same data.
        self.device = torch.device(device)
        self.chain = chain
        self.validation = validation
        self.clips = clips
        self.labels = np.asarray(labels)
        self._draw_weights = draw_weights(self.labels, libraries, settings.balance)
        self.out_dir = Path(out_dir)
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        self.world = dist.get_world_size() if dist.is_initialized() else 1
        self.prototype_classes = prototype_classes_for(settings, n_classes)
        torch.manual_seed(settings.seed)  # before the model: the predictor's initial weights are part of the run
        self.model = PrototypeModel(
            len(self.prototype_classes), band_centres_hz, settings.lookahead, settings.pitch_mode,
            settings.channels, dilations=settings.dilations, dynamic_range_db=settings.dynamic_range_db,
            bodies=settings.bodies, fitted_gain=settings.fitted_gain,
            fitted_tilt_db=settings.fitted_tilt_db, band_channels=settings.band_channels,
        ).to(self.device)
        membership = np.zeros((n_classes, len(self.prototype_classes)), dtype=bool)
        if settings.mode == "supervised":
            membership[self.prototype_classes, np.arange(len(self.prototype_classes))] = True
        self.membership = torch.from_numpy(membership).to(self.device)
        if validation is not None and settings.mode != "supervised":
            raise ValueError("validation chooses epochs by class decisions: it needs train.mode 'supervised'")
        self.class_map = None if validation is None else ClassMap(
            tuple(str(c) for c in range(n_classes)), tuple(self.prototype_classes.tolist()))
        self.optimizer = torch.optim.AdamW([
            {"name": "prototypes", "params": [self.model.prototypes] + ([self.model.bodies] if settings.bodies else []),
             "weight_decay": 0.0},
            {"name": "predictor", "params": list(self.model.predictor.parameters()),
             "weight_decay": settings.weight_decay},
            {"name": "theta", "params": [self.model.theta], "weight_decay": 0.0},
        ], lr=settings.lr)
        self.state = TrainState()
        if settings.mode == "supervised" and settings.early_temperature:
            self.state.warmup["theta"] = 0
        self.forward_model: torch.nn.Module = self.model

    # ------------------------------------------------------------------------------------------ set-up
    def initialise(self) -> None:
        """k-means++ prototypes from time-averaged clips, identical on every rank."""
        rng = np.random.default_rng([self.settings.seed, 0xC1])
        means = np.stack([self._as_compared(clip).mean(axis=0) for clip in self.clips])
        labels = self.labels if self.settings.mode == "supervised" else None
        prototypes = initial_prototypes(means, labels, self.prototype_classes, rng)
        with torch.no_grad():
            self.model.prototypes.copy_(torch.from_numpy(prototypes))
        self._apply_stage()

    def _as_compared(self, clip: np.ndarray) -> np.ndarray:
        """A clip in the units the model compares prototypes with: floored, when the model floors (else the
        very same array: ``floored`` returns its input)."""
        with torch.no_grad():
            return self.model.floored(torch.from_numpy(clip).to(self.device)).cpu().numpy()

    def wrap_for_distributed(self) -> None:
        if self.world > 1:
            unused = self.settings.mode == "clustering"  # theta takes no part in the clustering loss
            self.forward_model = DistributedDataParallel(self.model, find_unused_parameters=unused)

    # ------------------------------------------------------------------------------------- checkpoints
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    @property
    def best_path(self) -> Path:
        return self.out_dir / "best.pt"

    def save_checkpoint(self) -> None:
        """Atomic: a kill during the write leaves the previous checkpoint intact."""
        if self.rank:
            return
        payload = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "state": asdict(self.state),
            "settings": asdict(self.settings),
        }
        self._save_atomically(payload, self.checkpoint_path)

    def _save_atomically(self, payload: dict, path: Path) -> None:
        """Write ``payload`` whole or not at all: a full disk leaves the previous file and a one-line error."""
        try:
            with replacing(path) as temporary:
                torch.save(payload, temporary)
        except (OSError, RuntimeError) as error:  # torch reports a short write as RuntimeError
            reason = error.strerror if isinstance(error, OSError) else "only part of it could be written"
            raise CheckpointError(f"cannot write {path} ({reason}; is the disk full?); free some space, then "
                                  "continue with --resume") from None

    def keep_best(self) -> None:
        """Load the weights of the best validated epoch (a no-op without validation)."""
        if self.validation is not None and self.best_path.exists():
            self.model.load_state_dict(torch.load(self.best_path, map_location="cpu", weights_only=True))

    def load_checkpoint(self) -> None:
        """Continue from the checkpoint: only one written by a run with these very settings."""
        start_over = f"train without --resume into a new output folder, or delete {self.out_dir}"
        try:
            payload = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
            saved = payload["settings"]
        except Exception as error:  # noqa: BLE001 - torch raises many types for a damaged file
            raise CheckpointError(f"the checkpoint {self.checkpoint_path} cannot be read "
                                  f"({error.__class__.__name__}); {start_over}") from None
        defaults = asdict(TrainSettings())
        # A setting newer than the checkpoint ran at its default, whatever the checkpoint does not name.
        current, saved = (json.loads(json.dumps(defaults | settings)) for settings in (asdict(self.settings), saved))
        changed = sorted(key for key in current.keys() | saved.keys() if current.get(key) != saved.get(key))
        if changed:
            raise CheckpointError(f"the config changed since {self.checkpoint_path} was written (train."
                                  f"{', train.'.join(changed)}); undo the change, or {start_over}")
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.state = TrainState(**payload["state"])
        self._apply_stage()

    # ---------------------------------------------------------------------------------------- training
    def fit(self, progress: bool = True, on_epoch: Callable[[dict], None] | None = None) -> None:
        """Train from the current state up to ``settings.epochs``, checkpointing after every epoch."""
        while self.state.epoch < self.settings.epochs:
            started = time.perf_counter()
            stage = self.stage_name
            loss, wins = self._run_epoch(progress)
            reassigned = self._reassign(wins) if self.settings.mode == "clustering" else 0
            self._advance_curriculum(loss)
            self.state.epoch += 1
            validation_oa = self._validate()
            self.save_checkpoint()
            row = {"epoch": self.state.epoch, "stage": stage, "loss": loss,
                   "seconds": time.perf_counter() - started, "reassigned": reassigned,
                   "validation_oa": validation_oa}
            self._log(row)
            if on_epoch is not None:
                on_epoch(row)

    @property
    def stage_name(self) -> str:
        return self.settings.stages()[self.state.stage]

    def _run_epoch(self, progress: bool) -> tuple[float, np.ndarray]:
        settings = self.settings
        rng = np.random.default_rng([settings.seed, self.state.epoch, self.rank])
        torch_seed = int(np.random.SeedSequence([settings.seed, self.state.epoch, self.rank]).generate_state(1)[0])
        generator = torch.Generator().manual_seed(torch_seed)
        n_batches = settings.batches_per_epoch or max(1, len(self.clips) // (settings.batch_size * self.world))
        total, wins = 0.0, np.zeros(len(self.prototype_classes))
        self.model.train()
        bar = tqdm(range(n_batches), desc=f"epoch {self.state.epoch + 1}/{settings.epochs} [{self.stage_name}]",
                   disable=not progress or self.rank != 0, leave=False)
        for batch in bar:
            chosen = self._draw(rng)
            crops = torch.from_numpy(crop_batch([self.clips[i] for i in chosen], settings.crop_frames, rng))
            with torch.no_grad():
                if self.chain is not None:
                    crops = self.chain(crops, generator)
                crops = augment(self.model, crops.to(self.device), generator, settings.stretch, settings.offset,
                                settings.noise)
            errors = clip_errors(self.forward_model, crops, settings.scored_frames)
            if settings.mode == "supervised":
                labels = torch.from_numpy(self.labels[chosen]).to(self.device)
                loss = supervised_loss(errors, labels, self.model.temperature(), self.membership,
                                       settings.ce_weight)
            else:
                loss = clustering_loss(errors)
            self._set_learning_rates(batch / n_batches)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += loss.item()
            wins += np.bincount(errors.argmin(dim=1).cpu().numpy(), minlength=len(wins))
            bar.set_postfix(loss=f"{loss.item():.5f}")
        return self._all_mean(total / n_batches), self._all_sum(wins)

    def _draw(self, rng: np.random.Generator) -> np.ndarray:
        """A batch's clip indices (uniform draws as before ``balance`` existed, so old runs reproduce)."""
        if self._draw_weights is None:
            return rng.integers(len(self.clips), size=self.settings.batch_size)
        return rng.choice(len(self.clips), size=self.settings.batch_size, p=self._draw_weights)

    def _all_mean(self, value: float) -> float:
        if self.world == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor) / self.world

    def _all_sum(self, values: np.ndarray) -> np.ndarray:
        if self.world == 1:
            return values
        tensor = torch.from_numpy(values)
        dist.all_reduce(tensor)
        return tensor.numpy()

    # -------------------------------------------------------------------------------------- validation
    def _validate(self) -> float | str:
        """Clip-decision OA (%) on the validation clips; keeps the best epoch's weights.  '' without them."""
        validation = self.validation
        last = self.state.epoch == self.settings.epochs
        if validation is None or (self.state.epoch % self.settings.validate_every and not last):
            return ""
        oa = torch.zeros(1, dtype=torch.float64)
        if self.rank == 0:
            assert self.class_map is not None
            oa[0] = validation_accuracy(self.model, self.class_map, validation)
        if self.world > 1:
            dist.broadcast(oa, 0)  # every rank keeps the same state, so a resume is the same on each
        if float(oa) > self.state.best_validation_oa:
            self.state.best_validation_oa, self.state.best_epoch = float(oa), self.state.epoch
            if self.rank == 0:
                self._save_atomically(self.model.state_dict(), self.best_path)
        return float(oa)

    # -------------------------------------------------------------------------------------- curriculum
    def _advance_curriculum(self, loss: float) -> None:
        """Next stage after ``patience`` epochs without improvement, or after ``max_stage_epochs`` (if set)."""
        state, settings = self.state, self.settings
        state.stage_epochs += 1
        if loss < state.best_loss * (1.0 - settings.min_improvement):
            state.best_loss, state.stale_epochs = loss, 0
        else:
            state.stale_epochs += 1
        stalled = state.stale_epochs >= settings.patience
        timed_out = 0 < settings.max_stage_epochs <= state.stage_epochs
        if (stalled or timed_out) and state.stage + 1 < len(settings.stages()):
            state.stage += 1
            state.stale_epochs = state.stage_epochs = 0
            state.best_loss = float("inf")
            if self.stage_name in STAGE_ENABLES:
                state.warmup["predictor"] = 0
            if self.stage_name == "temperature":
                state.warmup["theta"] = 0
            if self.stage_name == "finetune":
                state.finetune_start = state.epoch + 1  # the epoch after this one, as fit counts it
            self._apply_stage()

    def _apply_stage(self) -> None:
        """Switch on the transformations of every stage reached so far."""
        reached = self.settings.stages()[: self.state.stage + 1]
        enabled = torch.zeros(6)
        for stage in reached:
            for index in STAGE_ENABLES.get(stage, ()):
                enabled[index] = 1.0
        self.model.enabled.copy_(enabled)

    def _finetune_scale(self, epoch_fraction: float) -> float:
        """The last stage's share of the base rates ``epoch_fraction`` of the way through the current epoch."""
        settings, state = self.settings, self.state
        if settings.finetune_schedule == "constant":
            return settings.finetune_lr_scale
        length = max(1, settings.epochs - state.finetune_start)
        progress = min(1.0, (state.epoch - state.finetune_start + epoch_fraction) / length)
        return settings.finetune_lr_scale * 0.5 * (1.0 + math.cos(math.pi * progress))

    def _set_learning_rates(self, epoch_fraction: float) -> None:
        settings = self.settings
        scale = self._finetune_scale(epoch_fraction) if self.stage_name == "finetune" else 1.0
        for group in self.optimizer.param_groups:
            step = self.state.warmup.get(group["name"], None)
            if step is None:
                factor = 1.0
            elif step < 0:
                factor = 0.0
            else:
                ramp = min(1.0, step / max(1, settings.warmup_batches))
                factor = settings.warmup_start + (1.0 - settings.warmup_start) * ramp
                self.state.warmup[group["name"]] = step + 1
            base = settings.theta_lr if group["name"] == "theta" else settings.lr
            group["lr"] = base * scale * factor

    # ------------------------------------------------------------------------------------ reassignment
    def _reassign(self, wins: np.ndarray) -> int:
        """Replace prototypes that won < ``reassign_share`` of their fair share by jittered popular ones."""
        fair = wins.sum() / len(wins)
        starved = np.flatnonzero(wins < self.settings.reassign_share * fair)
        if not len(starved) or wins.sum() == 0:
            return 0
        rng = np.random.default_rng([self.settings.seed, self.state.epoch, 0x5EED])
        sources = rng.choice(len(wins), size=len(starved), p=wins / wins.sum())
        head = self.model.predictor.head
        width = head.weight.shape[0] // len(wins)
        with torch.no_grad():
            for target, source in zip(starved, sources, strict=True):
                self.model.prototypes[target] = self.model.prototypes[source] + 0.01 * torch.randn(
                    self.model.n_mels, generator=torch.Generator().manual_seed(int(target))).to(self.device)
                self.model.bodies[target] = self.model.bodies[source]
                rows_t = slice(target * width, (target + 1) * width)
                rows_s = slice(source * width, (source + 1) * width)
                head.weight[rows_t] = head.weight[rows_s]
                head.bias[rows_t] = head.bias[rows_s]
                for parameter, rows in ((self.model.prototypes, (target, source)), (head.weight, (rows_t, rows_s)),
                                        (head.bias, (rows_t, rows_s))):
                    for moment in self.optimizer.state.get(parameter, {}).values():
                        if torch.is_tensor(moment) and moment.dim():
                            moment[rows[0]] = moment[rows[1]]
        return len(starved)

    # ---------------------------------------------------------------------------------------- logging
    def _log(self, row: dict) -> None:
        if self.rank:
            return
        path = self.out_dir / "log.csv"
        new = not path.exists()
        with path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})

    def truncate_log(self) -> None:
        """On resume: drop log rows past the checkpoint's epoch (written after it, then lost in a kill)."""
        path = self.out_dir / "log.csv"
        if self.rank or not path.exists():
            return
        with path.open(newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if int(r["epoch"]) <= self.state.epoch]
        with replacing(path) as temporary, temporary.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
