"""The face classifier (RGB + SRM residuals → timm EfficientNet → one logit) and its checkpoints.

A checkpoint is one safetensors file: the weights, plus a JSON document under the header
metadata key ``deepfakestream`` that holds everything needed to use them (architecture, input
size, normalisation, SRM on/off, face margin, threshold, provenance, metrics). Nothing is ever
unpickled.

Files with no such metadata whose tensors are ``encoder.*`` + ``fc.*`` over a
``tf_efficientnet_b7_ns`` encoder (the DFDC-winner layout, converted to safetensors) load too,
with that solution's preprocessing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

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

METADATA_KEY = "deepfakestream"
FORMAT_VERSION = 1
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "deepfakestream-b0.safetensors"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Google's EfficientNet-Lite weights were trained on RGB scaled to [-1, 1].
LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)


def default_normalisation(architecture: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(mean, std) an architecture's pretrained weights expect of RGB in [0, 1]."""
    if architecture.startswith("tf_efficientnet_lite"):
        return LITE_MEAN, LITE_STD
    return IMAGENET_MEAN, IMAGENET_STD


@dataclass
class ModelConfig:
    """What a checkpoint says about itself: enough to rebuild the network and feed it right."""

    architecture: str = "efficientnet_b0"
    input_size: int = 224
    use_srm: bool = True
    srm_truncation: float = 3.0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    # Fraction of the detector's box added to its width and height before the square crop:
    # must match how the training crops were framed.
    face_margin: float = 0.3
    # When set, faces are cut as squares of this many box widths, moved down by
    # ``face_shift_y`` × the side (``pipeline.crop.square_box``) and ``face_margin`` is unused.
    face_square_scale: float | None = None
    face_shift_y: float = 0.0
    threshold: float = 0.5
    # The network's logit is divided by this before the sigmoid (temperature scaling, fitted on
    # the validation split so that P(fake) is a calibrated probability).
    temperature: float = 1.0
    # Scores in [low, high) around the threshold are reported as inconclusive; None: no band.
    inconclusive_band: tuple[float, float] | None = None
    # One sentence for people reading a verdict: what the model was trained on, what it misses.
    caveat: str = ""
    dropout: float = 0.2
    name: str = "deepfakestream-b0"
    version: str = "0.0.0-untrained"
    trained: bool = False
    created_at: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    layout: str = "deepfakestream"

    def to_json(self) -> str:
        doc = dataclasses.asdict(self)
        doc["format_version"] = FORMAT_VERSION
        return json.dumps(doc, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"checkpoint metadata is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise ModelError("checkpoint metadata must be a JSON object")
        version = doc.pop("format_version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise ModelError(f"unsupported checkpoint format version {version!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise ModelError(f"unknown checkpoint metadata fields: {', '.join(unknown)}")
        try:
            for key in ("mean", "std"):
                if key in doc:
                    doc[key] = tuple(float(v) for v in doc[key])
            if doc.get("inconclusive_band") is not None:
                low, high = doc["inconclusive_band"]
                doc["inconclusive_band"] = (float(low), float(high))
            config = cls(**doc)
            config.validate()
        except (TypeError, ValueError) as exc:  # wrong types: "input_size": "big", "mean": 3
            raise ModelError(f"bad checkpoint metadata: {exc}") from exc
        return config

    def crop_options(self) -> dict[str, Any]:
        """``crop_face`` keyword arguments that frame a face as this model was trained."""
        return {
            "margin": float(self.face_margin),
            "square_scale": None if self.face_square_scale is None else float(self.face_square_scale),
            "shift_y": float(self.face_shift_y),
        }

    def validate(self) -> None:
        if not 32 <= int(self.input_size) <= 1024:
            raise ModelError(f"input_size {self.input_size} is outside 32–1024")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            raise ModelError("mean and std must be three numbers, std positive")
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise ModelError(f"threshold {self.threshold} is outside [0, 1]")
        if not 0.01 <= float(self.temperature) <= 100.0:
            raise ModelError(f"temperature {self.temperature} is outside [0.01, 100]")
        if self.inconclusive_band is not None:
            low, high = self.inconclusive_band
            if not 0.0 <= float(low) <= float(self.threshold) <= float(high) <= 1.0:
                raise ModelError(
                    f"inconclusive_band {self.inconclusive_band} must lie in [0, 1] around the threshold"
                )
        if not 0.0 <= float(self.face_margin) <= 2.0:
            raise ModelError(f"face_margin {self.face_margin} is outside [0, 2]")
        if self.face_square_scale is not None and not 0.5 <= float(self.face_square_scale) <= 4.0:
            raise ModelError(f"face_square_scale {self.face_square_scale} is outside [0.5, 4]")
        if not -0.5 <= float(self.face_shift_y) <= 0.5:
            raise ModelError(f"face_shift_y {self.face_shift_y} is outside [-0.5, 0.5]")
        if self.layout not in ("deepfakestream", "dfdc_winner"):
            raise ModelError(f"unknown layout {self.layout!r}")


class DeepfakeClassifier(nn.Module):
    """Pixels in [0, 1] (N, 3, H, W) → one logit per image; P(fake) = sigmoid(logit).

    With SRM on, the encoder sees 12 channels: normalised RGB and the 9 SRM residuals. The logit
    is divided by the checkpoint's temperature (1 while training).
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
        temperature = float(self.config.temperature)
        return logits if temperature == 1.0 else logits / temperature


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


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_header(path: Path) -> tuple[dict[str, str], list[str]]:
    """Parse the safetensors header by hand so a bad file gets a clear error, not a panic."""
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise ModelError(f"model file not found: {path}", code="model_not_found") from exc
    if size < 8:
        raise ModelError(f"{path} is not a safetensors file (too short)")
    with open(path, "rb") as handle:
        header_len = int.from_bytes(handle.read(8), "little")
        if header_len <= 0 or header_len > min(size - 8, 100 * 1024 * 1024):
            raise ModelError(f"{path} is not a safetensors file (bad header length)")
        raw = handle.read(header_len)
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path} is not a safetensors file (header is not JSON)") from exc
    if not isinstance(header, dict):
        raise ModelError(f"{path} is not a safetensors file (header is not an object)")
    metadata = header.pop("__metadata__", None) or {}
    return metadata, list(header)


def _dfdc_winner_config() -> ModelConfig:
    return ModelConfig(
        architecture="tf_efficientnet_b7",
        input_size=380,
        use_srm=False,
        face_margin=0.3,
        threshold=0.5,
        dropout=0.0,
        name="dfdc-winner-b7",
        version="external",
        trained=True,
        layout="dfdc_winner",
    )


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
    metadata, keys = _read_header(path)
    if METADATA_KEY in metadata:
        config = ModelConfig.from_json(metadata[METADATA_KEY])
    elif keys and all(k.startswith(("encoder.", "fc.")) for k in keys) and "fc.weight" in keys:
        config = _dfdc_winner_config()
    else:
        raise ModelError(f"{path.name} has no {METADATA_KEY!r} metadata and is not a known layout")
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
            "tta_flip": self.tta_flip,
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
