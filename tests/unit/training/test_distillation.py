"""Learning without forgetting: the run held to a teacher's scores on all but the dataset's fakes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.utils.training import source_image
from training.config import TrainConfig
from training.data import Sampler
from training.datasets import CropSet
from training.errors import TrainingError
from training.train import distillation_loss

SIZE = 32


def _config(**changes: object) -> TrainConfig:
    values: dict[str, object] = {
        "data": ["unused"],
        "input_size": SIZE,
        "batch_size": 10,
        "augment_strength": 0.0,
        "sbi_ratio": 0.4,
        "sbi_pairs": True,
        "sbi_landmarks": False,
    }
    values.update(changes)
    return TrainConfig(**values)  # type: ignore[arg-type]


def test_the_loss_is_least_where_the_network_agrees_with_its_teacher() -> None:
    teacher = torch.tensor([2.0, -1.0, 0.5, 3.0])
    kept = torch.tensor([True, True, True, False])
    agreeing = teacher.clone().requires_grad_(True)
    distillation_loss(agreeing, teacher, kept).backward()
    assert agreeing.grad is not None and torch.allclose(agreeing.grad, torch.zeros(4), atol=1e-6)
    drifted = torch.tensor([-2.0, 1.0, 0.5, 3.0])
    assert distillation_loss(drifted, teacher, kept) > distillation_loss(teacher, teacher, kept)
    # What the teacher says of a sample that is not kept does not count.
    other_teacher = teacher.clone()
    other_teacher[3] = -9.0
    assert distillation_loss(drifted, other_teacher, kept) == distillation_loss(drifted, teacher, kept)
    manual = torch.nn.functional.binary_cross_entropy_with_logits(drifted[:3], torch.sigmoid(teacher[:3]))
    assert distillation_loss(drifted, teacher, kept) == pytest.approx(float(manual))
    assert float(distillation_loss(drifted, teacher, torch.zeros(4, dtype=torch.bool))) == 0.0


def test_only_the_dataset_s_own_fakes_are_left_out() -> None:
    reals = np.stack([source_image(SIZE)] * 6)
    train = CropSet(
        images=np.full((40, SIZE, SIZE, 3), 90, dtype=np.uint8),
        labels=np.array([0, 1] * 20, dtype=np.int64),
        groups=[f"g{i}" for i in range(40)],
        items=[f"i{i}.png" for i in range(40)],
        kind="crops",
        manifest_sha256="",
        size=SIZE,
    )
    sampler = Sampler(train, reals, _config())
    _, labels = sampler.batch(0, 0)
    fakes = sampler.dataset_fakes(labels)
    pairs = sampler.pair_slots(len(labels))
    assert pairs == 4 and labels[:pairs].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert not fakes[:pairs].any(), "self-blends are kept"
    assert (fakes[pairs:] == (labels[pairs:] == 1.0)).all() and fakes.any()


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"distill_from": "teacher.safetensors", "sbi_pairs": False}, "--sbi-pairs"),
        ({"distill_from": "teacher.safetensors", "distill_weight": 0.0}, "--distill-weight"),
    ],
)
def test_bad_distillation_settings_are_refused(changes: dict[str, object], needle: str) -> None:
    with pytest.raises(TrainingError, match=needle) as caught:
        _config(**changes).validate()
    assert caught.value.code == "invalid_arguments"
