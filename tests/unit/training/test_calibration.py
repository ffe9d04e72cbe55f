"""Temperature scaling: fitted on validation scores, applied by every checkpoint user."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import ModelError
from pipeline.model import Classifier, DeepfakeClassifier, ModelConfig, load_checkpoint, save_checkpoint
from training.calibration import apply_temperature, fit_temperature
from training.scores import binary_metrics


def _overconfident(seed: int = 0, count: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, count)
    # Two unit Gaussians at ±1: the true log-odds is 2·x, the scores report 4·x (too sure by 2).
    logits = np.where(labels == 1, 1.0, -1.0) + rng.normal(0, 1.0, count)
    probs = 1.0 / (1.0 + np.exp(-4.0 * logits))
    return labels, probs.astype(np.float32)


def test_fitted_temperature_softens_overconfident_scores_and_lowers_log_loss() -> None:
    labels, probs = _overconfident()
    temperature = fit_temperature(labels, probs)
    assert 1.7 < temperature < 2.3
    calibrated = apply_temperature(probs, temperature)
    before = binary_metrics(labels, probs, threshold=0.5)
    after = binary_metrics(labels, calibrated, threshold=0.5)
    assert after["log_loss"] < before["log_loss"] - 0.05
    assert after["auc"] == pytest.approx(before["auc"], abs=1e-6)  # a monotone map keeps the order


def test_well_calibrated_scores_keep_a_temperature_near_one() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2.0, 20000)
    labels = (rng.random(20000) < 1.0 / (1.0 + np.exp(-logits))).astype(int)
    assert fit_temperature(labels, 1.0 / (1.0 + np.exp(-logits))) == pytest.approx(1.0, abs=0.08)


def test_checkpoint_temperature_divides_the_logit(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = DeepfakeClassifier(ModelConfig(input_size=64, use_srm=False, trained=True))
    plain = save_checkpoint(model, tmp_path / "plain.safetensors")
    model.config.temperature = 2.5
    warm = save_checkpoint(model, tmp_path / "warm.safetensors")
    assert load_checkpoint(warm).config.temperature == 2.5
    crops = np.random.default_rng(0).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    p_plain = Classifier(plain, device="cpu").predict(crops).astype(np.float64)
    p_warm = Classifier(warm, device="cpu").predict(crops).astype(np.float64)
    logit = np.log(p_plain) - np.log1p(-p_plain)
    np.testing.assert_allclose(p_warm, 1.0 / (1.0 + np.exp(-logit / 2.5)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"temperature": 0.0}, "temperature"),
        ({"threshold": 0.5, "inconclusive_band": (0.6, 0.7)}, "inconclusive_band"),
        ({"threshold": 0.5, "inconclusive_band": (0.4, 1.2)}, "inconclusive_band"),
    ],
)
def test_bad_calibration_metadata_is_refused(changes: dict[str, object], message: str) -> None:
    config = ModelConfig(**changes)  # type: ignore[arg-type]
    with pytest.raises(ModelError, match=message):
        config.validate()


def test_inconclusive_band_survives_the_json_round_trip() -> None:
    config = ModelConfig(threshold=0.5, inconclusive_band=(0.4, 0.62))
    assert ModelConfig.from_json(config.to_json()).inconclusive_band == (0.4, 0.62)


def test_flip_augmentation_averages_the_logits_of_a_crop_and_its_mirror(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = DeepfakeClassifier(ModelConfig(input_size=64, use_srm=True, trained=True))
    with torch.no_grad():
        model.fc.weight.mul_(200.0)  # an untrained head barely moves: let the input show
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    crops = np.random.default_rng(2).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    plain = Classifier(path, device="cpu")
    flipped = plain.predict(np.ascontiguousarray(crops[:, :, ::-1])).astype(np.float64)
    direct = plain.predict(crops).astype(np.float64)
    both = Classifier(path, device="cpu", tta_flip=True).predict(crops).astype(np.float64)

    def logit(p: np.ndarray) -> np.ndarray:
        return np.log(p) - np.log1p(-p)

    expected = 1.0 / (1.0 + np.exp(-(logit(direct) + logit(flipped)) / 2.0))
    np.testing.assert_allclose(both, expected, rtol=1e-5, atol=1e-6)
    assert np.abs(direct - flipped).max() > 1e-4  # the mirror really is another input


def test_offset_corrects_scores_shifted_towards_fake() -> None:
    from training.calibration import apply_calibration, fit_calibration

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 8000)
    true_logit = 2.0 * (np.where(labels == 1, 1.0, -1.0) + rng.normal(0, 1.0, 8000))
    shifted = 1.0 / (1.0 + np.exp(-(true_logit + 1.5)))  # every score pushed towards FAKE
    temperature, offset = fit_calibration(labels, shifted)
    assert offset == pytest.approx(1.5, abs=0.15) and temperature == pytest.approx(1.0, abs=0.1)
    fixed = apply_calibration(shifted, temperature, offset)
    temperature_only = apply_temperature(shifted, fit_temperature(labels, shifted))
    after = binary_metrics(labels, fixed, threshold=0.5)["log_loss"]
    assert after < binary_metrics(labels, temperature_only, threshold=0.5)["log_loss"] - 0.02
    # Half the items are FAKE: calibrated scores average a half, the shifted ones far more.
    assert abs(float(fixed.mean()) - 0.5) < 0.02 < abs(float(shifted.mean()) - 0.5)


def test_checkpoint_offset_is_subtracted_before_the_temperature(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = DeepfakeClassifier(ModelConfig(input_size=64, use_srm=False, trained=True))
    plain = save_checkpoint(model, tmp_path / "plain.safetensors")
    model.config.temperature, model.config.logit_offset = 2.0, 0.8
    shifted = save_checkpoint(model, tmp_path / "shifted.safetensors")
    crops = np.random.default_rng(0).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    p_plain = Classifier(plain, device="cpu").predict(crops).astype(np.float64)
    p_shifted = Classifier(shifted, device="cpu").predict(crops).astype(np.float64)
    logit = np.log(p_plain) - np.log1p(-p_plain)
    np.testing.assert_allclose(p_shifted, 1.0 / (1.0 + np.exp(-(logit - 0.8) / 2.0)), rtol=1e-4, atol=1e-5)
    with pytest.raises(ModelError, match="logit_offset"):
        ModelConfig(logit_offset=50.0).validate()
