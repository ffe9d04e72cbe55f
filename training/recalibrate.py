"""A checkpoint's calibration fitted again, its weights untouched: ``deepfakestream calibrate``.

Temperature, offset, threshold and inconclusive band are refitted on the validation split the
checkpoint was trained with (optionally with one self-blend of each of its REAL faces), exactly as
an export at the end of training fits them. The data folder must be one the checkpoint was trained
on, with the same contents (its manifest hash is recorded in the checkpoint): on any other
folder the "validation" rows could be faces the network learnt, and the fit would be optimistic.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.checkpoint import file_sha256
from pipeline.errors import ModelError
from pipeline.model import load_checkpoint, resolve_device, save_checkpoint
from training.calibration_set import build_calibration_set
from training.data import predict_images
from training.datasets import DEFAULT_CACHE_DIR, load_crop_folder, split_indices
from training.errors import TrainingError
from training.export import BAND_TARGET, Fitted, fit_calibration_set, round_floats

__all__ = ["recalibrate"]


def recalibrate(
    model_path: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    calibration: str = "val+self-blends",
    version: str | None = None,
    device: str = "cpu",
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
    say: Callable[[str], None] = print,
) -> tuple[Path, Fitted]:
    """Write ``out``: ``model_path``'s weights with a calibration fitted on ``data``'s validation
    split (``calibration``: "val" or "val+self-blends")."""
    source, out = Path(model_path), Path(out)
    if out.resolve() == source.resolve():
        raise TrainingError(
            "--out must be a new file, not the checkpoint being recalibrated", code="invalid_arguments"
        )
    model = load_checkpoint(source)
    original = model.config
    split = (original.training or {}).get("split") or {}
    if not original.trained or "val_fraction" not in split or "seed" not in split:
        raise TrainingError(
            f"{source.name} does not record the split it was trained with; its validation faces "
            "cannot be told from the ones it learnt",
            code="calibration_split_unknown",
        )
    crops = load_crop_folder(data, size=original.input_size, cache_dir=cache_dir)
    trained_on = (original.training or {}).get("data") or {}
    if crops.manifest_sha256 not in trained_on.values():
        raise TrainingError(
            f"{data} is not a folder {source.name} was trained on (or its contents changed since): "
            "its validation split would not be held out",
            code="calibration_data_mismatch",
        )
    rows = split_indices(
        crops.groups, "val", val_fraction=float(split["val_fraction"]), seed=int(split["seed"])
    )
    val_set = crops.subset(rows)
    if not (val_set.labels == 0).any() or (calibration == "val" and not (val_set.labels == 1).any()):
        raise TrainingError(
            f"the validation split of {data} needs REAL faces (and FAKE ones, or self-blends of the REAL)",
            code="calibration_set_too_small",
        )
    fit_set = build_calibration_set(val_set, calibration, seed=int(split["seed"]))
    say(f"calibrating on {fit_set.name}: {fit_set.counts}")
    # The network's own scores: the checkpoint's calibration taken off before the fit.
    model.config = dataclasses.replace(original, temperature=1.0, logit_offset=0.0)
    torch_device = resolve_device(device)
    model.to(torch_device)
    raw = predict_images(model, fit_set.images, device=torch_device)
    fitted = fit_calibration_set(fit_set, raw, len(val_set))
    provenance: dict[str, Any] = dict(original.training or {})
    provenance["recalibrated"] = {
        "from": {"version": original.version, "sha256": file_sha256(source)},
        "previous": {
            "temperature": original.temperature,
            "logit_offset": original.logit_offset,
            "threshold": original.threshold,
            "inconclusive_band": list(original.inconclusive_band) if original.inconclusive_band else None,
        },
        "band_target": BAND_TARGET,
    }
    provenance["calibration"] = calibration
    final = dataclasses.replace(
        original,
        temperature=fitted.temperature,
        logit_offset=fitted.offset,
        threshold=fitted.threshold,
        inconclusive_band=fitted.band,
        version=version or original.version,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        metrics=round_floats({**fitted.metrics, "best_epoch": (original.metrics or {}).get("best_epoch")}),
        training=provenance,
    )
    model.config = final
    try:
        written = save_checkpoint(model, out, final)
    except ModelError as exc:
        raise TrainingError(
            f"the recalibrated checkpoint is not valid: {exc}", code="invalid_checkpoint"
        ) from exc
    say(
        f"wrote {written} (temperature {fitted.temperature}, offset {fitted.offset}, threshold "
        f"{fitted.threshold:.4f}, band [{fitted.band[0]:.3f}, {fitted.band[1]:.3f}), val AUC "
        f"{fitted.metrics['auc']}, log loss {fitted.metrics['log_loss']:.4f})"
    )
    return written, fitted
