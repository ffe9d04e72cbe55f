"""Training augmentations for face crops: the degradations deepfakes meet in the wild.

Every function takes and returns an RGB uint8 (H, W, 3) image of the same shape and draws its
randomness from the ``numpy.random.Generator`` it is given, so a seeded run is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "Augmenter",
    "color_jitter",
    "cutout",
    "downscale_upscale",
    "gaussian_blur",
    "gaussian_noise",
    "h264_like",
    "horizontal_flip",
    "jpeg_compress",
    "pair_degrade",
    "shift_scale_rotate",
]


def _check(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")


def jpeg_compress(image: np.ndarray, *, quality: int) -> np.ndarray:
    """Encode and decode as JPEG at ``quality`` (1–100)."""
    _check(image)
    ok, encoded = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    if decoded is None:
        raise ValueError("JPEG decoding failed")
    return np.ascontiguousarray(decoded[:, :, ::-1])


def h264_like(image: np.ndarray, *, quality: int) -> np.ndarray:
    """Approximate a video codec's loss: 4:2:0 chroma subsampling, then blocky JPEG luma.

    A real H.264 round trip per crop would cost an ffmpeg process per image; chroma
    subsampling plus coarse DCT quantisation reproduces the two artefacts that matter most.
    """
    _check(image)
    ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
    height, width = image.shape[:2]
    chroma = cv2.resize(
        ycrcb[:, :, 1:], (max(1, width // 2), max(1, height // 2)), interpolation=cv2.INTER_AREA
    )
    ycrcb[:, :, 1:] = cv2.resize(chroma, (width, height), interpolation=cv2.INTER_LINEAR)
    return jpeg_compress(cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB), quality=quality)


def gaussian_blur(image: np.ndarray, *, sigma: float) -> np.ndarray:
    _check(image)
    return cv2.GaussianBlur(image, (0, 0), sigmaX=float(sigma))


def gaussian_noise(image: np.ndarray, *, rng: np.random.Generator, std: float) -> np.ndarray:
    """Additive Gaussian noise of ``std`` grey levels."""
    _check(image)
    noisy = image.astype(np.float32) + rng.normal(0.0, std, image.shape).astype(np.float32)
    return np.clip(noisy + 0.5, 0, 255).astype(np.uint8)


def color_jitter(
    image: np.ndarray, *, brightness: float, contrast: float, saturation: float, hue_shift: float
) -> np.ndarray:
    """Brightness (added, in [-1, 1] of full scale), contrast and saturation (factors), hue (degrees)."""
    _check(image)
    pixels = image.astype(np.float32)
    mean = pixels.mean()
    pixels = (pixels - mean) * contrast + mean + brightness * 255.0
    pixels = np.clip(pixels, 0, 255).astype(np.uint8)
    if saturation != 1.0 or hue_shift != 0.0:
        hsv = cv2.cvtColor(pixels, cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[:, :, 0] = (hsv[:, :, 0] + hue_shift / 2.0) % 180.0  # OpenCV hue is degrees / 2
        hsv[:, :, 1] = np.clip(hsv[:, :, 1] * saturation, 0, 255)
        pixels = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    return pixels


def horizontal_flip(image: np.ndarray) -> np.ndarray:
    _check(image)
    return np.ascontiguousarray(image[:, ::-1])


def downscale_upscale(image: np.ndarray, *, scale: float) -> np.ndarray:
    """Shrink isotropically by ``scale`` (0–1) and enlarge back: the loss of a low-resolution source."""
    _check(image)
    height, width = image.shape[:2]
    small = cv2.resize(
        image, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
    )
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def cutout(image: np.ndarray, *, rng: np.random.Generator, fraction: float) -> np.ndarray:
    """Grey out one random rectangle whose sides are ``fraction`` of the image's."""
    _check(image)
    height, width = image.shape[:2]
    box_h, box_w = max(1, int(height * fraction)), max(1, int(width * fraction))
    top = int(rng.integers(0, height - box_h + 1))
    left = int(rng.integers(0, width - box_w + 1))
    out = image.copy()
    out[top : top + box_h, left : left + box_w] = 127
    return out


def shift_scale_rotate(
    image: np.ndarray, *, shift: tuple[float, float], scale: float, angle: float
) -> np.ndarray:
    """Small affine jitter around the centre (shift as fractions of the size), edges reflected."""
    _check(image)
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2.0, height / 2.0), angle, scale)
    matrix[0, 2] += shift[0] * width
    matrix[1, 2] += shift[1] * height
    return cv2.warpAffine(
        image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )


@dataclass(frozen=True)
class Augmenter:
    """The training-time chain. ``strength`` in [0, 1] scales every probability; 0 is the identity."""

    strength: float = 1.0

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check(image)
        p = float(np.clip(self.strength, 0.0, 1.0))
        if p == 0.0:
            return image
        out = image
        if rng.random() < 0.5:
            out = horizontal_flip(out)
        if rng.random() < 0.5 * p:
            out = shift_scale_rotate(
                out,
                shift=(float(rng.uniform(-0.05, 0.05)), float(rng.uniform(-0.05, 0.05))),
                scale=float(rng.uniform(0.92, 1.08)),
                angle=float(rng.uniform(-10, 10)),
            )
        if rng.random() < 0.5 * p:
            out = color_jitter(
                out,
                brightness=float(rng.uniform(-0.1, 0.1)),
                contrast=float(rng.uniform(0.8, 1.2)),
                saturation=float(rng.uniform(0.8, 1.2)),
                hue_shift=float(rng.uniform(-8, 8)),
            )
        # One degradation of the resolution at most: they compound badly on small crops.
        roll = rng.random()
        if roll < 0.15 * p:
            out = downscale_upscale(out, scale=float(rng.uniform(0.5, 0.9)))
        elif roll < 0.3 * p:
            out = gaussian_blur(out, sigma=float(rng.uniform(0.3, 1.2)))
        if rng.random() < 0.15 * p:
            out = gaussian_noise(out, rng=rng, std=float(rng.uniform(2, 8)))
        roll = rng.random()
        if roll < 0.25 * p:
            out = jpeg_compress(out, quality=int(rng.integers(40, 96)))
        elif roll < 0.4 * p:
            out = h264_like(out, quality=int(rng.integers(50, 91)))
        if rng.random() < 0.2 * p:
            out = cutout(out, rng=rng, fraction=float(rng.uniform(0.15, 0.35)))
        return out


def pair_degrade(
    images: tuple[np.ndarray, ...], rng: np.random.Generator, augment: Augmenter
) -> tuple[np.ndarray, ...]:
    """Degrade every image of a pair (a real face and its self-blend) in exactly the same way.

    A self-blend's blended region was resampled and lost the JPEG block traces its real twin
    keeps; a network can learn that difference instead of the blend. So both members are
    resampled (down and back up) and re-compressed with the same parameters, which erases the
    traces of their past on both, and then go through the augmentation chain with the same
    draws. The random choices come from one seed drawn from ``rng``.
    """
    seed = int(rng.integers(2**63))
    out = []
    for image in images:
        _check(image)
        local = np.random.default_rng(seed)
        degraded = image
        if local.random() < 0.8:
            degraded = downscale_upscale(degraded, scale=float(local.uniform(0.5, 0.95)))
        quality = int(local.integers(50, 96))
        if local.random() < 0.5:
            degraded = jpeg_compress(degraded, quality=quality)
        else:
            degraded = h264_like(degraded, quality=quality)
        out.append(augment(degraded, local))
    return tuple(out)
