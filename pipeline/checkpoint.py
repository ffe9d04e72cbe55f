"""Checkpoint metadata without torch: the config a checkpoint carries, its header, its hash.

The API and the worker's start-up check read checkpoints through this module; only building the
network (``pipeline.model``) needs torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import ModelError

__all__ = [
    "DEFAULT_MODEL_PATH",
    "FORMAT_VERSION",
    "METADATA_KEY",
    "ModelConfig",
    "default_normalisation",
    "dfdc_winner_config",
    "file_sha256",
    "read_header",
    "read_model_config",
]

METADATA_KEY = "deepfakestream"
FORMAT_VERSION = 1
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "deepfakestream.safetensors"

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
    # Subtracted from the logit before the temperature divides it (Platt scaling's intercept).
    logit_offset: float = 0.0
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
        if not -20.0 <= float(self.logit_offset) <= 20.0:
            raise ModelError(f"logit_offset {self.logit_offset} is outside [-20, 20]")
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


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_header(path: Path) -> tuple[dict[str, str], list[str]]:
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


def dfdc_winner_config() -> ModelConfig:
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


def read_model_config(path: str | Path) -> ModelConfig:
    """The metadata of a checkpoint, from its header alone (no weights read, no torch)."""
    path = Path(path)
    metadata, keys = read_header(path)
    if METADATA_KEY in metadata:
        return ModelConfig.from_json(metadata[METADATA_KEY])
    if keys and all(k.startswith(("encoder.", "fc.")) for k in keys) and "fc.weight" in keys:
        return dfdc_winner_config()
    raise ModelError(f"{path.name} has no {METADATA_KEY!r} metadata and is not a known layout")
