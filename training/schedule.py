"""The learning-rate schedules a run can follow, and the weight snapshots taken along the way."""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.model import DeepfakeClassifier, save_checkpoint

__all__ = ["SCHEDULES", "make_scheduler", "save_snapshot", "snapshot_path", "snapshot_steps"]

# "one-cycle": warm up to the peak, then a cosine down to almost nothing.
# "flat": the same warm-up, then the peak rate held to the end; with snapshots and their average
# (``training.averaging``) this is stochastic weight averaging's constant-rate trajectory.
SCHEDULES = ("one-cycle", "flat")

# Both schedules start from the peak rate divided by this.
_WARMUP_DIVISOR = 25.0


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    schedule: str,
    peak_lr: float,
    total_steps: int,
    warmup_fraction: float,
) -> torch.optim.lr_scheduler.LRScheduler:
    if schedule == "one-cycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=peak_lr,
            total_steps=total_steps,
            pct_start=warmup_fraction,
            anneal_strategy="cos",
            div_factor=_WARMUP_DIVISOR,
            final_div_factor=1e3,
        )
    if schedule == "flat":
        for group in optimizer.param_groups:
            group["lr"] = peak_lr
        warmup = max(1, round(total_steps * warmup_fraction))
        start = 1.0 / _WARMUP_DIVISOR

        def factor(step: int) -> float:
            return start + (1.0 - start) * min(1.0, step / warmup)

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    raise ValueError(f"unknown schedule {schedule!r}")


def snapshot_path(run_dir: Path, step: int) -> Path:
    return run_dir / "snapshots" / f"step{step:05d}.safetensors"


def save_snapshot(model: DeepfakeClassifier, run_dir: Path, step: int) -> Path:
    """The weights at ``step``, uncalibrated: ``evaluate`` can score them, averaging can use them."""
    return save_checkpoint(model, snapshot_path(run_dir, step))


def snapshot_steps(run_dir: Path) -> list[int]:
    """The steps that have a snapshot in ``run_dir``, in order."""
    folder = run_dir / "snapshots"
    if not folder.is_dir():
        return []
    return sorted(int(path.stem[4:]) for path in folder.glob("step*.safetensors") if path.stem[4:].isdigit())
