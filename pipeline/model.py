"""The face classifier (RGB + SRM residuals → timm EfficientNet → one logit), its checkpoints' weights.

A checkpoint is one safetensors file: the weights plus the JSON metadata of
``pipeline.checkpoint.ModelConfig`` under the header key ``deepfakestream``. Nothing is ever
unpickled. Files without it whose tensors are ``encoder.*`` + ``fc.*`` over a
``tf_efficientnet_b7_ns`` encoder (the DFDC-winner layout in safetensors) load with that
solution's preprocessing.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.checkpoint import (
    DEFAULT_MODEL_PATH,
    METADATA_KEY,
    ModelConfig,
    default_normalisation,
    file_sha256,
    read_model_config,
)
from pipeline.errors import ModelError
from pipeline.srm import SRMFilter

__all__ = [
    "DEFAULT_MODEL_PATH",
    "METADATA_KEY",
    "Classifier",
    "DeepfakeClassifier",
    "ModelConfig",
    "default_normalisation",
    "file_sha256",
    "load_checkpoint",
    "resolve_device",
    "save_checkpoint",
]


class DeepfakeClassifier(nn.Module):
    """Pixels in [0, 1] (N, 3, H, W) → one logit per image; P(fake) = sigmoid(logit).

    With SRM on, the encoder sees 12 channels: normalised RGB and the 9 SRM residuals. The logit
    is calibrated by the checkpoint's offset and temperature (none while training).
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        import timm  # imported here so that reading metadata never needs timm

        self.config = config
        self.srm = SRMFilter(3, config.srm_truncation) if config.use_srm else None
        in_chans = 3 + (self.srm.out_channels if self.srm is not None else 0)
        try:
            self.encoder = timm.create_model(
                config.architecture, pretrained=False, num_classes=0, in_chans=in_chans
            )
        except RuntimeError as exc:  # timm raises RuntimeError for unknown names
            raise ModelError(f"unknown architecture {config.architecture!r}: {exc}") from exc
        self.dropout = nn.Dropout(config.dropout)
        num_features: int = self.encoder.num_features  # type: ignore[assignment]
        self.fc = nn.Linear(num_features, 1)
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std).view(1, 3, 1, 1), persistent=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        rgb = (pixels - self.mean.to(pixels.dtype)) / self.std.to(pixels.dtype)
        inputs = rgb if self.srm is None else torch.cat([rgb, self.srm(pixels)], dim=1)
        features = self.encoder(inputs)
        logits = self.fc(self.dropout(features)).squeeze(1)
        temperature, offset = float(self.config.temperature), float(self.config.logit_offset)
        if temperature == 1.0 and offset == 0.0:
            return logits
        return (logits - offset) / temperature


def save_checkpoint(model: DeepfakeClassifier, path: str | Path, config: ModelConfig | None = None) -> Path:
    """Write weights and metadata atomically (a temporary file renamed into place)."""
    from safetensors.torch import save_file

    config = config or model.config
    config.validate()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={METADATA_KEY: config.to_json()})
    # safetensors creates the file owner-only; a checkpoint is read by workers of other users.
    tmp.chmod(0o644)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path, *, device: str | torch.device = "cpu") -> DeepfakeClassifier:
    """Rebuild the network from a safetensors checkpoint; raises ModelError on anything off."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if path.suffix in (".pt", ".pth", ".pkl", ".bin", ".ckpt") and path.suffix != ".safetensors":
        raise ModelError(
            f"{path.name}: only safetensors checkpoints are loaded (pickled files can run code); "
            "convert it to .safetensors first",
            code="model_untrusted_format",
        )
    config = read_model_config(path)
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{path.name} could not be read: {exc}") from exc
    model = DeepfakeClassifier(config)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # tensors of the wrong shape
        first = str(exc).strip().splitlines()[-1].strip()
        raise ModelError(f"{path.name} does not match {config.architecture}: {first}") from exc
    if result.missing_keys or result.unexpected_keys:
        missing = ", ".join(result.missing_keys[:5])
        unexpected = ", ".join(result.unexpected_keys[:5])
        raise ModelError(
            f"{path.name} does not match {config.architecture}: missing [{missing}] unexpected [{unexpected}]"
        )
    model.eval()
    return model.to(device)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError("--device cuda was asked for but no CUDA device is available", code="no_cuda")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise ModelError(f"unknown device {device!r}; use auto, cpu or cuda")
    return torch.device(device)


class Classifier:
    """Scores face crops. Loads lazily (thread-safe), warms up once, batches, fp16 on CUDA.

    ``predict`` takes uint8 crops (N, S, S, 3) already cut by ``pipeline.crop.crop_face`` at the
    checkpoint's ``input_size`` and returns P(fake) per crop.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        device: str = "auto",
        batch_size: int = 32,
        tta_flip: bool = False,
    ) -> None:
        self.path = Path(path) if path is not None else DEFAULT_MODEL_PATH
        self.device = resolve_device(device)
        self.batch_size = batch_size
        # Test-time augmentation: each crop and its mirror image, logits averaged (twice the cost).
        self.tta_flip = tta_flip
        self._model: DeepfakeClassifier | None = None
        self._lock = threading.Lock()
        self._sha256: str | None = None

    @property
    def model(self) -> DeepfakeClassifier:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    model = load_checkpoint(self.path, device=self.device)
                    if self.device.type == "cuda":
                        model = model.half()
                    # NHWC crops arrive channels-last already; oneDNN's depthwise convolutions
                    # run about a fifth faster in that layout on CPU.
                    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
                    self._model = model
                    self._warm_up()
        return self._model

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = file_sha256(self.path)
        return self._sha256

    def describe(self) -> dict[str, Any]:
        config = self.config
        return {
            "name": config.name,
            "version": config.version,
            "sha256": self.sha256,
            "trained": bool(config.trained),
        }

    def _warm_up(self) -> None:
        assert self._model is not None
        size = self._model.config.input_size
        self._predict(np.zeros((1, size, size, 3), dtype=np.uint8))

    def predict(self, crops: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        model = self.model  # loads on first use
        batch = np.asarray(crops)
        if batch.ndim != 4 or batch.shape[-1] != 3 or batch.dtype != np.uint8:
            raise ValueError(f"expected uint8 crops (N, S, S, 3), got {batch.dtype} {batch.shape}")
        size = model.config.input_size
        if batch.shape[1:3] != (size, size):
            raise ValueError(f"crops must be {size}×{size}, got {batch.shape[1]}×{batch.shape[2]}")
        if len(batch) == 0:
            return np.zeros((0,), dtype=np.float32)
        return self._predict(batch)

    @torch.inference_mode()
    def _predict(self, batch: np.ndarray) -> np.ndarray:
        assert self._model is not None
        dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        out: list[np.ndarray] = []
        for start in range(0, len(batch), self.batch_size):
            chunk = torch.from_numpy(batch[start : start + self.batch_size]).to(self.device)
            pixels = chunk.permute(0, 3, 1, 2).to(dtype) / 255.0
            logits = self._model(pixels).float()
            if self.tta_flip:
                logits = (logits + self._model(pixels.flip(3)).float()) / 2.0
            out.append(torch.sigmoid(logits).cpu().numpy())
        return np.concatenate(out).astype(np.float32)
