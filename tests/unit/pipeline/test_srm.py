"""SRM filter: the kernel values of Zhou et al. are pinned, and the residuals behave as high-pass filters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.srm import SRM_KERNELS, SRMFilter, srm_kernels

KB = np.array(
    [[0, 0, 0, 0, 0], [0, -1, 2, -1, 0], [0, 2, -4, 2, 0], [0, -1, 2, -1, 0], [0, 0, 0, 0, 0]]
) / 4
KV = np.array(
    [[-1, 2, -2, 2, -1], [2, -6, 8, -6, 2], [-2, 8, -12, 8, -2], [2, -6, 8, -6, 2], [-1, 2, -2, 2, -1]]
) / 12
SECOND_ORDER_H = np.array(
    [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 1, -2, 1, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
) / 2


def test_kernels_are_the_published_values() -> None:
    kernels = srm_kernels()
    assert kernels.shape == (3, 5, 5)
    assert kernels.dtype == np.float32
    np.testing.assert_array_equal(kernels[0], KB.astype(np.float32))
    np.testing.assert_array_equal(kernels[1], KV.astype(np.float32))
    np.testing.assert_array_equal(kernels[2], SECOND_ORDER_H.astype(np.float32))
    # Each is a high-pass filter: its weights sum to zero.
    assert all(abs(float(k.sum())) < 1e-6 for k in kernels)


def test_kernels_copy_cannot_alter_the_originals() -> None:
    copy = srm_kernels()
    copy[:] = 7
    assert float(SRM_KERNELS[0][2, 2]) == -1.0


def test_impulse_response_is_each_kernel_over_truncation_on_its_own_channel() -> None:
    srm = SRMFilter(in_channels=3, truncation=3.0)
    pixels = torch.zeros(1, 3, 9, 9)
    pixels[0, 1, 4, 4] = 1 / 255  # one grey level up in the green channel
    out = srm(pixels)[0].numpy()
    assert out.shape == (9, 9, 9)
    # Output channel 3·c + k is kernel k applied to input channel c: only 3..5 respond.
    assert np.abs(out[[0, 1, 2, 6, 7, 8]]).max() == 0
    for k, kernel in enumerate((KB, KV, SECOND_ORDER_H)):
        # The kernels are symmetric, so convolution and correlation agree.
        np.testing.assert_allclose(out[3 + k, 2:7, 2:7], kernel / 3.0, atol=1e-6)


def test_flat_image_has_no_residual_and_texture_has_some() -> None:
    srm = SRMFilter()
    flat = torch.full((1, 3, 32, 32), 0.4)
    rng = np.random.default_rng(0)
    textured = torch.from_numpy(rng.integers(0, 256, size=(1, 3, 32, 32)).astype(np.float32) / 255)
    flat_out = srm(flat)[:, :, 2:-2, 2:-2]  # away from the zero-padded border
    textured_out = srm(textured)[:, :, 2:-2, 2:-2]
    assert float(flat_out.abs().max()) < 1e-5
    assert float(textured_out.abs().mean()) > 0.3
    # A smooth ramp is also invisible to these second-order filters.
    ramp = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(1, 3, 32, 32).contiguous()
    assert float(srm(ramp)[:, :, 2:-2, 2:-2].abs().max()) < 1e-4


def test_residuals_are_truncated_into_unit_range() -> None:
    srm = SRMFilter(truncation=2.0)
    pixels = torch.zeros(1, 3, 16, 16)
    pixels[..., ::2, ::2] = 1.0  # a harsh checkerboard: raw residuals in the hundreds
    out = srm(pixels)
    assert float(out.max()) == pytest.approx(1.0)
    assert float(out.min()) == pytest.approx(-1.0)


def test_kernels_are_not_saved_or_trained() -> None:
    srm = SRMFilter()
    assert list(srm.parameters()) == []
    assert "weight" not in srm.state_dict()


def test_rejects_non_positive_truncation() -> None:
    with pytest.raises(ValueError, match="truncation"):
        SRMFilter(truncation=0)
