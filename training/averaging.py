"""Weight averaging: the mean of a run's snapshots, with batch-norm statistics measured again.

Averaging the weights met along a trajectory of high, steady learning rate lands nearer the middle
of a wide region of low loss than any one point on it (Izmailov et al. 2018, stochastic weight
averaging). The running means and variances of batch norm belong to each snapshot's own weights,
so the average's are recomputed on training batches rather than averaged.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipeline.model import DeepfakeClassifier, resolve_device, save_checkpoint
from training.config import TrainConfig
from training.data import to_tensor
from training.errors import TrainingError
from training.export import TrainResult, finalize
from training.schedule import snapshot_path, snapshot_steps
from training.state import read_run_state

__all__ = ["average_state_dicts", "export_average", "parse_step_range", "recompute_batch_norm"]

# Batches drawn past any epoch the run can reach, so they are the same on every call.
_BN_EPOCH = 1_000_000


def parse_step_range(text: str) -> tuple[int, int]:
    """``FIRST:LAST`` (steps, both included; either may be left out) → (first, last)."""
    first, sep, last = text.partition(":")
    try:
        low = int(first) if first else 0
        high = int(last) if last else sys.maxsize
    except ValueError as exc:
        raise TrainingError(
            f"--average-snapshots expects FIRST:LAST steps, got {text!r}", code="invalid_arguments"
        ) from exc
    if not sep or low < 0 or high < low:
        raise TrainingError(
            f"--average-snapshots expects FIRST:LAST steps with FIRST ≤ LAST, got {text!r}",
            code="invalid_arguments",
        )
    return low, high


def average_state_dicts(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of floating-point tensors; counters (integers) come from the last."""
    if not states:
        raise TrainingError("no snapshots to average", code="invalid_arguments")
    keys = states[0].keys()
    if any(state.keys() != keys for state in states):
        raise TrainingError("the snapshots are not of the same network", code="invalid_arguments")
    averaged: dict[str, torch.Tensor] = {}
    for key in keys:
        tensors = [state[key] for state in states]
        if tensors[0].is_floating_point():
            averaged[key] = torch.stack([t.to(torch.float64) for t in tensors]).mean(0).to(tensors[0].dtype)
        else:
            averaged[key] = tensors[-1].clone()
    return averaged


def recompute_batch_norm(
    model: nn.Module, batches: Iterable[np.ndarray], device: torch.device, *, skip: Sequence[nn.Module] = ()
) -> int:
    """Measure every batch norm's running mean and variance again over ``batches`` (a plain
    average over all of them, not a moving one); modules in ``skip`` keep theirs. Returns the
    number of images seen."""
    kept = {id(m) for module in skip for m in module.modules()}
    norms = [
        m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m) not in kept
    ]
    if not norms:
        return 0
    saved_momentum = {}
    for norm in norms:
        norm.reset_running_stats()
        saved_momentum[norm] = norm.momentum
        norm.momentum = None  # cumulative average
    was_training = model.training
    model.train()
    for module in skip:
        module.eval()
    seen = 0
    with torch.no_grad():
        for images in batches:
            model(to_tensor(images, device))
            seen += len(images)
    for norm, momentum in saved_momentum.items():
        norm.momentum = momentum
    model.train(was_training)
    if seen == 0:
        raise TrainingError("no batches to measure batch-norm statistics on", code="invalid_arguments")
    return seen


def export_average(
    config: TrainConfig,
    steps: tuple[int, int],
    *,
    bn_batches: int = 40,
    say: Callable[[str], None] | None = None,
    argv: Sequence[str] | None = None,
) -> TrainResult:
    """Average the run's snapshots taken at steps in ``steps`` (both ends included), measure its
    batch norms on ``bn_batches`` training batches, calibrate on validation and write ``config.out``.
    The uncalibrated average stays in the run directory as ``averaged-FIRST-LAST.safetensors``
    (its first and last snapshot steps); the run's own state is not touched (it may still be
    training)."""
    from safetensors.torch import load_file

    from training.train import build_sampler, encoder_stages, prepare

    config.validate()
    say = say or (lambda message: print(message, file=sys.stderr, flush=True))
    run_dir = Path(config.run_dir)
    state = read_run_state(run_dir, config)
    chosen = [step for step in snapshot_steps(run_dir) if steps[0] <= step <= steps[1]]
    if len(chosen) < 2:
        raise TrainingError(
            f"{run_dir} has {len(chosen)} snapshot(s) between steps {steps[0]} and {steps[1]}; "
            "averaging needs two or more (train with --snapshot-every)",
            code="invalid_arguments",
        )
    if bn_batches < 1:
        raise TrainingError("--bn-batches must be 1 or more", code="invalid_arguments")
    say(f"averaging {len(chosen)} snapshots: steps {', '.join(map(str, chosen))}")
    device = resolve_device(config.device)
    prepared = prepare(config, say)
    model = DeepfakeClassifier(prepared.model_config)
    model.load_state_dict(
        average_state_dicts([load_file(str(snapshot_path(run_dir, step)), device="cpu") for step in chosen]),
        strict=True,
    )
    model.to(device)
    sampler = build_sampler(config, prepared, say)
    skip = encoder_stages(model, config.frozen_stages) if config.frozen_stages else []
    seen = recompute_batch_norm(
        model,
        (sampler.batch(_BN_EPOCH, step % sampler.steps_per_epoch)[0] for step in range(bn_batches)),
        device,
        skip=skip,
    )
    say(f"batch-norm statistics measured on {seen} training images")
    averaged = save_checkpoint(model, run_dir / f"averaged-{chosen[0]}-{chosen[-1]}.safetensors")
    state["averaged"] = {"snapshot_steps": chosen, "batch_norm_images": seen}
    return finalize(
        model, prepared, config, state, device=device, init_info=None, argv=argv, say=say, weights=averaged
    )
