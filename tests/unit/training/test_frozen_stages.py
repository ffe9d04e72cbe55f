"""Frozen encoder stages keep their weights and batch-norm statistics through training steps."""

from __future__ import annotations

import json

import pytest
import torch

from pipeline.model import DeepfakeClassifier, ModelConfig
from training.config import TrainConfig
from training.errors import TrainingError
from training.state import check_same_settings, resume_key
from training.train import freeze_stages, keep_frozen_stages_still


def _model() -> DeepfakeClassifier:
    torch.manual_seed(0)
    return DeepfakeClassifier(ModelConfig(architecture="tf_efficientnet_lite0", input_size=64, use_srm=True))


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def test_a_step_leaves_the_frozen_stages_untouched_and_trains_the_rest() -> None:
    model = _model()
    frozen = freeze_stages(model, 3)
    stages = model.encoder.blocks  # type: ignore[union-attr]
    assert frozen == sum(p.numel() for stage in stages[:3] for p in stage.parameters())
    assert all(not p.requires_grad for stage in stages[:3] for p in stage.parameters())
    assert all(p.requires_grad for p in stages[3].parameters())
    assert model.encoder.conv_stem.weight.requires_grad, "the stem takes the SRM channels: it trains"
    before_frozen = _snapshot(stages[:3])
    before_trained = _snapshot(stages[5])
    optimiser = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    keep_frozen_stages_still(model, 3)
    assert not stages[0].training and stages[3].training
    pixels = torch.rand(4, 3, 64, 64)
    loss = model(pixels).pow(2).mean()
    loss.backward()
    optimiser.step()
    after_frozen = _snapshot(stages[:3])
    # Weights and running statistics alike: nothing in a frozen stage moved.
    assert all(torch.equal(before_frozen[name], after_frozen[name]) for name in before_frozen)
    after_trained = _snapshot(stages[5])
    assert any(not torch.equal(before_trained[name], after_trained[name]) for name in before_trained)


def test_freezing_more_stages_than_the_encoder_has_is_refused() -> None:
    with pytest.raises(TrainingError, match="has 7 stages"):
        freeze_stages(_model(), 8)
    with pytest.raises(TrainingError, match="--frozen-stages"):
        TrainConfig(data=["unused"], frozen_stages=-1).validate()


def test_runs_saved_before_frozen_stages_existed_still_resume(tmp_path: object) -> None:
    config = TrainConfig(data=["unused"], epochs=4)
    saved = json.loads(resume_key(config))
    del saved["frozen_stages"], saved["generated_face_ratio"]
    state = {"config_key": json.dumps(saved)}
    assert check_same_settings(tmp_path, state, config) == 4  # type: ignore[arg-type]
    with pytest.raises(TrainingError) as caught:
        check_same_settings(tmp_path, state, TrainConfig(data=["unused"], epochs=4, frozen_stages=2))  # type: ignore[arg-type]
    assert caught.value.code == "resume_mismatch"
