"""Fixed SRM noise-residual filters (Zhou et al., CVPR 2018, after Fridrich & Kodovsky's rich models).

Three 5×5 high-pass kernels, each applied to every colour channel separately (a depthwise
convolution, so 3 channels in → 9 residual channels out), never trained:

- KB, the 3×3 "square" kernel embedded in 5×5, divided by 4;
- KV, the 5×5 "square" kernel, divided by 12;
- the second-order horizontal kernel [1, -2, 1] embedded in 5×5, divided by 2.

Residuals are computed on 0–255 pixel values and truncated at ``truncation`` (Fridrich's T),
then divided by it, so they land in [-1, 1] whatever the camera.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["SRM_KERNELS", "SRMFilter", "srm_kernels"]

_KB = np.array(
    [
        [0, 0, 0, 0, 0],
        [0, -1, 2, -1, 0],
        [0, 2, -4, 2, 0],
        [0, -1, 2, -1, 0],
        [0, 0, 0, 0, 0],
    ],
    dtype=np.float32,
) / 4.0

_KV = np.array(
    [
        [-1, 2, -2, 2, -1],
        [2, -6, 8, -6, 2],
        [-2, 8, -12, 8, -2],
        [2, -6, 8, -6, 2],
        [-1, 2, -2, 2, -1],
    ],
    dtype=np.float32,
) / 12.0

_SECOND_ORDER_H = np.array(
    [
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 1, -2, 1, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ],
    dtype=np.float32,
) / 2.0

SRM_KERNELS: tuple[np.ndarray, ...] = (_KB, _KV, _SECOND_ORDER_H)


def srm_kernels() -> np.ndarray:
    """The three kernels as a (3, 5, 5) float32 array (a copy: callers may not alter the originals)."""
    return np.stack(SRM_KERNELS).copy()


class SRMFilter(nn.Module):
    """Depthwise SRM residuals: (N, C, H, W) pixels in [0, 1] → (N, 3·C, H, W) in [-1, 1].

    Output channel ``3·c + k`` is kernel ``k`` applied to input channel ``c``.
    """

    weight: torch.Tensor

    def __init__(self, in_channels: int = 3, truncation: float = 3.0) -> None:
        super().__init__()
        if truncation <= 0:
            raise ValueError("truncation must be positive")
        self.in_channels = in_channels
        self.truncation = float(truncation)
        kernels = torch.from_numpy(srm_kernels())  # (3, 5, 5)
        weight = kernels.unsqueeze(1).repeat(in_channels, 1, 1, 1)  # (3·C, 1, 5, 5)
        # Not a parameter and not saved: the kernels are constants of the method, so a checkpoint
        # can never smuggle in different ones.
        self.register_buffer("weight", weight, persistent=False)

    @property
    def out_channels(self) -> int:
        return 3 * self.in_channels

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        weight = self.weight.to(dtype=pixels.dtype)
        residual = F.conv2d(pixels * 255.0, weight, padding=2, groups=self.in_channels)
        return residual.clamp(-self.truncation, self.truncation) / self.truncation
