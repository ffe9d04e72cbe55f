"""Checkpoints in the DFDC-winner layout (tf_efficientnet_b7 ``encoder.*`` + ``fc.*``) load."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file
from torch import nn

from pipeline.errors import ModelError
from pipeline.model import load_checkpoint


def test_random_winner_layout_file_loads_and_scores(tmp_path: Path) -> None:
    torch.manual_seed(0)
    encoder = timm.create_model("tf_efficientnet_b7", pretrained=False, num_classes=0)
    head = nn.Linear(encoder.num_features, 1)
    tensors = {f"encoder.{k}": v.contiguous() for k, v in encoder.state_dict().items()}
    tensors |= {f"fc.{k}": v.contiguous() for k, v in head.state_dict().items()}
    path = tmp_path / "winner.safetensors"
    save_file(tensors, str(path))  # no deepfakestream metadata, as such files come

    model = load_checkpoint(path)
    assert model.config.layout == "dfdc_winner" and model.config.architecture == "tf_efficientnet_b7"
    assert model.srm is None and model.config.input_size == 380
    assert torch.equal(model.fc.weight, head.weight)
    with torch.inference_mode():
        logits = model(torch.rand(2, 3, 64, 64))  # a small input keeps the test fast
    assert logits.shape == (2,) and torch.isfinite(logits).all()

    del tensors["fc.bias"]
    save_file(tensors, str(path))
    with pytest.raises(ModelError, match="does not match"):
        load_checkpoint(path)
