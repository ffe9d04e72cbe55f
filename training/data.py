"""Training data: crops loaded once, the identity split, and batches mixing crops with self-blends."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import numpy as np
import torch

from pipeline.model import DeepfakeClassifier
from training.augment import Augmenter, pair_degrade
from training.config import TrainConfig
from training.datasets import CropSet, identity_split, load_dataset
from training.errors import TrainingError
from training.sbi import self_blend

__all__ = ["Sampler", "load_all", "manifest_hash", "predict_images", "rng_for", "split_groups", "to_tensor"]


def rng_for(seed: int, *parts: int) -> np.random.Generator:
    return np.random.default_rng([seed, *parts])


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float().div_(255.0)


@torch.inference_mode()
def predict_images(
    model: DeepfakeClassifier, images: np.ndarray, *, device: torch.device, batch_size: int = 64
) -> np.ndarray:
    """P(fake) for uint8 crops (N, S, S, 3) already at the model's input size."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = to_tensor(images[start : start + batch_size], device)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=device.type == "cuda"):
            logits = model(batch)
        out.append(torch.sigmoid(logits.float()).cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0,), dtype=np.float32)


class Sampler:
    """Builds training batches.

    Each slot is, with probability ``sbi_ratio``, a self-blend of a real face (FAKE); else, with
    probability ``real_data_ratio``, a face from the REAL-only folders (REAL); else the next
    dataset crop. Feeding the REAL-only faces as REAL as well as blending them keeps the network
    from learning their recording conditions as a sign of manipulation.

    With ``sbi_pairs`` the self-blend slots come in twos instead: a real face (REAL) and its own
    self-blend (FAKE), degraded identically (``pair_degrade``); a share ``lower_face_ratio`` of
    those blends covers only the mouth and jaw, and a share ``generated_face_ratio`` repaints the
    face the way a generator's up-sampling decoder would.
    """

    def __init__(
        self,
        train: CropSet,
        reals: np.ndarray,
        config: TrainConfig,
        extra_reals: np.ndarray | None = None,
    ) -> None:
        self.train = train
        self.config = config
        self.augment = Augmenter(config.augment_strength)
        self.reals = reals
        self.extra_reals = extra_reals if extra_reals is not None else reals[:0]
        self.real_landmarks: np.ndarray | None = None
        if config.sbi_ratio > 0 and len(self.reals) == 0:
            raise TrainingError("self-blending needs REAL crops, and the training split has none")
        if config.real_data_ratio > 0 and len(self.extra_reals) == 0:
            raise TrainingError("--real-data-ratio needs faces from a --real-data folder; none were found")
        self.steps_per_epoch = max(1, len(train) // config.batch_size)

    def pair_slots(self, count: int) -> int:
        """How many of a batch's first ``count`` slots hold pairs (a real face, then its self-blend)."""
        return 2 * round(count * self.config.sbi_ratio / 2.0) if self.config.sbi_pairs else 0

    def dataset_fakes(self, labels: np.ndarray) -> np.ndarray:
        """Which samples of a batch are the dataset's own FAKE crops (not self-blends)."""
        return (np.arange(len(labels)) >= self.pair_slots(len(labels))) & (np.asarray(labels) == 1.0)

    def _source(self, rng: np.random.Generator) -> int:
        """A row of ``reals`` to self-blend: uniform over all of them, or with ``real_source_share``
        from the --real-data frames (the last ``len(extra_reals)`` rows) and otherwise from the rest."""
        share, extra = self.config.real_source_share, len(self.extra_reals)
        if share is None or extra == 0 or extra == len(self.reals):
            return int(rng.integers(len(self.reals)))
        first = len(self.reals) - extra
        if rng.random() < share:
            return first + int(rng.integers(extra))
        return int(rng.integers(first))

    def use_landmarks(self, landmarks: np.ndarray) -> None:
        """(len(reals), 5 or 68, 2) landmarks for the self-blending sources; NaN rows use the ellipse."""
        self.real_landmarks = landmarks

    def _blend(self, pick: int, rng: np.random.Generator) -> np.ndarray:
        marks = self.real_landmarks[pick] if self.real_landmarks is not None else None
        if marks is not None and not np.isfinite(marks).all():
            marks = None
        region = "face"
        draw = rng.random()
        if draw < self.config.generated_face_ratio:
            region = "generated"
        elif (
            marks is not None
            and marks.shape[0] == 68
            and self.config.lower_face_ratio > 0
            and draw < self.config.generated_face_ratio + self.config.lower_face_ratio
        ):
            region = "lower"
        return self_blend(self.reals[pick], rng=rng, landmarks=marks, region=region).image

    def _pairs_batch(self, epoch: int, step_in_epoch: int) -> tuple[np.ndarray, np.ndarray]:
        config = self.config
        order = rng_for(config.seed, 1, epoch).permutation(len(self.train))
        rows = order[step_in_epoch * config.batch_size : (step_in_epoch + 1) * config.batch_size]
        rng = rng_for(config.seed, 2, epoch, step_in_epoch)
        pair_slots = self.pair_slots(len(rows))
        images = np.empty((len(rows), *self.train.images.shape[1:]), dtype=np.uint8)
        labels = np.empty(len(rows), dtype=np.float32)
        for slot in range(0, pair_slots, 2):
            pick = self._source(rng)
            fake = self._blend(pick, rng)
            images[slot], images[slot + 1] = pair_degrade((self.reals[pick], fake), rng, self.augment)
            labels[slot], labels[slot + 1] = 0.0, 1.0
        for slot in range(pair_slots, len(rows)):
            draw = rng.random()
            if draw < config.real_data_ratio:
                image, label = self.extra_reals[int(rng.integers(len(self.extra_reals)))], 0.0
            else:
                row = rows[slot]
                image, label = self.train.images[row], float(self.train.labels[row])
            images[slot] = self.augment(image, rng)
            labels[slot] = label
        return images, labels

    def batch(self, epoch: int, step_in_epoch: int) -> tuple[np.ndarray, np.ndarray]:
        config = self.config
        if config.sbi_pairs:
            return self._pairs_batch(epoch, step_in_epoch)
        order = rng_for(config.seed, 1, epoch).permutation(len(self.train))
        rows = order[step_in_epoch * config.batch_size : (step_in_epoch + 1) * config.batch_size]
        rng = rng_for(config.seed, 2, epoch, step_in_epoch)
        images = np.empty((len(rows), *self.train.images.shape[1:]), dtype=np.uint8)
        labels = np.empty(len(rows), dtype=np.float32)
        for slot, row in enumerate(rows):
            draw = rng.random() if config.sbi_ratio > 0 or config.real_data_ratio > 0 else 1.0
            if draw < config.sbi_ratio:
                image, label = self._blend(self._source(rng), rng), 1.0
            elif draw < config.sbi_ratio + config.real_data_ratio:
                image, label = self.extra_reals[int(rng.integers(len(self.extra_reals)))], 0.0
            else:
                image, label = self.train.images[row], float(self.train.labels[row])
            images[slot] = self.augment(image, rng)
            labels[slot] = label
        return images, labels


def load_all(
    config: TrainConfig, square: tuple[float, float] | None, say: Callable[[str], None]
) -> tuple[CropSet, np.ndarray, dict[str, str]]:
    if config.face_margin is None:
        raise TrainingError("the face margin must be known before faces are cropped from videos")
    margin = config.face_margin
    manifests: dict[str, str] = {}

    def load(folder: str) -> CropSet:
        crop_set = load_dataset(
            folder,
            size=config.input_size,
            margin=margin,
            square=square,
            cache_dir=config.cache_dir,
            frames_per_video=config.frames_per_video,
            device="cpu",
            progress=say,
        )
        manifests[str(folder)] = crop_set.manifest_sha256
        return crop_set

    sets = [load(folder) for folder in config.data]
    merged = CropSet(
        images=np.concatenate([s.images for s in sets]),
        labels=np.concatenate([s.labels for s in sets]),
        groups=[f"{i}:{g}" for i, s in enumerate(sets) for g in s.groups],
        items=[i for s in sets for i in s.items],
        kind="mixed" if len({s.kind for s in sets}) > 1 else sets[0].kind,
        manifest_sha256="",
        size=config.input_size,
    )
    extra: list[np.ndarray] = []
    for folder in config.real_data:
        crop_set = load(folder)
        # Only the training groups of a REAL folder feed self-blending; its held-out groups stay
        # unseen so that folder's false-positive rate can still be measured honestly.
        train_rows, _ = identity_split(crop_set.groups, val_fraction=config.val_fraction, seed=config.seed)
        extra.append(crop_set.images[train_rows[crop_set.labels[train_rows] == 0]])
    extra_reals = (
        np.concatenate(extra) if extra else np.zeros((0, config.input_size, config.input_size, 3), np.uint8)
    )
    return merged, extra_reals, manifests


def split_groups(crop_set: CropSet) -> list[str]:
    # Groups were prefixed with the folder index for uniqueness; the split hashes the bare name so
    # that ``evaluate`` on one folder recovers exactly the same held-out groups.
    return [g.split(":", 1)[1] for g in crop_set.groups]


def manifest_hash(manifests: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(sorted(manifests.values())).encode()).hexdigest()
