"""Self-blended images: pseudo-fakes made from one real face (after Shiohara & Yamasaki, CVPR 2022).

Written from the paper's description; pure numpy and OpenCV, seeded by the generator passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "BLEND_RATIOS",
    "REGIONS",
    "SelfBlended",
    "face_hull_mask",
    "generated_face_source",
    "lower_face_source",
    "perturb_source",
    "self_blend",
]

# Where the blend goes: the whole face (the paper's self-blend), only the mouth and jaw, as a
# lip-sync tool pastes its generated lower face back into the frame (needs 68 landmarks), or a
# face repainted whole by a generator's up-sampling decoder, as talking-head models render it.
REGIONS = ("face", "lower", "generated")

# The paper draws the blend ratio from this multiset, so a full-strength blend is the common case.
BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)


@dataclass(frozen=True)
class SelfBlended:
    image: np.ndarray  # RGB uint8, same shape as the input
    mask: np.ndarray  # float32 (H, W) in [0, 1]: the weight of the source copy per pixel
    # Which copy was perturbed: "source" (inside the mask) or "target" (the surroundings).
    perturbed: str = "source"


def _landmark_hull(landmarks: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Convex hull around five landmarks, grown to cover brows, cheeks and chin."""
    points = np.asarray(landmarks, dtype=np.float32).reshape(5, 2)
    left_eye, right_eye, nose, mouth_left, mouth_right = points
    eyes_mid = (left_eye + right_eye) / 2.0
    mouth_mid = (mouth_left + mouth_right) / 2.0
    down = mouth_mid - eyes_mid  # eye-to-mouth vector: the face's vertical axis and scale
    across = right_eye - left_eye
    up_reach = float(rng.uniform(0.5, 0.8))
    chin_reach = float(rng.uniform(0.5, 0.8))
    side_reach = float(rng.uniform(0.3, 0.5))
    hull_points = np.stack(
        [
            left_eye - down * up_reach - across * side_reach,
            right_eye - down * up_reach + across * side_reach,
            left_eye - across * side_reach * 1.2,
            right_eye + across * side_reach * 1.2,
            mouth_left - across * side_reach + down * 0.2,
            mouth_right + across * side_reach + down * 0.2,
            mouth_mid + down * chin_reach,
            nose,
        ]
    )
    mask = np.zeros(size, dtype=np.uint8)
    hull = cv2.convexHull(np.round(hull_points).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    return mask


def _hull68(
    landmarks: np.ndarray, size: tuple[int, int], rng: np.random.Generator, region: str
) -> np.ndarray:
    """Convex hull of the 68 iBUG landmarks: the whole face with the brows raised towards the
    forehead by a random amount, or the lower face (jaw line below the cheekbones and the nose's
    base), which is what lip-sync methods regenerate."""
    points = np.asarray(landmarks, dtype=np.float32).reshape(68, 2)
    if region == "lower":
        # The nose's base, raised by a random share of the nose length: how far up the cheeks go.
        nose_base = points[31:36] - (points[33] - points[30]) * rng.uniform(0.0, 0.6)
        chosen = np.concatenate([points[2:15], nose_base])
    else:
        brows = points[17:27]
        lift = (points[30] - points[27]) * float(rng.uniform(0.0, 0.6))  # nose-bridge length upward
        chosen = np.concatenate([points[0:17], brows - lift])
    mask = np.zeros(size, dtype=np.uint8)
    hull = cv2.convexHull(np.round(chosen).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    return mask


def _geometric_hull(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """An ellipse over the face of a tight, aligned crop, its outline jittered with smooth noise."""
    height, width = size
    centre_x = width * (0.5 + rng.uniform(-0.03, 0.03))
    centre_y = height * (0.55 + rng.uniform(-0.04, 0.04))
    radius_x = width * 0.5 * rng.uniform(0.68, 0.85)
    radius_y = height * 0.5 * rng.uniform(0.75, 0.92)
    angles = np.linspace(0.0, 2.0 * np.pi, 48, endpoint=False)
    # Sum of a few low harmonics with random phases: a smooth, irregular outline.
    wobble = np.zeros_like(angles)
    for harmonic in (2, 3, 4, 5):
        wobble += rng.uniform(0.0, 0.05) * np.sin(harmonic * angles + rng.uniform(0, 2 * np.pi))
    xs = centre_x + radius_x * (1.0 + wobble) * np.cos(angles)
    ys = centre_y + radius_y * (1.0 + wobble) * np.sin(angles)
    polygon = np.round(np.stack([xs, ys], axis=1)).astype(np.int32)
    mask = np.zeros(size, dtype=np.uint8)
    cv2.fillPoly(mask, [polygon], 1)
    return mask


def _odd(value: float) -> int:
    number = max(1, int(value))
    return number if number % 2 == 1 else number + 1


def _elastic(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Deform the hull's outline with a smooth random displacement field."""
    height, width = mask.shape
    amplitude = 0.04 * min(height, width)
    coarse = rng.uniform(-1.0, 1.0, (2, 4, 4)).astype(np.float32) * amplitude
    dx = cv2.resize(coarse[0], (width, height), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(coarse[1], (width, height), interpolation=cv2.INTER_CUBIC)
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(mask, grid_x + dx, grid_y + dy, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)


def face_hull_mask(
    size: tuple[int, int],
    *,
    rng: np.random.Generator,
    landmarks: np.ndarray | None = None,
    region: str = "face",
) -> np.ndarray:
    """The soft blending mask, float32 (H, W) in [0, 1], before the blend ratio is applied.

    ``landmarks``: MTCNN's five points or the 68 iBUG points (N × 2 either way), or None for an
    ellipse placed from the crop geometry. ``region="lower"`` needs the 68 points.
    """
    if region not in REGIONS:
        raise ValueError(f"unknown blend region {region!r}; use one of {REGIONS}")
    count = 0 if landmarks is None else np.asarray(landmarks).size // 2
    if region == "lower" and count != 68:
        raise ValueError("a lower-face blend needs the 68 landmarks")
    if count == 68:
        hull = _hull68(np.asarray(landmarks), size, rng, region)
    elif landmarks is not None:
        hull = _landmark_hull(landmarks, size, rng)
    else:
        hull = _geometric_hull(size, rng)
    hull = _elastic(hull, rng)
    if not hull.any():  # a deformation cannot erase a face-sized hull, but never blend through nothing
        hull = _geometric_hull(size, rng)
    mask: np.ndarray = hull.astype(np.float32)
    side = min(size)
    # Two blurs with random kernels: keeping only what the first blur leaves at full weight
    # shrinks the hull by a random amount; the second decides how wide the blending boundary is.
    first = _odd(side * rng.uniform(0.05, 0.2))
    core = (cv2.GaussianBlur(mask, (first, first), 0) >= 0.999).astype(np.float32)
    if core.any():
        mask = core
    second = _odd(side * rng.uniform(0.05, 0.2))
    mask = cv2.GaussianBlur(mask, (second, second), 0)
    peak = float(mask.max())
    if peak > 0:
        mask = mask / peak
    return np.clip(mask, 0.0, 1.0)


def perturb_source(image: np.ndarray, *, rng: np.random.Generator) -> np.ndarray:
    """Colour, frequency and geometry changes that turn a copy of the face into the 'source'."""
    source: np.ndarray = image.astype(np.float32)
    # Colour: per-channel RGB shift, HSV shift, brightness-contrast, each on a coin flip.
    if rng.random() < 0.5:
        source += rng.uniform(-20, 20, 3).astype(np.float32)
    if rng.random() < 0.5:
        hsv = cv2.cvtColor(np.clip(source, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[:, :, 0] = (hsv[:, :, 0] + rng.uniform(-5, 5)) % 180.0
        hsv[:, :, 1] = np.clip(hsv[:, :, 1] + rng.uniform(-20, 20), 0, 255)
        hsv[:, :, 2] = np.clip(hsv[:, :, 2] + rng.uniform(-20, 20), 0, 255)
        source = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    if rng.random() < 0.5:
        mean = source.mean()
        source = (source - mean) * rng.uniform(0.85, 1.15) + mean + rng.uniform(-0.1, 0.1) * 255.0
    source = np.clip(source, 0, 255).astype(np.uint8)
    # Frequency: lose detail (down and up sampling) or add it (unsharp masking).
    height, width = image.shape[:2]
    if rng.random() < 0.5:
        scale = rng.uniform(0.3, 0.8)
        small = cv2.resize(
            source,
            (max(1, round(width * scale)), max(1, round(height * scale))),
            interpolation=cv2.INTER_AREA,
        )
        source = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    else:
        blurred = cv2.GaussianBlur(source, (0, 0), sigmaX=rng.uniform(0.8, 2.0))
        amount = rng.uniform(0.3, 1.0)
        source = cv2.addWeighted(source, 1.0 + amount, blurred, -amount, 0)
    # Geometry: a slight scale and translation, so the two copies are misaligned at the boundary.
    scale = rng.uniform(0.95, 1.05)
    matrix = cv2.getRotationMatrix2D((width / 2.0, height / 2.0), 0.0, scale)
    matrix[0, 2] += rng.uniform(-0.03, 0.03) * width
    matrix[1, 2] += rng.uniform(-0.03, 0.03) * height
    return cv2.warpAffine(
        source, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )


def lower_face_source(image: np.ndarray, *, rng: np.random.Generator) -> np.ndarray:
    """The face as a lip-sync generator would repaint it: rendered at a low resolution (such
    models work on 96–256 px faces) and scaled back up, with a slight colour and blur change."""
    height, width = image.shape[:2]
    scale = rng.uniform(0.25, 0.6)
    small = cv2.resize(
        image, (max(8, round(width * scale)), max(8, round(height * scale))), interpolation=cv2.INTER_AREA
    )
    if rng.random() < 0.5:
        small = cv2.GaussianBlur(small, (0, 0), sigmaX=float(rng.uniform(0.3, 0.9)))
    interpolation = cv2.INTER_CUBIC if rng.random() < 0.5 else cv2.INTER_LINEAR
    source = cv2.resize(small, (width, height), interpolation=interpolation).astype(np.float32)
    if rng.random() < 0.5:
        source += rng.uniform(-8, 8, 3).astype(np.float32)
    return np.clip(source, 0, 255).astype(np.uint8)


def _upsample_twice(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One decoder stage: double the size the way a generator does, leaving its kind of trace."""
    height, width = image.shape[:2]
    kind = rng.choice(("transposed", "nearest", "bilinear"))
    if kind == "transposed":
        out = cv2.resize(image, (width * 2, height * 2), interpolation=cv2.INTER_NEAREST)
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=float(rng.uniform(0.5, 1.0)))
        # A transposed convolution reaches its four output phases with unequal weights: a faint
        # period-2 pattern (the checkerboard) that the layers after it never fully cancel.
        tile = rng.normal(0.0, 1.0, (2, 2, 3)).astype(np.float32)
        tile -= tile.mean(axis=(0, 1), keepdims=True)
        tile /= float(np.abs(tile).max()) + 1e-6
        pattern = np.tile(tile, (height, width, 1))
        return out * (1.0 + float(rng.uniform(0.005, 0.03)) * pattern)
    if kind == "nearest":
        # Nearest-neighbour doubling followed by a learnt (here random, positive) 3×3 convolution.
        out = cv2.resize(image, (width * 2, height * 2), interpolation=cv2.INTER_NEAREST)
        kernel = rng.uniform(0.3, 1.0, (3, 3)).astype(np.float32)
        return cv2.filter2D(out, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT_101)
    # Bilinear doubling, then the over-sharpening of a refining convolution.
    out = cv2.resize(image, (width * 2, height * 2), interpolation=cv2.INTER_LINEAR)
    amount = float(rng.uniform(0.2, 0.8))
    return out * (1.0 + amount) - cv2.GaussianBlur(out, (0, 0), sigmaX=1.0) * amount


def generated_face_source(image: np.ndarray, *, rng: np.random.Generator) -> np.ndarray:
    """The face as a talking-head generator would render it: the image reduced to the decoder's
    coarse grid (a half or a quarter of its side: camera noise and fine skin texture are lost)
    and brought back by one or two up-sampling stages, each a transposed convolution's faint
    checkerboard, a nearest-neighbour doubling smoothed by a small convolution, or a bilinear
    doubling over-sharpened (the spectral traces of Zhang et al. 2019, simulated without a
    trained generator)."""
    height, width = image.shape[:2]
    stages = int(rng.integers(1, 3))
    rendered: np.ndarray = cv2.resize(
        image, (max(8, width >> stages), max(8, height >> stages)), interpolation=cv2.INTER_AREA
    ).astype(np.float32)
    for _ in range(stages):
        rendered = _upsample_twice(rendered, rng)
    if rendered.shape[:2] != (height, width):
        rendered = cv2.resize(rendered, (width, height), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        rendered = rendered + rng.uniform(-6, 6, 3).astype(np.float32)
    return np.clip(np.rint(rendered), 0, 255).astype(np.uint8)


def self_blend(
    image: np.ndarray,
    *,
    rng: np.random.Generator,
    landmarks: np.ndarray | None = None,
    region: str = "face",
) -> SelfBlended:
    """Blend a perturbed copy of the real face ``image`` (RGB uint8) back into it.

    The real face is copied twice: the *source* copy is perturbed in colour, frequency and
    geometry (``perturb_source``), the *target* stays untouched, and the two are blended through
    a deformed, blurred face-hull mask scaled by a random ratio (``face_hull_mask``):
    ``blended = source · mask + target · (1 − mask)``. The result carries the statistics of a
    face swap (blending boundary, colour and sharpness mismatch, slight misalignment) without
    any identity change. With landmarks (MTCNN's five or the 68 iBUG points) the hull follows
    the face; without them (pre-cut crops) it is an ellipse placed from the crop geometry.
    Either copy may be the perturbed one (a coin flip, as the paper's source–target
    augmentation): the boundary then separates an untouched face from perturbed surroundings.

    ``region="lower"`` (68 landmarks) blends only the mouth and jaw, from a low-resolution
    rendering of the face (``lower_face_source``): the trace of a lip-sync tool.
    ``region="generated"`` replaces the face at full strength with a generator-style rendering
    of itself (``generated_face_source``): half the time through the face hull, half the time
    the whole crop, as a talking-head model outputs whole frames; no boundary to find, only the
    up-sampling traces.

    When the source is the perturbed copy, pixels where the returned mask is 0 are exactly the
    input's.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 face (H, W, 3), got {image.dtype} {image.shape}")
    if landmarks is not None and np.asarray(landmarks).size not in (10, 136):
        raise ValueError("landmarks must be the five (x, y) points of MTCNN or the 68 iBUG points")
    size = (image.shape[0], image.shape[1])
    target, perturbed = image, "source"
    if region == "generated":
        source = generated_face_source(image, rng=rng)
        # Full strength, no blend ratio; half the time the whole crop, as a model that renders
        # whole frames leaves it (no boundary at all).
        if rng.random() < 0.5:
            mask = np.ones(size, dtype=np.float32)
        else:
            mask = face_hull_mask(size, rng=rng, landmarks=landmarks, region="face")
    else:
        if region == "lower":
            source = lower_face_source(image, rng=rng)
        else:
            source = perturb_source(image, rng=rng)
            if rng.random() < 0.5:
                source, target, perturbed = image, source, "target"
        mask = face_hull_mask(size, rng=rng, landmarks=landmarks, region=region)
        mask *= float(rng.choice(BLEND_RATIOS))
    weight = mask[:, :, None]
    blended = source.astype(np.float32) * weight + target.astype(np.float32) * (1.0 - weight)
    out = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return SelfBlended(image=out, mask=mask.astype(np.float32), perturbed=perturbed)
