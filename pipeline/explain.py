"""Grad-CAM heatmaps: where in a face crop the classifier found its evidence for "fake".

Gradient-weighted class activation mapping (Selvaraju et al., ICCV 2017): the gradient of the
fake logit with respect to the feature map of the EfficientNet's last convolutional stage
(``conv_head`` with its norm and activation, the map the pooling layer averages), averaged over
space, weights that map's channels; their positive sum, upsampled to the crop, is the heatmap.
Only the few most suspicious faces of a segment are explained: each needs a backward pass.

A map's own peak is 1 whatever the face scored; before it is drawn, ``absolute_heatmap`` puts it on
the one scale every face shares (``core.heatmaps``), so a face the model found genuine stays cold.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.heatmaps import HEATMAP_ALPHA, colour_at
from pipeline.errors import ModelError
from pipeline.model import DeepfakeClassifier

__all__ = [
    "GradCam",
    "Heatmaps",
    "TopCrops",
    "absolute_heatmap",
    "encode_jpeg",
    "overlay_heatmap",
    "target_layer",
    "top_indices",
]

_CHUNK = 8  # crops per backward pass: bounds activation memory


@dataclass(frozen=True)
class Heatmaps:
    scores: np.ndarray  # (N,) P(fake) of each crop, from the same forward pass
    maps: np.ndarray  # (N, S, S) float32 in [0, 1]; all zeros where nothing pointed to "fake"


def target_layer(model: DeepfakeClassifier) -> nn.Module:
    """The module whose output is the encoder's last convolutional feature map."""
    encoder = model.encoder
    for name in ("bn2", "conv_head"):
        module = getattr(encoder, name, None)
        if isinstance(module, nn.Module) and not isinstance(module, nn.Identity):
            return module
    blocks = getattr(encoder, "blocks", None)
    if isinstance(blocks, nn.Sequential) and len(blocks):
        return blocks[-1]
    raise ModelError(
        f"Grad-CAM needs an EfficientNet-like encoder (conv_head/bn2 or blocks); "
        f"{model.config.architecture} has neither",
        code="model_not_explainable",
    )


def top_indices(scores: Sequence[float] | np.ndarray, k: int) -> list[int]:
    """Positions of the ``k`` highest scores, highest first (ties: earlier first)."""
    if k <= 0:
        return []
    values = np.asarray(scores, dtype=np.float64)
    order = sorted(range(len(values)), key=lambda i: (-values[i], i))
    return order[:k]


class TopCrops:
    """Keeps the ``k`` highest-scoring crops seen so far, so a segment decoded in chunks can
    explain its most suspicious faces without holding every crop."""

    def __init__(self, k: int) -> None:
        self.k = max(int(k), 0)
        self._kept: list[tuple[float, int, np.ndarray]] = []  # (score, position, crop)

    def offer(self, scores: Sequence[float] | np.ndarray, crops: Sequence[np.ndarray], *, first: int) -> None:
        """``crops[i]`` scored ``scores[i]`` and is face number ``first + i`` of the segment."""
        if self.k == 0:
            return
        for i in top_indices(scores, self.k):
            self._kept.append((float(scores[i]), first + i, crops[i]))
        self._kept.sort(key=lambda item: (-item[0], item[1]))
        del self._kept[self.k :]

    def items(self) -> list[tuple[int, float, np.ndarray]]:
        """(position, score, crop), highest score first."""
        return [(position, score, crop) for score, position, crop in self._kept]


class GradCam:
    """Heatmaps for uint8 crops (N, S, S, 3) at the model's input size. One call at a time per
    model: the hook it places sees every forward pass while it is in place."""

    def __init__(self, model: DeepfakeClassifier) -> None:
        self.model = model
        self.layer = target_layer(model)
        self._lock = threading.Lock()

    def explain(self, crops: np.ndarray) -> Heatmaps:
        batch = np.asarray(crops)
        size = self.model.config.input_size
        if batch.ndim != 4 or batch.shape[-1] != 3 or batch.dtype != np.uint8:
            raise ValueError(f"expected uint8 crops (N, S, S, 3), got {batch.dtype} {batch.shape}")
        if batch.shape[1:3] != (size, size):
            raise ValueError(f"crops must be {size}×{size}, got {batch.shape[1]}×{batch.shape[2]}")
        if len(batch) == 0:
            return Heatmaps(np.zeros((0,), np.float32), np.zeros((0, size, size), np.float32))
        scores, maps = [], []
        with self._lock:
            for start in range(0, len(batch), _CHUNK):
                chunk_scores, chunk_maps = self._explain(batch[start : start + _CHUNK])
                scores.append(chunk_scores)
                maps.append(chunk_maps)
        return Heatmaps(np.concatenate(scores), np.concatenate(maps))

    def _explain(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        parameter = next(self.model.parameters())
        captured: list[torch.Tensor] = []

        def keep(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            captured.append(output)

        handle = self.layer.register_forward_hook(keep)
        try:
            with torch.enable_grad():
                pixels = torch.from_numpy(chunk).to(parameter.device).permute(0, 3, 1, 2)
                pixels = (pixels.to(parameter.dtype) / 255.0).contiguous(memory_format=torch.channels_last)
                # Gradients must reach the feature map even if every weight is frozen.
                pixels.requires_grad_(True)
                logits = self.model(pixels)
                if not captured:
                    raise ModelError("the Grad-CAM layer was not used by the forward pass")
                activation = captured[-1]
                # Samples are independent in eval mode, so one backward pass of the summed logits
                # gives each sample its own gradient.
                (gradient,) = torch.autograd.grad(logits.sum(), activation)
        finally:
            handle.remove()
        weights = gradient.float().mean(dim=(2, 3), keepdim=True)
        cam = torch.relu((weights * activation.detach().float()).sum(dim=1, keepdim=True))
        size = self.model.config.input_size
        cam = F.interpolate(cam, size=(size, size), mode="bilinear", align_corners=False)[:, 0]
        peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1)
        normalised = torch.where(peak > 1e-12, cam / peak, torch.zeros_like(cam))
        scores = torch.sigmoid(logits.detach().float())
        return scores.cpu().numpy().astype(np.float32), normalised.cpu().numpy().astype(np.float32)


# The colour map of core.heatmaps as a 256-entry RGB table, so the overlay draws exactly the
# colours the legend shows.
_COLOUR_TABLE = np.array([colour_at(level / 255.0) for level in range(256)], dtype=np.float32)


def absolute_heatmap(relative: np.ndarray, score: float) -> np.ndarray:
    """A Grad-CAM map scaled to its own peak, put on the absolute scale every face shares: the
    peak becomes the face's P(fake), so a 0.04 face cannot glow as red as a 0.99 one."""
    weight = min(max(float(score), 0.0), 1.0) if np.isfinite(score) else 0.0
    heat: np.ndarray = np.clip(np.nan_to_num(relative.astype(np.float32)), 0.0, 1.0) * np.float32(weight)
    return heat


def overlay_heatmap(crop: np.ndarray, heatmap: np.ndarray, *, alpha: float = HEATMAP_ALPHA) -> np.ndarray:
    """The crop (RGB uint8) with the heatmap ([0, 1] on the absolute scale, any size) blended over it
    in the colours of ``core.heatmaps``."""
    if crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 crop, got {crop.dtype} {crop.shape}")
    height, width = crop.shape[:2]
    heat: np.ndarray = np.clip(np.nan_to_num(heatmap.astype(np.float32)), 0.0, 1.0)
    if heat.shape != (height, width):
        heat = np.asarray(cv2.resize(heat, (width, height), interpolation=cv2.INTER_LINEAR))
    colours = _COLOUR_TABLE[np.rint(heat * 255.0).astype(np.uint8)]
    # Cold regions keep the face visible: the colour's weight follows the heat.
    weight = (alpha * heat)[..., None]
    blended = crop.astype(np.float32) * (1.0 - weight) + colours * weight
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def encode_jpeg(image: np.ndarray, *, quality: int = 88) -> bytes:
    """RGB uint8 → JPEG bytes."""
    ok, encoded = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    if not ok:
        raise ValueError("the image could not be encoded as JPEG")
    return bytes(encoded.tobytes())
