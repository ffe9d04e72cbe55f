"""The end of a training run: the best epoch's weights calibrated on validation, with provenance."""

from __future__ import annotations

import dataclasses
import math
import platform
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.model import DeepfakeClassifier, ModelConfig, save_checkpoint
from training.calibration import apply_calibration, fit_calibration
from training.calibration_set import CalibrationSet, build_calibration_set
from training.config import TrainConfig
from training.data import manifest_hash, predict_images
from training.datasets import CropSet
from training.scores import binary_metrics, calibrate_threshold, inconclusive_band

__all__ = [
    "BAND_TARGET",
    "Fitted",
    "Prepared",
    "TrainResult",
    "finalize",
    "fit_calibration_set",
    "round_floats",
]

# Precision of a FAKE verdict and of a REAL verdict, on validation, outside the inconclusive band.
BAND_TARGET = 0.9


@dataclass
class TrainResult:
    checkpoint: Path
    metrics: dict[str, Any]
    threshold: float
    epochs_done: int
    steps: int


@dataclass
class Prepared:
    """Everything a run reads before its first step: framing, data, split, the model's settings."""

    square: tuple[float, float] | None
    margin_measurement: dict[str, Any] | None
    train_set: CropSet
    val_set: CropSet
    reals: np.ndarray  # self-blending sources
    extra_reals: int
    manifests: dict[str, str]
    model_config: ModelConfig


@dataclass
class Fitted:
    """A calibration fitted on a calibration set, and the validation metrics it gives."""

    temperature: float
    offset: float
    threshold: float
    band: tuple[float, float]
    metrics: dict[str, Any]


def fit_calibration_set(fit_set: CalibrationSet, raw_probs: np.ndarray, val_count: int) -> Fitted:
    """Temperature, offset, threshold and band fitted on ``fit_set`` from the network's
    uncalibrated P(fake) (``raw_probs``, in the set's order); the metrics are those of its first
    ``val_count`` items (the validation split alone), so they compare across calibration sets."""
    val_labels = fit_set.labels[:val_count]
    uncalibrated_log_loss = binary_metrics(val_labels, raw_probs[:val_count], threshold=0.5)["log_loss"]
    temperature, offset = fit_calibration(fit_set.labels, raw_probs)
    fit_probs = apply_calibration(raw_probs, temperature, offset)
    val_probs = fit_probs[:val_count]
    threshold = calibrate_threshold(fit_set.labels, fit_probs)
    band = inconclusive_band(fit_set.labels, fit_probs, threshold=threshold, target=BAND_TARGET)
    metrics = binary_metrics(val_labels, val_probs, threshold=threshold)
    metrics = {k: v for k, v in metrics.items() if k != "confusion_matrix"} | {
        "confusion_matrix": metrics["confusion_matrix"],
        "split": "val",
        "temperature": temperature,
        "logit_offset": offset,
        "log_loss_before_calibration": uncalibrated_log_loss,
        "inconclusive_band": list(band),
        "inconclusive_fraction": float(np.mean((val_probs >= band[0]) & (val_probs < band[1]))),
        "calibration_set": fit_set.name,
        "calibration_items": fit_set.counts,
    }
    return Fitted(temperature, offset, threshold, band, metrics)


def finalize(
    model: DeepfakeClassifier,
    prepared: Prepared,
    config: TrainConfig,
    state: dict[str, Any],
    *,
    device: torch.device,
    init_info: dict[str, Any] | None,
    argv: Sequence[str] | None,
    say: Callable[[str], None],
    weights: Path | None = None,
) -> TrainResult:
    """Load the best epoch's weights (or ``weights``), calibrate them on validation (with
    ``config.calibration`` "val+self-blends": and self-blends of its REAL faces), write the
    checkpoint."""
    from safetensors.torch import load_file

    run_dir, val_set = Path(config.run_dir), prepared.val_set
    weights = weights or run_dir / "best.safetensors"
    model.load_state_dict(load_file(str(weights), device="cpu"), strict=True)
    model.to(device)
    fit_set = build_calibration_set(val_set, config.calibration, seed=config.seed)
    fitted = fit_calibration_set(fit_set, predict_images(model, fit_set.images, device=device), len(val_set))
    metrics = fitted.metrics | {"best_epoch": state.get("best_epoch")}
    temperature, offset, threshold, band = fitted.temperature, fitted.offset, fitted.threshold, fitted.band
    final = dataclasses.replace(
        prepared.model_config,
        temperature=temperature,
        logit_offset=offset,
        inconclusive_band=band,
        caveat=config.caveat,
        threshold=threshold,
        trained=True,
        version=config.version,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        metrics=round_floats(metrics),
        training=_provenance(config, prepared, state, device, init_info, argv),
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


def _provenance(
    config: TrainConfig,
    prepared: Prepared,
    state: dict[str, Any],
    device: torch.device,
    init_info: dict[str, Any] | None,
    argv: Sequence[str] | None,
) -> dict[str, Any]:
    """What the checkpoint records about how it was made."""
    fitted_on = (
        "the validation split"
        if config.calibration == "val"
        else "the validation split plus one self-blend of each of its REAL faces"
    )
    return {
        "data": prepared.manifests,
        "manifest_sha256": manifest_hash(prepared.manifests),
        "split": {
            "rule": "identity group, seeded sha256 of the group name",
            "val_fraction": config.val_fraction,
            "seed": config.seed,
            "train_crops": len(prepared.train_set),
            "val_crops": len(prepared.val_set),
        },
        "epochs": state["epoch"],
        "steps": state["global_step"],
        "batch_size": config.batch_size,
        "lr": config.lr,
        "weight_decay": config.weight_decay,
        "label_smoothing": config.label_smoothing,
        "sbi_ratio": config.sbi_ratio,
        "real_data_ratio": config.real_data_ratio,
        "sbi_landmarks": config.sbi_landmarks,
        "sbi_only": config.sbi_only,
        "sbi_landmark_points": config.sbi_landmark_points,
        "sbi_pairs": config.sbi_pairs,
        "lower_face_ratio": config.lower_face_ratio,
        "generated_face_ratio": config.generated_face_ratio,
        "real_source_share": config.real_source_share,
        "distill_from": config.distill_from,
        "distill_weight": config.distill_weight if config.distill_from else None,
        "frozen_stages": config.frozen_stages,
        "pretrained": config.pretrained if not config.init_from else None,
        "augment_strength": config.augment_strength,
        "calibration": config.calibration,
        "threshold_rule": f"maximises balanced accuracy (Youden's J) on {fitted_on}",
        "calibration_rule": f"T and offset minimise log loss of sigmoid((logit - offset) / T) on {fitted_on}",
        "band_rule": f"outside the band each verdict is right ≥ {BAND_TARGET:.0%} of the time on {fitted_on}",
        "face_margin_measurement": prepared.margin_measurement,
        "schedule": config.schedule,
        "schedule_changes": state.get("schedule_changes", []),
        "averaged": state.get("averaged"),
        "init_from": init_info or state.get("init_from"),
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "command": " ".join(argv) if argv else None,
        "config": {k: v for k, v in asdict(config).items() if k not in ("progress", "cache_dir")},
    }


def round_floats(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    if isinstance(value, dict):
        return {k: round_floats(v) for k, v in value.items()}
    return value
