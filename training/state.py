"""A training run's resumable state: weights, optimiser, schedule and position, saved and restored.

``last.optim.pt`` is written by this module only and read back with
``torch.load(weights_only=True)``, which refuses anything but tensors and plain containers; user
files are never unpickled. The settings a run was started with are kept as a key: a resume with
different ones is refused, except for the epoch budget, whose one-cycle schedule is replayed.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from pipeline.model import DeepfakeClassifier, file_sha256, load_checkpoint, save_checkpoint
from training.config import TrainConfig
from training.errors import TrainingError

__all__ = ["check_same_settings", "init_weights", "load_state", "read_run_state", "resume_key", "save_state"]


def save_state(
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


def load_state(
    run_dir: Path,
    model: DeepfakeClassifier,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    config: TrainConfig,
    *,
    total_steps: int,
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
    saved_epochs = check_same_settings(run_dir, state, config)
    model.load_state_dict(weights, strict=True)
    optimizer.load_state_dict(optim["optimizer"])
    if saved_epochs == config.epochs:
        scheduler.load_state_dict(optim["scheduler"])
    else:
        if state["global_step"] > total_steps or state["epoch"] > config.epochs:
            raise TrainingError(f"{run_dir} is already past {config.epochs} epochs", code="resume_mismatch")
        # The new schedule is replayed up to the current step, so the learning rate
        # continues from where the new budget puts it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(state["global_step"]):
                scheduler.step()
        state.setdefault("schedule_changes", []).append(
            {"at_step": state["global_step"], "epochs_from": saved_epochs, "epochs_to": config.epochs}
        )
        state["config_key"] = resume_key(config)
    return dict(state)


# Settings added after runs were saved: a saved run without them used these values.
_ADDED_LATER: dict[str, Any] = {
    "real_data_ratio": 0.0,
    "sbi_landmark_points": 5,
    "sbi_pairs": False,
    "lower_face_ratio": 0.0,
    "generated_face_ratio": 0.0,
    "frozen_stages": 0,
    "schedule": "one-cycle",
    "real_source_share": None,
    "distill_from": None,
    "distill_weight": 1.0,
}


def read_run_state(run_dir: Path, config: TrainConfig) -> dict[str, Any]:
    """The saved position of the run in ``run_dir`` (``last.json``), refused unless it was started
    with ``config``'s settings: what an export of a run reads, without touching it."""
    try:
        state: dict[str, Any] = json.loads((run_dir / "last.json").read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TrainingError(f"no run in {run_dir}: last.json is missing", code="no_resume") from exc
    check_same_settings(run_dir, state, config)
    return state


def check_same_settings(run_dir: Path, state: dict[str, Any], config: TrainConfig) -> int:
    """Refuse a run directory started with other settings; returns the epochs it was started with.

    The epoch budget may change (a run cut short or extended); nothing else may.
    """
    saved = {**_ADDED_LATER, **json.loads(state.get("config_key") or "{}")}
    current = json.loads(resume_key(config))
    saved_epochs = int(saved.pop("epochs", config.epochs))
    current.pop("epochs")
    if saved != current:
        raise TrainingError(
            f"{run_dir} was started with different settings ({state.get('config_key')}); "
            "use the same ones (only --epochs may change) or another --run-dir",
            code="resume_mismatch",
        )
    return saved_epochs


def resume_key(config: TrainConfig) -> str:
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
        "real_data_ratio",
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
        "sbi_landmark_points",
        "sbi_pairs",
        "lower_face_ratio",
        "generated_face_ratio",
        "frozen_stages",
        "schedule",
        "real_source_share",
        "distill_from",
        "distill_weight",
    )
    doc = asdict(config)
    return json.dumps({k: doc[k] for k in keys}, sort_keys=True)


def init_weights(model: DeepfakeClassifier, path: str) -> dict[str, Any]:
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
