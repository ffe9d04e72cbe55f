"""Fixtures shared by every test folder: a randomly initialised checkpoint small enough to be quick."""

from __future__ import annotations

from pathlib import Path

import pytest


def make_random_checkpoint(path: Path, *, input_size: int = 128, seed: int = 0, **config: object) -> Path:
    """Write a ``trained: false`` checkpoint with random weights (B0, SRM on) at ``path``."""
    import torch

    from pipeline.model import DeepfakeClassifier, ModelConfig, save_checkpoint

    torch.manual_seed(seed)
    model_config = ModelConfig(input_size=input_size, trained=False, **config)  # type: ignore[arg-type]
    return save_checkpoint(DeepfakeClassifier(model_config), path)


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised checkpoint (input 128, ``"trained": false``), made once per run."""
    return make_random_checkpoint(tmp_path_factory.mktemp("model") / "random-b0.safetensors")
