"""ImageNet initialisation: the key map is complete and right, and SRM channels join without harm."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from skimage import data as skdata

from pipeline.errors import ModelError
from pipeline.model import DeepfakeClassifier, ModelConfig, default_normalisation
from training.pretrained import imagenet_state_dict, init_encoder_from_imagenet, lukemelas_to_timm

CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


def _imagenet_top5(model: torch.nn.Module, image: np.ndarray, size: int) -> list[int]:
    resized = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    pixels = torch.from_numpy(resized).permute(2, 0, 1)[None].float() / 255.0
    with torch.inference_mode():
        probs = model(pixels * 2.0 - 1.0).softmax(1)[0]  # Lite weights take RGB in [-1, 1]
    return probs.topk(5).indices.tolist()


@pytest.mark.parametrize(
    ("architecture", "size"), [("tf_efficientnet_lite0", 224), ("tf_efficientnet_lite2", 260)]
)
def test_converted_imagenet_network_names_a_cat_and_an_espresso(architecture: str, size: int) -> None:
    import timm

    model = timm.create_model(architecture, pretrained=False)
    model.load_state_dict(imagenet_state_dict(architecture), strict=True)  # every tensor mapped
    model.eval()
    assert CAT_CLASSES & set(_imagenet_top5(model, skdata.chelsea(), size))
    assert ESPRESSO in _imagenet_top5(model, skdata.coffee(), size)


def test_random_network_does_not_pass_the_same_check() -> None:
    """The check above can fail: an unconverted network does not find the cat."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    top5 = _imagenet_top5(model, skdata.coffee(), 224)
    assert ESPRESSO not in top5


def test_unknown_tensor_names_are_refused() -> None:
    with pytest.raises(ModelError, match="unexpected pretrained tensor"):
        lukemelas_to_timm({"_blocks.0._mystery.weight": torch.zeros(1)}, [1, 2])
    with pytest.raises(ModelError, match="beyond"):
        lukemelas_to_timm({"_blocks.9._depthwise_conv.weight": torch.zeros(1)}, [1, 2])


def test_architectures_without_imagenet_weights_are_a_clear_error() -> None:
    model = DeepfakeClassifier(ModelConfig(architecture="efficientnet_b0", input_size=64))
    with pytest.raises(ModelError) as caught:
        init_encoder_from_imagenet(model.encoder, "efficientnet_b0")
    assert caught.value.code == "invalid_arguments"
    assert "tf_efficientnet_lite0" in caught.value.message


def test_srm_channels_start_at_zero_so_the_pretrained_features_are_unchanged() -> None:
    mean, std = default_normalisation("tf_efficientnet_lite0")
    assert mean == std == (0.5, 0.5, 0.5)
    with_srm = DeepfakeClassifier(
        ModelConfig(architecture="tf_efficientnet_lite0", input_size=96, use_srm=True, mean=mean, std=std)
    )
    rgb_only = DeepfakeClassifier(
        ModelConfig(architecture="tf_efficientnet_lite0", input_size=96, use_srm=False, mean=mean, std=std)
    )
    info = init_encoder_from_imagenet(with_srm.encoder, "tf_efficientnet_lite0")
    init_encoder_from_imagenet(rgb_only.encoder, "tf_efficientnet_lite0")
    assert info["sha256"].startswith("579344248a93")
    stem = with_srm.encoder.conv_stem.weight
    assert stem.shape[1] == 12 and torch.count_nonzero(stem[:, 3:]) == 0
    with_srm.eval()
    rgb_only.eval()
    pixels = torch.rand(2, 3, 96, 96)
    rgb = (pixels - 0.5) / 0.5
    with torch.inference_mode():
        srm_features = with_srm.encoder(torch.cat([rgb, with_srm.srm(pixels)], dim=1))  # type: ignore[misc]
        rgb_features = rgb_only.encoder(rgb)
    torch.testing.assert_close(srm_features, rgb_features, rtol=1e-5, atol=1e-5)
    assert float(srm_features.abs().mean()) > 0.01  # real features, not zeros
