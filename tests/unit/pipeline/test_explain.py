"""Grad-CAM: for an encoder that ends in global average pooling and a linear head, Grad-CAM must
equal class activation mapping computed directly from the feature map and the head's weights. The
overlays share one absolute scale, and draw the colours the legend shows."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.heatmaps import legend_stops
from pipeline.explain import (
    GradCam,
    TopCrops,
    absolute_heatmap,
    encode_jpeg,
    overlay_heatmap,
    target_layer,
    top_indices,
)
from pipeline.model import Classifier, DeepfakeClassifier, ModelConfig, save_checkpoint

SIZE = 96


@pytest.fixture(scope="module")
def model() -> DeepfakeClassifier:
    torch.manual_seed(3)
    network = DeepfakeClassifier(ModelConfig(input_size=SIZE, trained=False))
    return network.eval()


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)


def _cam_from_weights(model: DeepfakeClassifier, crops: np.ndarray) -> np.ndarray:
    pixels = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
    with torch.no_grad():
        rgb = (pixels - model.mean) / model.std
        assert model.srm is not None
        features = model.encoder.forward_features(torch.cat([rgb, model.srm(pixels)], dim=1))
        weights = model.fc.weight.view(1, -1, 1, 1)
        cam = torch.relu((weights * features).sum(dim=1, keepdim=True))
        cam = F.interpolate(cam, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0]
        peak = cam.flatten(1).amax(dim=1).view(-1, 1, 1)
    return (cam / peak.clamp_min(1e-12)).numpy()


def test_gradcam_equals_cam_of_the_last_feature_map(model: DeepfakeClassifier, crops: np.ndarray) -> None:
    heatmaps = GradCam(model).explain(crops)
    expected = _cam_from_weights(model, crops)
    assert heatmaps.maps.shape == (3, SIZE, SIZE) and heatmaps.maps.dtype == np.float32
    assert np.abs(heatmaps.maps - expected).max() < 1e-4
    assert heatmaps.maps.min() >= 0.0 and heatmaps.maps.max() == pytest.approx(1.0)


def test_gradcam_scores_match_the_classifier(
    model: DeepfakeClassifier, crops: np.ndarray, tmp_path: Path
) -> None:
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    classifier = Classifier(path, device="cpu")
    heatmaps = GradCam(classifier.model).explain(crops)
    assert np.allclose(heatmaps.scores, classifier.predict(crops), atol=1e-5)
    # The explanation leaves the model as it was: no hooks, no gradients kept.
    assert not classifier.model.encoder.bn2._forward_hooks
    assert all(p.grad is None for p in classifier.model.parameters())


def test_gradcam_hooks_the_last_conv_stage(model: DeepfakeClassifier) -> None:
    assert target_layer(model) is model.encoder.bn2


def test_gradcam_refuses_wrong_crops(model: DeepfakeClassifier) -> None:
    explainer = GradCam(model)
    with pytest.raises(ValueError, match="crops must be"):
        explainer.explain(np.zeros((1, SIZE + 1, SIZE + 1, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        explainer.explain(np.zeros((1, SIZE, SIZE, 3), dtype=np.float32))
    empty = explainer.explain(np.zeros((0, SIZE, SIZE, 3), dtype=np.uint8))
    assert empty.maps.shape == (0, SIZE, SIZE)


def test_overlay_keeps_cold_pixels_and_colours_hot_ones() -> None:
    crop = np.full((40, 40, 3), 120, dtype=np.uint8)
    heat = np.zeros((10, 10), dtype=np.float32)
    heat[:, 5:] = 1.0
    out = overlay_heatmap(crop, heat)
    assert out.shape == crop.shape and out.dtype == np.uint8
    assert np.array_equal(out[:, :10], crop[:, :10])
    assert np.abs(out[:, 30:].astype(int) - 120).max() > 40
    decoded = cv2.imdecode(np.frombuffer(encode_jpeg(out), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (40, 40, 3)


def _tint(overlay: np.ndarray, crop: np.ndarray) -> np.ndarray:
    """How far each pixel of an overlay moved from the crop, summed over the channels."""
    return np.abs(overlay.astype(int) - crop.astype(int)).sum(axis=2)


def test_a_low_score_face_is_drawn_colder_than_a_high_score_one(
    model: DeepfakeClassifier, crops: np.ndarray
) -> None:
    # The same Grad-CAM map over the same (grey, so every tint shows) crop: only the face's
    # P(fake) differs.
    (relative,) = GradCam(model).explain(crops[:1]).maps
    assert relative.max() == pytest.approx(1.0)
    crop = np.full_like(crops[0], 128)
    low = _tint(overlay_heatmap(crop, absolute_heatmap(relative, 0.04)), crop)
    high = _tint(overlay_heatmap(crop, absolute_heatmap(relative, 0.99)), crop)
    # Each map's own peak no longer paints it full red: the 0.04 face barely tints its crop.
    assert low.max() <= 12, low.max()
    assert high.max() >= 100, high.max()
    assert high.mean() > 10 * max(low.mean(), 0.1), (low.mean(), high.mean())
    hottest = np.unravel_index(np.argmax(relative), relative.shape)
    assert high[hottest] > 10 * low[hottest]


def test_absolute_heatmap_is_the_map_times_the_score() -> None:
    relative = np.array([[0.0, 0.5], [1.0, np.nan]], dtype=np.float32)
    assert np.allclose(absolute_heatmap(relative, 0.5), [[0.0, 0.25], [0.5, 0.0]])
    assert absolute_heatmap(relative, float("nan")).max() == 0.0
    assert absolute_heatmap(relative, 3.0).max() == pytest.approx(1.0)


def test_the_legend_shows_the_colours_the_overlay_draws() -> None:
    grey = np.full((4, 4, 3), 128, dtype=np.uint8)
    for heat, colour in legend_stops():
        drawn = overlay_heatmap(grey, np.full((4, 4), heat, dtype=np.float32))[0, 0]
        assert np.abs(drawn.astype(int) - np.array(colour)).max() <= 2, (heat, drawn, colour)
    # Cold is the face itself, hot is red.
    assert legend_stops()[0][1] == (128, 128, 128)
    red, green, blue = legend_stops()[-1][1]
    assert red > green + 40 and red > blue + 40


def test_top_indices_and_top_crops() -> None:
    assert top_indices([0.1, 0.9, 0.5, 0.9], 3) == [1, 3, 2]
    assert top_indices([0.3], 0) == []
    kept = TopCrops(2)
    marks = [np.full((2, 2, 3), i, dtype=np.uint8) for i in range(5)]
    kept.offer(np.array([0.2, 0.8]), marks[:2], first=0)
    kept.offer(np.array([0.1, 0.95, 0.5]), marks[2:], first=2)
    assert [(position, score) for position, score, _ in kept.items()] == [(3, 0.95), (1, 0.8)]
    assert int(kept.items()[0][2][0, 0, 0]) == 3
    nothing = TopCrops(0)
    nothing.offer(np.array([0.9]), marks[:1], first=0)
    assert nothing.items() == []
