"""Training of the face classifier: data mixing, self-blending, the loop, resumable runs, the checkpoint.

A run lives in a directory (``runs/<name>/`` by default):

- ``log.jsonl``: one JSON line per epoch (loss, learning rate, validation metrics, speed);
- ``last.safetensors`` + ``last.json``: weights and position (epoch, step, best score) written
  every ``save_every`` steps and at each epoch's end: ``--resume`` continues from there;
- ``last.optim.pt``: the optimiser and schedule state. It is written by this module only and
  read back with ``torch.load(weights_only=True)``, which refuses anything but tensors and plain
  containers; user-supplied files are never unpickled;
- ``best.safetensors``: the weights with the best validation AUC so far.

Randomness is derived from ``(seed, epoch, step)``, not carried as generator state, so a resumed
run draws the same samples and augmentations as an uninterrupted one.

The final checkpoint holds the best weights, a threshold calibrated on the validation split
(the one maximising balanced accuracy, see ``pipeline.metrics.calibrate_threshold``) and the
validation metrics at that threshold.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from pipeline.augment import Augmenter
from pipeline.datasets import DEFAULT_CACHE_DIR, CropSet, identity_split, load_dataset
from pipeline.errors import PipelineError
from pipeline.metrics import binary_metrics, calibrate_threshold, inconclusive_band
from pipeline.model import (
    DeepfakeClassifier,
    ModelConfig,
    default_normalisation,
    file_sha256,
    load_checkpoint,
    resolve_device,
    save_checkpoint,
)
from pipeline.sbi import self_blend

__all__ = [
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "apply_temperature",
    "fit_temperature",
    "predict_images",
    "train",
]


# Precision of a FAKE verdict and of a REAL verdict, on validation, outside the inconclusive band.
BAND_TARGET = 0.9
DEFAULT_CAVEAT = (
    "Trained on DFDC face swaps and self-blended pseudo-fakes; other manipulation families "
    "(lip-sync, full-face synthesis, heavy compression) are often missed."
)


class TrainingError(PipelineError):
    code = "training_failed"
    exit_code = 12


@dataclass
class TrainConfig:
    data: list[str]  # crop or video folders with labels (FAKE and REAL)
    out: str = "models/deepfakestream-b0.safetensors"
    run_dir: str = "runs/train"
    real_data: list[str] = field(default_factory=list)  # extra REAL-only folders: self-blending sources
    architecture: str = "tf_efficientnet_lite0"
    # "imagenet": the encoder starts from Google's ImageNet weights (``pipeline.pretrained``);
    # "none": random initialisation. Ignored with ``init_from`` and on resume.
    pretrained: str = "imagenet"
    input_size: int = 160
    use_srm: bool = True
    # None: measure it on the first crop folder (see ``measure_margin``) so that inference crops
    # are framed like the training crops.
    face_margin: float | None = 0.3
    # None: box framing with ``face_margin``. "auto": square framing measured on the first crop
    # folder; "SCALE:SHIFT" (e.g. "1.083:0.088"): square framing given (``crop_face``).
    square_crop: str | None = None
    epochs: int = 6
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.1
    label_smoothing: float = 0.05
    sbi_ratio: float = 0.2  # fraction of training samples replaced by self-blended pseudo-fakes
    # Blend through a hull drawn from each real face's MTCNN landmarks (found once, cached)
    # instead of an ellipse placed from the crop geometry.
    sbi_landmarks: bool = True
    # Train on self-blends as the only fakes: the dataset's FAKE crops are left out of training
    # (validation keeps them), as in the paper.
    sbi_only: bool = False
    augment_strength: float = 1.0
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"
    max_train_items: int | None = None  # a seeded subset, for short ablation runs
    max_steps: int | None = None  # stop after this many optimiser steps (tests, smoke runs)
    save_every: int = 200
    cache_dir: str | None = str(DEFAULT_CACHE_DIR)
    frames_per_video: int = 8
    version: str = "1.0.0"
    progress: bool = True
    # The one-line warning shown with every verdict this model gives (stored in the checkpoint).
    caveat: str = DEFAULT_CAVEAT
    # Start from this checkpoint's weights (same architecture and SRM setting) with a
    # fresh optimiser and schedule: fine-tuning, or continuing a run whose state is gone.
    init_from: str | None = None

    def validate(self) -> None:
        if not self.data:
            raise TrainingError("at least one --data folder is needed", code="invalid_arguments")
        if not 0.0 <= self.sbi_ratio < 1.0:
            raise TrainingError("--sbi-ratio must be in [0, 1)", code="invalid_arguments")
        if self.epochs < 1 or self.batch_size < 2:
            raise TrainingError("--epochs must be ≥ 1 and --batch-size ≥ 2", code="invalid_arguments")
        if not 32 <= self.input_size <= 1024:
            raise TrainingError("--input-size must be in 32–1024", code="invalid_arguments")
        if self.square_crop not in (None, "auto"):
            parse_square(self.square_crop)
        if self.pretrained not in ("imagenet", "none"):
            raise TrainingError("--pretrained must be imagenet or none", code="invalid_arguments")
        if self.sbi_only and self.sbi_ratio <= 0:
            raise TrainingError("--sbi-only needs a positive --sbi-ratio", code="invalid_arguments")


def parse_square(text: str) -> tuple[float, float]:
    """``"SCALE"`` or ``"SCALE:SHIFT"`` → (scale, shift) for ``crop_face``'s square framing."""
    parts = text.split(":")
    try:
        scale = float(parts[0])
        shift = float(parts[1]) if len(parts) == 2 else 0.0
    except (ValueError, IndexError):
        scale, shift = float("nan"), 0.0
    if len(parts) > 2 or not 0.5 <= scale <= 4.0 or not -0.5 <= shift <= 0.5:
        raise TrainingError(
            f"--square-crop {text!r}: expected 'auto' or SCALE[:SHIFT] with SCALE in [0.5, 4] "
            "and SHIFT in [-0.5, 0.5]",
            code="invalid_arguments",
        )
    return scale, shift


def measure_margin(folder: str | Path, *, samples: int = 300, seed: int = 0) -> dict[str, Any]:
    """Run the pipeline's face detector on ``samples`` crops of a crop folder (seeded choice, full
    resolution, each padded into a larger canvas) and return the ``face_margin`` that makes
    ``crop_face`` frame a detected face like those crops, with the measurements behind it."""
    import cv2

    from pipeline.datasets import dataset_kind, measure_face_margin, read_entries, resolve_file
    from pipeline.faces import FaceDetector

    root = Path(folder)
    entries = read_entries(root)
    if dataset_kind(entries) != "crops":
        raise TrainingError(f"the face margin is measured on a crop folder; {root} holds videos")
    chosen = _rng(seed, 5).choice(len(entries), min(samples, len(entries)), replace=False)
    images = []
    for index in sorted(chosen):
        image = cv2.imread(str(resolve_file(root, entries[index].file)), cv2.IMREAD_COLOR)
        if image is not None:
            images.append(np.ascontiguousarray(image[:, :, ::-1]))
    sizes = {image.shape for image in images}
    if len(sizes) != 1:
        side = max(max(image.shape[:2]) for image in images)
        images = [cv2.resize(image, (side, side), interpolation=cv2.INTER_CUBIC) for image in images]
    # A slightly lower detection threshold than analysis uses: the canvas border is artificial.
    measurement = measure_face_margin(np.stack(images), FaceDetector(device="cpu", det_threshold=0.9))
    measurement["folder"] = str(root)
    return measurement


@dataclass
class TrainResult:
    checkpoint: Path
    metrics: dict[str, Any]
    threshold: float
    epochs_done: int
    steps: int


def _rng(seed: int, *parts: int) -> np.random.Generator:
    return np.random.default_rng([seed, *parts])


def _to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
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
        batch = _to_tensor(images[start : start + batch_size], device)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=device.type == "cuda"):
            logits = model(batch)
        out.append(torch.sigmoid(logits.float()).cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0,), dtype=np.float32)


class _Sampler:
    """Builds training batches: dataset crops or, with probability ``sbi_ratio``, a self-blend of a real."""

    def __init__(self, train: CropSet, reals: np.ndarray, config: TrainConfig) -> None:
        self.train = train
        self.config = config
        self.augment = Augmenter(config.augment_strength)
        self.reals = reals
        self.real_landmarks: np.ndarray | None = None
        if config.sbi_ratio > 0 and len(self.reals) == 0:
            raise TrainingError("self-blending needs REAL crops, and the training split has none")
        self.steps_per_epoch = max(1, len(train) // config.batch_size)

    def use_landmarks(self, landmarks: np.ndarray) -> None:
        """(len(reals), 5, 2) landmarks for the self-blending sources; NaN rows use the ellipse."""
        self.real_landmarks = landmarks

    def batch(self, epoch: int, step_in_epoch: int) -> tuple[np.ndarray, np.ndarray]:
        config = self.config
        order = _rng(config.seed, 1, epoch).permutation(len(self.train))
        rows = order[step_in_epoch * config.batch_size : (step_in_epoch + 1) * config.batch_size]
        rng = _rng(config.seed, 2, epoch, step_in_epoch)
        images = np.empty((len(rows), *self.train.images.shape[1:]), dtype=np.uint8)
        labels = np.empty(len(rows), dtype=np.float32)
        for slot, row in enumerate(rows):
            if config.sbi_ratio > 0 and rng.random() < config.sbi_ratio:
                pick = int(rng.integers(len(self.reals)))
                marks = self.real_landmarks[pick] if self.real_landmarks is not None else None
                if marks is not None and not np.isfinite(marks).all():
                    marks = None
                image, label = self_blend(self.reals[pick], rng=rng, landmarks=marks).image, 1.0
            else:
                image, label = self.train.images[row], float(self.train.labels[row])
            images[slot] = self.augment(image, rng)
            labels[slot] = label
        return images, labels


def _load_all(
    config: TrainConfig, square: tuple[float, float] | None, say: Callable[[str], None]
) -> tuple[CropSet, np.ndarray, dict[str, str]]:
    if config.face_margin is None:
        raise TrainingError("the face margin must be known before faces are cropped from videos")
    sets: list[CropSet] = []
    manifests: dict[str, str] = {}
    for folder in config.data:
        crop_set = load_dataset(
            folder,
            size=config.input_size,
            margin=config.face_margin,
            square=square,
            cache_dir=config.cache_dir,
            frames_per_video=config.frames_per_video,
            device="cpu",
            progress=say,
        )
        manifests[str(folder)] = crop_set.manifest_sha256
        sets.append(crop_set)
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
        crop_set = load_dataset(
            folder,
            size=config.input_size,
            margin=config.face_margin,
            square=square,
            cache_dir=config.cache_dir,
            frames_per_video=config.frames_per_video,
            device="cpu",
            progress=say,
        )
        manifests[str(folder)] = crop_set.manifest_sha256
        # Only the training groups of a REAL folder feed self-blending; its held-out groups stay
        # unseen so that folder's false-positive rate can still be measured honestly.
        train_rows, _ = identity_split(crop_set.groups, val_fraction=config.val_fraction, seed=config.seed)
        extra.append(crop_set.images[train_rows[crop_set.labels[train_rows] == 0]])
    extra_reals = (
        np.concatenate(extra) if extra else np.zeros((0, config.input_size, config.input_size, 3), np.uint8)
    )
    return merged, extra_reals, manifests


def _split_groups(crop_set: CropSet) -> list[str]:
    # Groups were prefixed with the folder index for uniqueness; the split hashes the bare name so
    # that ``evaluate`` on one folder recovers exactly the same held-out groups.
    return [g.split(":", 1)[1] for g in crop_set.groups]


def _manifest_hash(manifests: dict[str, str]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(sorted(manifests.values())).encode()).hexdigest()


def _save_state(
    run_dir: Path,
    model: DeepfakeClassifier,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: dict[str, Any],
) -> None:
    save_checkpoint(model, run_dir / "last.safetensors")
    optim_tmp = run_dir / "last.optim.pt.tmp"
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, optim_tmp)
    optim_tmp.replace(run_dir / "last.optim.pt")
    json_tmp = run_dir / "last.json.tmp"
    json_tmp.write_text(json.dumps(state, indent=1), encoding="utf-8")
    json_tmp.replace(run_dir / "last.json")


def _load_state(
    run_dir: Path,
    model: DeepfakeClassifier,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    config: TrainConfig,
) -> dict[str, Any]:
    from safetensors.torch import load_file

    try:
        state = json.loads((run_dir / "last.json").read_text(encoding="utf-8"))
        weights = load_file(str(run_dir / "last.safetensors"), device="cpu")
        optim = torch.load(run_dir / "last.optim.pt", map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise TrainingError(
            f"nothing to resume in {run_dir}: {exc.filename} is missing", code="no_resume"
        ) from exc
    saved = json.loads(state.get("config_key") or "{}")
    current = json.loads(_resume_key(config))
    # The epoch budget may change on resume (a run cut short or extended); nothing else may.
    saved_epochs = int(saved.pop("epochs", config.epochs))
    current.pop("epochs")
    if saved != current:
        raise TrainingError(
            f"{run_dir} was started with different settings ({state.get('config_key')}); "
            "resume with the same ones (only --epochs may change) or use another --run-dir",
            code="resume_mismatch",
        )
    model.load_state_dict(weights, strict=True)
    optimizer.load_state_dict(optim["optimizer"])
    if saved_epochs == config.epochs:
        scheduler.load_state_dict(optim["scheduler"])
    else:
        total = int(getattr(scheduler, "total_steps", 0))
        if state["global_step"] > total or state["epoch"] > config.epochs:
            raise TrainingError(
                f"{run_dir} is already past {config.epochs} epochs", code="resume_mismatch"
            )
        # The new one-cycle schedule is replayed up to the current step, so the learning rate
        # continues from where the new budget puts it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(state["global_step"]):
                scheduler.step()
        state.setdefault("schedule_changes", []).append(
            {"at_step": state["global_step"], "epochs_from": saved_epochs, "epochs_to": config.epochs}
        )
        state["config_key"] = _resume_key(config)
    return dict(state)


def _resume_key(config: TrainConfig) -> str:
    keys = (
        "data",
        "real_data",
        "architecture",
        "input_size",
        "use_srm",
        "epochs",
        "batch_size",
        "lr",
        "sbi_ratio",
        "seed",
        "val_fraction",
        "max_train_items",
        "augment_strength",
        "label_smoothing",
        "init_from",
        "square_crop",
        "pretrained",
        "sbi_landmarks",
        "sbi_only",
    )
    doc = asdict(config)
    return json.dumps({k: doc[k] for k in keys}, sort_keys=True)


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    say: Callable[[str], None] | None = None,
    argv: Sequence[str] | None = None,
) -> TrainResult:
    """Train, validate every epoch, and write the calibrated checkpoint to ``config.out``."""
    config.validate()
    say = say or (lambda message: print(message, file=sys.stderr, flush=True))
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    margin_measurement: dict[str, Any] | None = None
    if config.face_margin is None or config.square_crop == "auto":
        margin_measurement = measure_margin(config.data[0], seed=config.seed)
        say(f"face framing measured: {json.dumps(margin_measurement)}")
    if config.face_margin is None:
        assert margin_measurement is not None
        config.face_margin = float(margin_measurement["face_margin"])
    if config.square_crop == "auto":
        assert margin_measurement is not None
        config.square_crop = f"{margin_measurement['square_scale']}:{margin_measurement['square_shift_y']}"
    square = parse_square(config.square_crop) if config.square_crop else None
    data, extra_reals, manifests = _load_all(config, square, say)
    train_rows, val_rows = identity_split(
        _split_groups(data), val_fraction=config.val_fraction, seed=config.seed
    )
    if config.max_train_items is not None and config.max_train_items < len(train_rows):
        train_rows = np.sort(_rng(config.seed, 3).choice(train_rows, config.max_train_items, replace=False))
    train_set, val_set = data.subset(train_rows), data.subset(val_rows)
    # Every REAL training face (and the REAL-only folders' training faces) can be blended.
    reals = np.concatenate([train_set.images[train_set.labels == 0], extra_reals])
    if config.sbi_only:
        train_set = train_set.subset(np.flatnonzero(train_set.labels == 0))
    if len(train_set) < config.batch_size:
        raise TrainingError(f"only {len(train_set)} training crops: fewer than one batch")
    if len(set(val_set.labels.tolist())) < 2:
        raise TrainingError("the validation split needs both FAKE and REAL crops to calibrate a threshold")
    say(
        f"train {len(train_set)} crops ({int(train_set.labels.sum())} fake), "
        f"validation {len(val_set)} ({int(val_set.labels.sum())} fake), "
        f"extra reals for self-blending {len(extra_reals)}, device {device}"
    )

    mean, std = default_normalisation(config.architecture)
    model_config = ModelConfig(
        architecture=config.architecture,
        input_size=config.input_size,
        use_srm=config.use_srm,
        mean=mean,
        std=std,
        face_margin=config.face_margin,
        face_square_scale=square[0] if square else None,
        face_shift_y=square[1] if square else 0.0,
    )
    model = DeepfakeClassifier(model_config)
    init_info: dict[str, Any] | None = None
    if config.init_from and not resume:
        init_info = _init_weights(model, config.init_from)
        say(f"weights from {init_info['path']} ({init_info['name']} {init_info['version']})")
    elif config.pretrained == "imagenet" and not resume:
        from pipeline.pretrained import init_encoder_from_imagenet

        init_info = init_encoder_from_imagenet(model.encoder, config.architecture)
        say(f"encoder from ImageNet weights {init_info['file']}")
    model.to(device)
    sampler = _Sampler(train_set, reals, config)
    if config.sbi_ratio > 0 and config.sbi_landmarks:
        from pipeline.landmarks import cached_crop_landmarks

        sampler.use_landmarks(
            cached_crop_landmarks(
                reals,
                cache_dir=config.cache_dir,
                detector_factory=lambda: _landmark_detector(config.input_size),
                say=say,
            )
        )
    total_steps = sampler.steps_per_epoch * config.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=config.lr,
        total_steps=total_steps,
        pct_start=config.warmup_fraction,
        anneal_strategy="cos",
        div_factor=25.0,
        final_div_factor=1e3,
    )
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    loss_fn = nn.BCEWithLogitsLoss()

    state: dict[str, Any] = {
        "epoch": 0,
        "step_in_epoch": 0,
        "global_step": 0,
        "best_auc": -1.0,
        "config_key": _resume_key(config),
    }
    if init_info:
        state["init_from"] = init_info
    if resume:
        state = _load_state(run_dir, model, optimizer, scheduler, config)
        say(f"resumed at epoch {state['epoch'] + 1}, step {state['step_in_epoch']}")

    log_path = run_dir / "log.jsonl"
    stopped_early = False
    while state["epoch"] < config.epochs and not stopped_early:
        epoch = state["epoch"]
        model.train()
        started, seen, loss_sum, loss_count = time.monotonic(), 0, 0.0, 0
        bar = tqdm(
            total=sampler.steps_per_epoch,
            initial=state["step_in_epoch"],
            disable=not config.progress,
            desc=f"epoch {epoch + 1}/{config.epochs}",
            file=sys.stderr,
            dynamic_ncols=True,
        )
        # The next batch (augmentation, self-blending) is built in a thread while this one trains.
        prefetch = ThreadPoolExecutor(max_workers=1)
        pending = prefetch.submit(sampler.batch, epoch, state["step_in_epoch"])
        while state["step_in_epoch"] < sampler.steps_per_epoch:
            images, labels = pending.result()
            if state["step_in_epoch"] + 1 < sampler.steps_per_epoch:
                pending = prefetch.submit(sampler.batch, epoch, state["step_in_epoch"] + 1)
            # Dropout draws from torch's generator: reseed it per step too, so resuming is exact.
            torch.manual_seed(int(_rng(config.seed, 4, epoch, state["step_in_epoch"]).integers(2**62)))
            inputs = _to_tensor(images, device)
            targets = torch.from_numpy(labels).to(device)
            targets = targets * (1.0 - config.label_smoothing) + 0.5 * config.label_smoothing
            with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=device.type == "cuda"):
                logits = model(inputs)
            loss = loss_fn(logits.float(), targets)
            if not torch.isfinite(loss):
                raise TrainingError(f"the loss became {loss.item()} at step {state['global_step']}")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            state["step_in_epoch"] += 1
            state["global_step"] += 1
            seen += len(labels)
            loss_sum += float(loss.item()) * len(labels)
            loss_count += len(labels)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / loss_count:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
            if config.max_steps is not None and state["global_step"] >= config.max_steps:
                stopped_early = True
                break
            if config.save_every and state["global_step"] % config.save_every == 0:
                _save_state(run_dir, model, optimizer, scheduler, state)
        prefetch.shutdown(wait=True, cancel_futures=True)
        bar.close()
        elapsed = time.monotonic() - started
        val_probs = predict_images(model, val_set.images, device=device)
        val_metrics = binary_metrics(val_set.labels, val_probs, threshold=0.5)
        record = {
            "epoch": epoch + 1,
            "steps": state["global_step"],
            "train_loss": loss_sum / max(loss_count, 1),
            "lr": scheduler.get_last_lr()[0],
            "images_per_s": seen / elapsed if elapsed > 0 else None,
            "val_auc": val_metrics["auc"],
            "val_log_loss": val_metrics["log_loss"],
            "val_accuracy_at_0.5": val_metrics["accuracy"],
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")
        say(json.dumps(record))
        auc = val_metrics["auc"] if val_metrics["auc"] is not None else -1.0
        if auc > state["best_auc"]:
            state["best_auc"] = auc
            state["best_epoch"] = epoch + 1
            save_checkpoint(model, run_dir / "best.safetensors")
        if not stopped_early:
            state["epoch"] += 1
            state["step_in_epoch"] = 0
        _save_state(run_dir, model, optimizer, scheduler, state)

    # The shipped weights are the best epoch's; calibrate on its validation scores.
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(run_dir / "best.safetensors"), device="cpu"), strict=True)
    model.to(device)
    val_probs = predict_images(model, val_set.images, device=device)
    uncalibrated_log_loss = binary_metrics(val_set.labels, val_probs, threshold=0.5)["log_loss"]
    temperature = fit_temperature(val_set.labels, val_probs)
    val_probs = apply_temperature(val_probs, temperature)
    threshold = calibrate_threshold(val_set.labels, val_probs)
    band = inconclusive_band(val_set.labels, val_probs, threshold=threshold, target=BAND_TARGET)
    metrics = binary_metrics(val_set.labels, val_probs, threshold=threshold)
    metrics = {k: v for k, v in metrics.items() if k != "confusion_matrix"} | {
        "confusion_matrix": metrics["confusion_matrix"],
        "split": "val",
        "best_epoch": state.get("best_epoch"),
        "temperature": temperature,
        "log_loss_before_temperature": uncalibrated_log_loss,
        "inconclusive_band": list(band),
        "inconclusive_fraction": float(np.mean((val_probs >= band[0]) & (val_probs < band[1]))),
    }
    final = ModelConfig(
        architecture=config.architecture,
        input_size=config.input_size,
        use_srm=config.use_srm,
        mean=mean,
        std=std,
        temperature=temperature,
        inconclusive_band=band,
        caveat=config.caveat,
        face_margin=config.face_margin,
        face_square_scale=square[0] if square else None,
        face_shift_y=square[1] if square else 0.0,
        threshold=threshold,
        trained=True,
        version=config.version,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        metrics=_round(metrics),
        training={
            "data": manifests,
            "manifest_sha256": _manifest_hash(manifests),
            "split": {
                "rule": "identity group, seeded sha256 of the group name",
                "val_fraction": config.val_fraction,
                "seed": config.seed,
                "train_crops": len(train_set),
                "val_crops": len(val_set),
            },
            "epochs": state["epoch"],
            "steps": state["global_step"],
            "batch_size": config.batch_size,
            "lr": config.lr,
            "weight_decay": config.weight_decay,
            "label_smoothing": config.label_smoothing,
            "sbi_ratio": config.sbi_ratio,
            "sbi_landmarks": config.sbi_landmarks,
            "sbi_only": config.sbi_only,
            "pretrained": config.pretrained if not config.init_from else None,
            "temperature_rule": "minimises validation log loss of sigmoid(logit / T)",
            "band_rule": f"outside the band each verdict is right ≥ {BAND_TARGET:.0%} of the time "
            "on validation",
            "augment_strength": config.augment_strength,
            "threshold_rule": "maximises balanced accuracy (Youden's J) on the validation split",
            "face_margin_measurement": margin_measurement,
            "schedule_changes": state.get("schedule_changes", []),
            "init_from": init_info or state.get("init_from"),
            "device": str(device),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "command": " ".join(argv) if argv else None,
            "config": {k: v for k, v in asdict(config).items() if k not in ("progress", "cache_dir")},
        },
    )
    model.config = final
    out = save_checkpoint(model, config.out, final)
    say(
        f"wrote {out} (threshold {threshold:.4f}, val AUC {metrics['auc']}, "
        f"log loss {metrics['log_loss']:.4f})"
    )
    return TrainResult(
        checkpoint=out,
        metrics=metrics,
        threshold=threshold,
        epochs_done=state["epoch"],
        steps=state["global_step"],
    )


def _landmark_detector(input_size: int) -> Any:
    from pipeline.faces import FaceDetector

    # Whole canvases at full size, and no pyramid scales for faces far smaller than the crop.
    return FaceDetector(device="cpu", det_threshold=0.9, min_face_size=0.3 * input_size, detect_long_side=0)


def _logits(probs: np.ndarray) -> np.ndarray:
    clipped = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(clipped) - np.log1p(-clipped)


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """P(fake) recomputed as sigmoid(logit / temperature)."""
    return (1.0 / (1.0 + np.exp(-_logits(probs) / temperature))).astype(np.float32)


def fit_temperature(labels: np.ndarray, probs: np.ndarray) -> float:
    """The temperature T in [0.05, 20] that minimises the log loss of sigmoid(logit / T)."""
    from scipy.optimize import minimize_scalar

    logits = _logits(probs)
    targets = np.asarray(labels, dtype=np.float64)

    def loss(log_t: float) -> float:
        z = logits / math.exp(log_t)
        # log(1 + e^z) − y·z, computed without overflow
        return float(np.mean(np.logaddexp(0.0, z) - targets * z))

    found = minimize_scalar(loss, bounds=(math.log(0.05), math.log(20.0)), method="bounded")
    return round(math.exp(float(found.x)), 4)


def _init_weights(model: DeepfakeClassifier, path: str) -> dict[str, Any]:
    """Copy a checkpoint's weights into ``model``; it must be the same network."""
    source = load_checkpoint(path)
    mine, theirs = model.config, source.config
    # The input size may differ: the network is convolutional (training on larger crops from
    # weights learnt on smaller ones is progressive resizing).
    for field_name in ("architecture", "use_srm"):
        if getattr(mine, field_name) != getattr(theirs, field_name):
            raise TrainingError(
                f"--init-from {path}: {field_name} is {getattr(theirs, field_name)!r}, "
                f"this run trains {getattr(mine, field_name)!r}",
                code="invalid_arguments",
            )
    model.load_state_dict(source.state_dict(), strict=True)
    return {
        "path": Path(path).name,
        "sha256": file_sha256(path),
        "name": theirs.name,
        "version": theirs.version,
        "input_size": theirs.input_size,
    }


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    return value
