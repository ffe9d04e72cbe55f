"""Training of the face classifier: the run, its epochs and steps, resumable at any step."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from pipeline.model import (
    DeepfakeClassifier,
    ModelConfig,
    default_normalisation,
    load_checkpoint,
    resolve_device,
    save_checkpoint,
)
from training.config import TrainConfig
from training.data import (
    Sampler,
    load_all,
    predict_images,
    rng_for,
    split_groups,
    to_tensor,
)
from training.datasets import identity_split
from training.errors import TrainingError
from training.export import Prepared, TrainResult, finalize
from training.framing import measure_margin, parse_square
from training.schedule import make_scheduler, save_snapshot
from training.scores import binary_metrics
from training.state import init_weights, load_state, read_run_state, resume_key, save_state

__all__ = [
    "build_sampler",
    "distillation_loss",
    "export_best",
    "load_teacher",
    "model_name",
    "prepare",
    "train",
]


def prepare(config: TrainConfig, say: Callable[[str], None]) -> Prepared:
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
    data, extra_reals, manifests = load_all(config, square, say)
    train_rows, val_rows = identity_split(
        split_groups(data), val_fraction=config.val_fraction, seed=config.seed
    )
    if config.max_train_items is not None and config.max_train_items < len(train_rows):
        train_rows = np.sort(
            rng_for(config.seed, 3).choice(train_rows, config.max_train_items, replace=False)
        )
    train_set, val_set = data.subset(train_rows), data.subset(val_rows)
    # Every REAL training face (and the REAL-only folders' training faces) can be blended.
    reals = np.concatenate([train_set.images[train_set.labels == 0], extra_reals])
    if config.sbi_only:
        train_set = train_set.subset(np.flatnonzero(train_set.labels == 0))
    if len(train_set) < config.batch_size:
        raise TrainingError(f"only {len(train_set)} training crops: fewer than one batch")
    if len(set(val_set.labels.tolist())) < 2:
        raise TrainingError("the validation split needs both FAKE and REAL crops to calibrate a threshold")
    mean, std = default_normalisation(config.architecture)
    model_config = ModelConfig(
        name=model_name(config.architecture),
        architecture=config.architecture,
        input_size=config.input_size,
        use_srm=config.use_srm,
        mean=mean,
        std=std,
        face_margin=config.face_margin,
        face_square_scale=square[0] if square else None,
        face_shift_y=square[1] if square else 0.0,
    )
    return Prepared(
        square, margin_measurement, train_set, val_set, reals, len(extra_reals), manifests, model_config
    )


def build_sampler(config: TrainConfig, prepared: Prepared, say: Callable[[str], None]) -> Sampler:
    """The run's batches: its crops, self-blends from its real faces (with their cached landmarks)."""
    extra_reals = prepared.reals[len(prepared.reals) - prepared.extra_reals :]
    sampler = Sampler(prepared.train_set, prepared.reals, config, extra_reals=extra_reals)
    if config.sbi_ratio > 0 and config.sbi_landmarks:
        from training.landmarks import cached_crop_landmarks

        five = cached_crop_landmarks(
            prepared.reals,
            cache_dir=config.cache_dir,
            detector_factory=lambda: _landmark_detector(config.input_size),
            say=say,
        )
        if config.sbi_landmark_points == 68:
            from training.landmarks68 import cached_crop_landmarks68

            sampler.use_landmarks(
                cached_crop_landmarks68(prepared.reals, five, cache_dir=config.cache_dir, say=say)
            )
        else:
            sampler.use_landmarks(five)
    return sampler


def model_name(architecture: str) -> str:
    """``tf_efficientnet_lite0`` → ``deepfakestream-lite0``; ``efficientnet_b0`` → ``deepfakestream-b0``."""
    short = architecture.removeprefix("tf_").removeprefix("efficientnet_")
    return f"deepfakestream-{short}"


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    say: Callable[[str], None] | None = None,
    argv: Sequence[str] | None = None,
) -> TrainResult:
    """Train, validate every epoch, and write the calibrated checkpoint to ``config.out``.

    A run lives in ``config.run_dir``: ``log.jsonl`` (one line per epoch), ``last.*`` (weights,
    optimiser and position, saved every ``save_every`` steps and at each epoch's end: ``resume``
    continues from there; ``training.state``) and ``best.safetensors`` (the best validation
    AUC so far). Randomness derives from ``(seed, epoch, step)``, not from generator state, so a
    resumed run draws the same samples and augmentations as an uninterrupted one.
    """
    config.validate()
    say = say or (lambda message: print(message, file=sys.stderr, flush=True))
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    prepared = prepare(config, say)
    train_set, val_set = prepared.train_set, prepared.val_set
    say(
        f"train {len(train_set)} crops ({int(train_set.labels.sum())} fake), "
        f"validation {len(val_set)} ({int(val_set.labels.sum())} fake), "
        f"extra reals for self-blending {prepared.extra_reals}, device {device}"
    )
    model = DeepfakeClassifier(prepared.model_config)
    init_info: dict[str, Any] | None = None
    if config.init_from and not resume:
        init_info = init_weights(model, config.init_from)
        say(f"weights from {init_info['path']} ({init_info['name']} {init_info['version']})")
    elif config.pretrained == "imagenet" and not resume:
        from training.pretrained import init_encoder_from_imagenet

        init_info = init_encoder_from_imagenet(model.encoder, config.architecture)
        say(f"encoder from ImageNet weights {init_info['file']}")
    model.to(device)
    sampler = build_sampler(config, prepared, say)
    frozen = freeze_stages(model, config.frozen_stages)
    if frozen:
        say(f"encoder stages 1–{config.frozen_stages} frozen ({frozen} weights)")
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=config.lr, weight_decay=config.weight_decay
    )
    scheduler = make_scheduler(
        optimizer,
        schedule=config.schedule,
        peak_lr=config.lr,
        total_steps=sampler.steps_per_epoch * config.epochs,
        warmup_fraction=config.warmup_fraction,
    )
    state: dict[str, Any] = {
        "epoch": 0,
        "step_in_epoch": 0,
        "global_step": 0,
        "best_auc": -1.0,
        "config_key": resume_key(config),
    }
    if init_info:
        state["init_from"] = init_info
    if resume:
        state = load_state(
            run_dir, model, optimizer, scheduler, config, total_steps=sampler.steps_per_epoch * config.epochs
        )
        say(f"resumed at epoch {state['epoch'] + 1}, step {state['step_in_epoch']}")
    loop = _Loop(config, model, optimizer, scheduler, sampler, device, run_dir)
    if config.distill_from:
        loop.teacher = load_teacher(config.distill_from, prepared.model_config.input_size, device)
        say(f"held to the scores of {config.distill_from} (weight {config.distill_weight})")
    stopped_early = False
    while state["epoch"] < config.epochs and not stopped_early:
        epoch = state["epoch"]
        record, stopped_early = loop.epoch(state)
        val_probs = predict_images(model, val_set.images, device=device)
        val_metrics = binary_metrics(val_set.labels, val_probs, threshold=0.5)
        record |= {
            "val_auc": val_metrics["auc"],
            "val_log_loss": val_metrics["log_loss"],
            "val_accuracy_at_0.5": val_metrics["accuracy"],
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        with open(run_dir / "log.jsonl", "a", encoding="utf-8") as log:
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
        save_state(run_dir, model, optimizer, scheduler, state)
    return finalize(model, prepared, config, state, device=device, init_info=init_info, argv=argv, say=say)


def export_best(
    config: TrainConfig, *, say: Callable[[str], None] | None = None, argv: Sequence[str] | None = None
) -> TrainResult:
    """Write the calibrated checkpoint of the best epoch so far of the run in ``config.run_dir``,
    without training and without touching the run's state (it may still be training)."""
    config.validate()
    say = say or (lambda message: print(message, file=sys.stderr, flush=True))
    run_dir = Path(config.run_dir)
    state = read_run_state(run_dir, config)
    if not (run_dir / "best.safetensors").is_file():
        raise TrainingError(f"{run_dir} has no finished epoch yet", code="no_resume")
    device = resolve_device(config.device)
    prepared = prepare(config, say)
    model = DeepfakeClassifier(prepared.model_config).to(device)
    say(f"best epoch so far: {state.get('best_epoch')} of {state['epoch']} finished")
    return finalize(model, prepared, config, state, device=device, init_info=None, argv=argv, say=say)


def encoder_stages(model: DeepfakeClassifier, count: int) -> list[nn.Module]:
    stages = getattr(model.encoder, "blocks", None)
    if not isinstance(stages, nn.Sequential):
        raise TrainingError(f"{model.config.architecture} has no stages to freeze", code="invalid_arguments")
    if count > len(stages):
        raise TrainingError(
            f"--frozen-stages {count}: {model.config.architecture} has {len(stages)} stages",
            code="invalid_arguments",
        )
    return [stages[index] for index in range(count)]


def freeze_stages(model: DeepfakeClassifier, count: int) -> int:
    """Stop the gradient of the encoder's first ``count`` stages; returns how many weights that is."""
    if count == 0:
        return 0
    frozen = 0
    for stage in encoder_stages(model, count):
        for parameter in stage.parameters():
            parameter.requires_grad_(False)
            frozen += parameter.numel()
    return frozen


def keep_frozen_stages_still(model: DeepfakeClassifier, count: int) -> None:
    """Frozen stages also keep their batch-norm statistics: they run in eval mode while training."""
    if count:
        for stage in encoder_stages(model, count):
            stage.eval()


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of ``logits`` against the teacher's probabilities, over the ``kept``
    samples (0 when none is kept); least, with a zero gradient, where the two agree."""
    if not bool(kept.any()):
        return logits.sum() * 0.0
    targets = torch.sigmoid(teacher_logits[kept])
    return nn.functional.binary_cross_entropy_with_logits(logits[kept], targets)


def load_teacher(path: str, input_size: int, device: torch.device) -> DeepfakeClassifier:
    """The checkpoint a run is held to, frozen, giving its raw logits (its calibration taken off)."""
    teacher = load_checkpoint(path)
    if teacher.config.input_size != input_size:
        raise TrainingError(
            f"--distill-from {path} takes {teacher.config.input_size} px crops, this run {input_size}",
            code="invalid_arguments",
        )
    teacher.config = dataclasses.replace(teacher.config, temperature=1.0, logit_offset=0.0)
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher.eval().to(device)


class _Loop:
    """One epoch of optimisation steps, resumable at any step."""

    def __init__(
        self,
        config: TrainConfig,
        model: DeepfakeClassifier,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        sampler: Sampler,
        device: torch.device,
        run_dir: Path,
    ) -> None:
        self.config, self.model, self.sampler, self.device = config, model, sampler, device
        self.optimizer, self.scheduler, self.run_dir = optimizer, scheduler, run_dir
        self.scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
        self.loss_fn = nn.BCEWithLogitsLoss()
        self.teacher: DeepfakeClassifier | None = None

    def epoch(self, state: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        config, sampler, epoch = self.config, self.sampler, state["epoch"]
        self.model.train()
        keep_frozen_stages_still(self.model, config.frozen_stages)
        started, seen, loss_sum = time.monotonic(), 0, 0.0
        bar = tqdm(
            total=sampler.steps_per_epoch,
            initial=state["step_in_epoch"],
            disable=not config.progress,
            desc=f"epoch {epoch + 1}/{config.epochs}",
            file=sys.stderr,
            dynamic_ncols=True,
        )
        stopped_early = False
        # The next batch (augmentation, self-blending) is built in a thread while this one trains.
        prefetch = ThreadPoolExecutor(max_workers=1)
        pending = prefetch.submit(sampler.batch, epoch, state["step_in_epoch"])
        while state["step_in_epoch"] < sampler.steps_per_epoch:
            images, labels = pending.result()
            if state["step_in_epoch"] + 1 < sampler.steps_per_epoch:
                pending = prefetch.submit(sampler.batch, epoch, state["step_in_epoch"] + 1)
            # Dropout draws from torch's generator: reseed it per step too, so resuming is exact.
            torch.manual_seed(int(rng_for(config.seed, 4, epoch, state["step_in_epoch"]).integers(2**62)))
            loss = self._step(images, labels, state["global_step"])
            state["step_in_epoch"] += 1
            state["global_step"] += 1
            seen += len(labels)
            loss_sum += loss * len(labels)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}")
            stopping = config.max_steps is not None and state["global_step"] >= config.max_steps
            # The run's last weights are a snapshot too, on a multiple of --snapshot-every or not,
            # so an average up to the end of the run includes them.
            last_step = stopping or (
                epoch + 1 >= config.epochs and state["step_in_epoch"] == sampler.steps_per_epoch
            )
            if config.snapshot_every and (state["global_step"] % config.snapshot_every == 0 or last_step):
                save_snapshot(self.model, self.run_dir, state["global_step"])
            if stopping:
                stopped_early = True
                break
            if config.save_every and state["global_step"] % config.save_every == 0:
                save_state(self.run_dir, self.model, self.optimizer, self.scheduler, state)
        prefetch.shutdown(wait=True, cancel_futures=True)
        bar.close()
        elapsed = time.monotonic() - started
        record = {
            "epoch": epoch + 1,
            "steps": state["global_step"],
            "train_loss": loss_sum / max(seen, 1),
            "lr": self.scheduler.get_last_lr()[0],
            "images_per_s": seen / elapsed if elapsed > 0 else None,
        }
        return record, stopped_early

    def _held_to_teacher(
        self, inputs: torch.Tensor, logits: torch.Tensor, labels: np.ndarray
    ) -> torch.Tensor:
        """Cross-entropy of the network's scores against the teacher's, on every sample but the
        dataset's FAKE crops: what it said of real faces and self-blends stays said."""
        assert self.teacher is not None
        kept = torch.from_numpy(~self.sampler.dataset_fakes(labels)).to(logits.device)
        with torch.no_grad():
            teacher_logits = self.teacher(inputs).float()
        return distillation_loss(logits, teacher_logits, kept)

    def _step(self, images: np.ndarray, labels: np.ndarray, global_step: int) -> float:
        config, device = self.config, self.device
        inputs = to_tensor(images, device)
        targets = torch.from_numpy(labels).to(device)
        targets = targets * (1.0 - config.label_smoothing) + 0.5 * config.label_smoothing
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=device.type == "cuda"):
            logits = self.model(inputs)
        loss = self.loss_fn(logits.float(), targets)
        if self.teacher is not None:
            loss = loss + config.distill_weight * self._held_to_teacher(inputs, logits.float(), labels)
        if not torch.isfinite(loss):
            raise TrainingError(f"the loss became {loss.item()} at step {global_step}")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return float(loss.item())


def _landmark_detector(input_size: int) -> Any:
    from pipeline.faces import FaceDetector

    # Whole canvases at full size, and no pyramid scales for faces far smaller than the crop.
    return FaceDetector(device="cpu", det_threshold=0.9, min_face_size=0.3 * input_size, detect_long_side=0)
