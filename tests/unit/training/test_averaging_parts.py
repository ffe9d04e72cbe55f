"""The pieces of weight averaging: the mean of weights, batch-norm statistics measured again."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from training.averaging import average_state_dicts, parse_step_range, recompute_batch_norm
from training.errors import TrainingError
from training.schedule import make_scheduler


def test_floating_tensors_are_averaged_and_counters_come_from_the_last() -> None:
    first = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    second = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(7)}
    averaged = average_state_dicts([first, second])
    assert torch.equal(averaged["w"], torch.tensor([2.0, 4.0])) and int(averaged["n"]) == 7
    with pytest.raises(TrainingError, match="same network"):
        average_state_dicts([first, {"w": torch.zeros(2)}])
    with pytest.raises(TrainingError, match="no snapshots"):
        average_state_dicts([])


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.norm = nn.BatchNorm2d(4)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(pixels))


def test_batch_norm_statistics_are_the_plain_average_over_the_batches() -> None:
    torch.manual_seed(0)
    net = _Net()
    net.norm.running_mean.fill_(100.0)
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 256, (5, 6, 6, 3), dtype=np.uint8) for _ in range(3)]
    net.eval()
    seen = recompute_batch_norm(net, batches, torch.device("cpu"))
    assert seen == 15 and not net.training, "the module's mode is put back"
    from training.data import to_tensor

    with torch.no_grad():
        outputs = [net.conv(to_tensor(b, torch.device("cpu"))) for b in batches]
    expected = torch.stack([o.mean(dim=(0, 2, 3)) for o in outputs]).mean(0)
    assert torch.allclose(net.norm.running_mean, expected, atol=1e-5)
    assert net.norm.momentum == 0.1, "the moving average comes back for later training"
    kept = _Net()
    kept.norm.running_mean.fill_(7.0)
    recompute_batch_norm(kept, batches, torch.device("cpu"), skip=[kept.norm])
    assert torch.equal(kept.norm.running_mean, torch.full((4,), 7.0))
    with pytest.raises(TrainingError, match="no batches"):
        recompute_batch_norm(_Net(), [], torch.device("cpu"))


def test_step_ranges() -> None:
    assert parse_step_range("300:900") == (300, 900)
    assert parse_step_range(":900")[0] == 0 and parse_step_range("300:")[0] == 300
    for bad in ("900:300", "300", "a:b", "-1:5"):
        with pytest.raises(TrainingError) as caught:
            parse_step_range(bad)
        assert caught.value.code == "invalid_arguments"


def test_the_flat_schedule_warms_up_then_holds_the_peak() -> None:
    optimiser = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = make_scheduler(optimiser, schedule="flat", peak_lr=0.4, total_steps=100, warmup_fraction=0.1)
    rates = []
    for _ in range(100):
        rates.append(scheduler.get_last_lr()[0])
        optimiser.step()
        scheduler.step()
    assert rates[0] == pytest.approx(0.4 / 25)
    assert all(a < b for a, b in itertools.pairwise(rates[:11]))
    assert rates[10:] == [pytest.approx(0.4)] * 90
    with pytest.raises(ValueError, match="unknown schedule"):
        make_scheduler(optimiser, schedule="cosine", peak_lr=0.4, total_steps=10, warmup_fraction=0.1)
