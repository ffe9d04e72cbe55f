"""Checkpoints: a round trip keeps weights and metadata; every kind of bad file is a ModelError."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from pipeline.errors import ModelError
from pipeline.model import (
    METADATA_KEY,
    Classifier,
    DeepfakeClassifier,
    ModelConfig,
    load_checkpoint,
    save_checkpoint,
)
from tests.conftest import make_random_checkpoint


@pytest.fixture(scope="module")
def small_model() -> DeepfakeClassifier:
    torch.manual_seed(3)
    return DeepfakeClassifier(ModelConfig(input_size=64, threshold=0.37, version="9.9.9", trained=True))


def test_round_trip_keeps_predictions_and_metadata(small_model: DeepfakeClassifier, tmp_path: Path) -> None:
    path = save_checkpoint(small_model, tmp_path / "m.safetensors")
    loaded = load_checkpoint(path)
    assert loaded.config == small_model.config
    pixels = torch.rand(2, 3, 64, 64)
    small_model.eval()
    with torch.inference_mode():
        np.testing.assert_allclose(loaded(pixels).numpy(), small_model(pixels).numpy(), rtol=1e-5, atol=1e-6)
    assert not list(tmp_path.glob("*.tmp"))  # written through a temporary file, renamed
    assert path.stat().st_mode & 0o777 == 0o644  # readable by the workers' user too


def test_classifier_scores_uint8_crops_and_describes_itself(random_checkpoint: Path) -> None:
    classifier = Classifier(random_checkpoint, device="cpu")
    crops = np.random.default_rng(0).integers(0, 256, size=(3, 128, 128, 3), dtype=np.uint8)
    scores = classifier.predict(crops)
    assert scores.shape == (3,) and scores.dtype == np.float32
    assert ((scores > 0) & (scores < 1)).all()
    assert classifier.predict(np.zeros((0, 128, 128, 3), dtype=np.uint8)).shape == (0,)
    description = classifier.describe()
    assert description["trained"] is False
    assert len(description["sha256"]) == 64
    with pytest.raises(ValueError, match="128×128"):
        classifier.predict(np.zeros((1, 64, 64, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        classifier.predict(np.zeros((1, 128, 128, 3), dtype=np.float32))


def _state(model: DeepfakeClassifier) -> dict[str, torch.Tensor]:
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def _bad_file(kind: str, directory: Path, model: DeepfakeClassifier) -> Path:
    good = save_checkpoint(model, directory / "good.safetensors")
    meta = model.config.to_json()
    path = directory / f"{kind}.safetensors"
    if kind == "truncated":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "truncated_header":
        path.write_bytes(good.read_bytes()[:50])
    elif kind == "not_safetensors":
        path.write_text("weights: definitely\n" * 10)
    elif kind == "pickle_renamed":
        torch.save(_state(model), path)  # a pickle dressed up as safetensors
    elif kind == "pickle_pt":
        path = directory / "model.pt"
        torch.save(_state(model), path)
    elif kind == "missing_tensors":
        state = _state(model)
        del state["fc.weight"]
        save_file(state, str(path), metadata={METADATA_KEY: meta})
    elif kind == "wrong_shapes":
        state = _state(model)
        state["fc.weight"] = torch.zeros(1, 7)
        save_file(state, str(path), metadata={METADATA_KEY: meta})
    elif kind == "unexpected_tensors":
        state = _state(model)
        state["backdoor.weight"] = torch.zeros(3)
        save_file(state, str(path), metadata={METADATA_KEY: meta})
    elif kind == "no_metadata":
        save_file({"something.else": torch.zeros(2)}, str(path))
    elif kind == "metadata_not_json":
        save_file(_state(model), str(path), metadata={METADATA_KEY: "{architecture: b0"})
    elif kind == "metadata_unknown_field":
        doc = json.loads(meta) | {"run_this": "rm -rf /"}
        save_file(_state(model), str(path), metadata={METADATA_KEY: json.dumps(doc)})
    elif kind == "metadata_wrong_type":
        doc = json.loads(meta) | {"input_size": "large"}
        save_file(_state(model), str(path), metadata={METADATA_KEY: json.dumps(doc)})
    elif kind == "metadata_bad_threshold":
        doc = json.loads(meta) | {"threshold": 1.5}
        save_file(_state(model), str(path), metadata={METADATA_KEY: json.dumps(doc)})
    elif kind == "metadata_future_version":
        doc = json.loads(meta) | {"format_version": 99}
        save_file(_state(model), str(path), metadata={METADATA_KEY: json.dumps(doc)})
    elif kind == "metadata_bad_square_scale":
        doc = json.loads(meta) | {"face_square_scale": 9.0}
        save_file(_state(model), str(path), metadata={METADATA_KEY: json.dumps(doc)})
    elif kind == "unknown_architecture":
        doc = json.loads(meta) | {"architecture": "not_a_network"}
        save_file(_state(model), str(path), metadata={METADATA_KEY: json.dumps(doc)})
    elif kind == "missing":
        path = directory / "absent.safetensors"
    else:
        raise AssertionError(kind)
    return path


BAD_KINDS = [
    ("truncated", "could not be read"),
    ("truncated_header", "not a safetensors file"),
    ("not_safetensors", "not a safetensors file"),
    ("pickle_renamed", "not a safetensors file"),
    ("pickle_pt", "only safetensors"),
    ("missing_tensors", "missing \\[fc.weight\\]"),
    ("wrong_shapes", "size mismatch"),
    ("unexpected_tensors", "unexpected \\[backdoor.weight\\]"),
    ("no_metadata", "no 'deepfakestream' metadata"),
    ("metadata_not_json", "not valid JSON"),
    ("metadata_unknown_field", "unknown checkpoint metadata fields: run_this"),
    ("metadata_wrong_type", "bad checkpoint metadata"),
    ("metadata_bad_threshold", "threshold 1.5"),
    ("metadata_future_version", "format version 99"),
    ("metadata_bad_square_scale", "face_square_scale 9.0"),
    ("unknown_architecture", "unknown architecture"),
    ("missing", "not found"),
]


@pytest.mark.parametrize(("kind", "message"), BAD_KINDS, ids=[k for k, _ in BAD_KINDS])
def test_bad_checkpoint_is_rejected(kind: str, message: str, small_model: DeepfakeClassifier,
                                    tmp_path: Path) -> None:
    path = _bad_file(kind, tmp_path, small_model)
    with pytest.raises(ModelError, match=message) as caught:
        load_checkpoint(path)
    assert caught.value.exit_code == 9
    assert caught.value.code.startswith("model_")


def test_random_checkpoint_fixture_says_it_is_untrained(tmp_path: Path) -> None:
    path = make_random_checkpoint(tmp_path / "r.safetensors", input_size=96)
    model = load_checkpoint(path)
    assert model.config.trained is False
    assert model.config.input_size == 96


def test_square_framing_travels_with_the_checkpoint(tmp_path: Path) -> None:
    config = ModelConfig(input_size=64, face_margin=0.0, face_square_scale=1.085, face_shift_y=0.087)
    path = save_checkpoint(DeepfakeClassifier(config), tmp_path / "square.safetensors")
    loaded = load_checkpoint(path).config
    assert loaded.crop_options() == {"margin": 0.0, "square_scale": 1.085, "shift_y": 0.087}
    # Checkpoints written before the square framing existed keep the box framing.
    box = ModelConfig(face_margin=0.3).crop_options()
    assert box == {"margin": 0.3, "square_scale": None, "shift_y": 0.0}
