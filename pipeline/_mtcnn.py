"""MTCNN's three-stage cascade (Zhang et al., 2016) run batch-wide on facenet-pytorch's trained nets.

facenet-pytorch crops every candidate box for the second and third networks one at a time
(thousands of small resize calls per batch of frames, most of the detector's time on a CPU).
Here all candidates of all frames are cropped in one ``roi_align`` call per stage, and outside
the frame the crops are zero-padded as in the original method. The geometry (12-pixel cells at
stride 2, box regression, squaring) follows the paper and the trained weights' conventions.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn
from torchvision.ops import batched_nms, roi_align

__all__ = ["Cascade", "CascadeResult"]

_CELL = 12.0
_STRIDE = 2.0
_PNET_BATCH_PIXELS = 48_000_000  # frames per P-net call are capped so activations stay bounded
_CROP_BATCH = 2048
# Candidates cropped and run through R-net or O-net at a time. A busy frame (a crowd, a mosaic of
# faces) yields thousands; run at once, O-net's activations alone took gigabytes. Per batch they
# stay under 200 MB whatever the input.
_CANDIDATE_BATCH = 256
# Bilinear samples per output pixel and axis when cropping candidates: 2×2 averaged samples are
# close to an area resize for the box sizes that matter, at a fraction of the cost of adaptive.
_CROP_SAMPLES = 2


@dataclass
class CascadeResult:
    """Per frame: boxes (K, 4) x1 y1 x2 y2, probabilities (K,), landmarks (K, 5, 2), on the CPU."""

    boxes: list[torch.Tensor]
    probs: list[torch.Tensor]
    landmarks: list[torch.Tensor]


def _normalise(pixels: torch.Tensor) -> torch.Tensor:
    return (pixels - 127.5) * 0.0078125


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Grow each (x1, y1, x2, y2) box to a square around its centre (the longer side)."""
    width = boxes[:, 2] - boxes[:, 0]
    height = boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(width, height)
    x1 = boxes[:, 0] + width * 0.5 - side * 0.5
    y1 = boxes[:, 1] + height * 0.5 - side * 0.5
    return torch.stack([x1, y1, x1 + side, y1 + side], dim=1)


def _regress(boxes: torch.Tensor, offsets: torch.Tensor, *, inclusive: bool) -> torch.Tensor:
    """Apply the network's box offsets (fractions of the box's width and height)."""
    extra = 1.0 if inclusive else 0.0  # the later stages measure boxes in whole pixels, inclusive
    width = (boxes[:, 2] - boxes[:, 0] + extra).unsqueeze(1)
    height = (boxes[:, 3] - boxes[:, 1] + extra).unsqueeze(1)
    scale = torch.cat([width, height, width, height], dim=1)
    return boxes + offsets * scale


def _crop_cpu(frames: np.ndarray, frame_index: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """The CPU path of ``_crop``: OpenCV area resizes of uint8 regions, several times faster than
    ``roi_align`` for the thousand-odd small crops of a batch."""
    height, width = frames.shape[1:3]
    out = np.zeros((len(boxes), size, size, 3), dtype=np.uint8)
    for k, ((bx1, by1, bx2, by2), frame_number) in enumerate(
        zip(boxes[:, :4].floor().int().tolist(), frame_index.tolist(), strict=True)
    ):
        x1, y1, x2, y2 = bx1 - 1, by1 - 1, bx2, by2
        if x2 <= x1 or y2 <= y1:
            continue
        region = frames[frame_number, max(y1, 0) : min(y2, height), max(x1, 0) : min(x2, width)]
        if region.size == 0:
            continue
        if x1 < 0 or y1 < 0 or x2 > width or y2 > height:  # zero padding outside the frame
            region = cv2.copyMakeBorder(region, max(0, -y1), max(0, y2 - height), max(0, -x1),
                                        max(0, x2 - width), cv2.BORDER_CONSTANT, value=(0, 0, 0))
        shrinking = region.shape[0] > size or region.shape[1] > size
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        out[k] = cv2.resize(region, (size, size), interpolation=interpolation)
    return torch.from_numpy(out).permute(0, 3, 1, 2).float()


def _crop(images: torch.Tensor, frame_index: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """size×size crops of whole-pixel boxes (pixel x1-1 … x2-1 inclusive), zero outside the frame."""
    boxes = boxes.floor()
    rois = torch.cat(
        [frame_index.to(boxes.dtype).unsqueeze(1), boxes[:, :2] - 1.0, boxes[:, 2:4]], dim=1
    ).to(images.dtype)
    out = []
    for start in range(0, len(rois), _CROP_BATCH):
        part = rois[start : start + _CROP_BATCH]
        out.append(roi_align(images, part, output_size=(size, size), spatial_scale=1.0,
                             sampling_ratio=_CROP_SAMPLES, aligned=True))
    return torch.cat(out) if out else images.new_zeros((0, images.shape[1], size, size))


def _nms_min(
    boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float
) -> torch.Tensor:
    """Greedy NMS where overlap is intersection over the smaller box, per group: the last stage
    removes a box nested in a better one even when their IoU is low."""
    keep: list[int] = []
    for group in groups.unique().tolist():
        members = (groups == group).nonzero().flatten()
        order = members[scores[members].argsort(descending=True)]
        while len(order) > 0:
            best = int(order[0])
            keep.append(best)
            rest = order[1:]
            if len(rest) == 0:
                break
            b, others = boxes[best], boxes[rest]
            iw = (torch.minimum(b[2], others[:, 2]) - torch.maximum(b[0], others[:, 0]) + 1).clamp(min=0)
            ih = (torch.minimum(b[3], others[:, 3]) - torch.maximum(b[1], others[:, 1]) + 1).clamp(min=0)
            area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
            area_o = (others[:, 2] - others[:, 0] + 1) * (others[:, 3] - others[:, 1] + 1)
            overlap = iw * ih / torch.minimum(area_b, area_o)
            order = rest[overlap <= threshold]
    return torch.tensor(sorted(keep), dtype=torch.long, device=boxes.device)


class _CropSource:
    """Where the later stages cut their candidates from: OpenCV on the uint8 frames on a CPU,
    ``roi_align`` on a float copy of them on a GPU."""

    def __init__(self, frames: np.ndarray, device: torch.device, dtype: torch.dtype) -> None:
        self.frames = frames
        self.device = device
        self.dtype = dtype
        self._images: torch.Tensor | None = None

    def crop(self, frame_index: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
        if self.device.type == "cpu":
            return _crop_cpu(self.frames, frame_index.cpu(), boxes.cpu(), size).to(self.dtype)
        if self._images is None:
            self._images = (
                torch.from_numpy(self.frames).to(self.device).permute(0, 3, 1, 2).to(self.dtype).contiguous()
            )
        return _crop(self._images, frame_index, boxes, size)


class Cascade:
    """P-net over an image pyramid → R-net on 24×24 crops → O-net on 48×48 crops with landmarks."""

    def __init__(
        self,
        pnet: nn.Module,
        rnet: nn.Module,
        onet: nn.Module,
        *,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
    ) -> None:
        for net in (pnet, rnet, onet):
            net.eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.pnet, self.rnet, self.onet = pnet, rnet, onet
        self.thresholds = thresholds
        self.factor = factor

    @torch.inference_mode()
    def __call__(self, frames: np.ndarray, *, min_face_size: float, device: torch.device,
                 dtype: torch.dtype = torch.float32, max_face_size: float | None = None,
                 refined_per_frame: int | None = None) -> CascadeResult:
        """``frames``: (N, H, W, 3) uint8 RGB, all the same size; boxes in their pixels. The
        pyramid covers faces from ``min_face_size`` up to ``max_face_size`` (default: the frame).
        ``refined_per_frame``: only that many of each frame's likeliest R-net boxes go on to
        O-net (default: all), for pictures known to hold one face."""
        count = len(frames)
        boxes, frame_index = self._propose(frames, min_face_size, device, dtype, max_face_size)
        landmarks = torch.zeros((0, 5, 2))
        scores = torch.zeros((0,))
        if len(boxes):
            source = _CropSource(frames, device, dtype)
            boxes, frame_index = self._refine(source, boxes, frame_index, refined_per_frame)
            if len(boxes):
                boxes, scores, landmarks, frame_index = self._output(source, boxes, frame_index)
        result = CascadeResult([], [], [])
        boxes_cpu, scores_cpu = boxes[:, :4].float().cpu(), scores.float().cpu()
        marks_cpu, index_cpu = landmarks.float().cpu(), frame_index.cpu()
        for i in range(count):
            mask = index_cpu == i
            result.boxes.append(boxes_cpu[mask])
            result.probs.append(scores_cpu[mask])
            result.landmarks.append(marks_cpu[mask])
        return result

    def _scales(
        self, height: int, width: int, min_face_size: float, max_face_size: float | None = None
    ) -> list[float]:
        """Pyramid scales: at scale s, P-net's 12-pixel window sees faces of 12 / s pixels."""
        scale = _CELL / max(min_face_size, _CELL)
        shortest = min(height, width) * scale
        smallest_scale = 0.0 if max_face_size is None else _CELL / max_face_size
        scales = []
        while shortest >= _CELL and scale >= smallest_scale:
            scales.append(scale)
            scale *= self.factor
            shortest *= self.factor
        return scales

    def _propose(
        self, frames: np.ndarray, min_face_size: float, device: torch.device, dtype: torch.dtype,
        max_face_size: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        count, height, width = frames.shape[:3]
        found_boxes, found_index = [], []
        for scale in self._scales(height, width, min_face_size, max_face_size):
            size = (int(height * scale + 1), int(width * scale + 1))
            # The pyramid is resized on uint8 by OpenCV (area averaging, several times faster than
            # torch's) and handed to torch as NHWC memory: the channels-last layout oneDNN's
            # convolutions run fastest on.
            level = np.stack(
                [cv2.resize(f, (size[1], size[0]), interpolation=cv2.INTER_AREA) for f in frames]
            )
            per_call = max(1, _PNET_BATCH_PIXELS // (size[0] * size[1]))
            for start in range(0, count, per_call):
                pixels = torch.from_numpy(level[start : start + per_call]).to(device).permute(0, 3, 1, 2)
                offsets, probs = self.pnet(_normalise(pixels.to(dtype)))
                face_prob = probs[:, 1]
                cells = (face_prob >= self.thresholds[0]).nonzero()  # (k, 3): frame, row, column
                if len(cells) == 0:
                    continue
                frame_idx, rows, cols = cells[:, 0], cells[:, 1], cells[:, 2]
                score = face_prob[frame_idx, rows, cols].float()
                reg = offsets[frame_idx, :, rows, cols].float()
                x1 = ((_STRIDE * cols + 1) / scale).floor()
                y1 = ((_STRIDE * rows + 1) / scale).floor()
                x2 = ((_STRIDE * cols + _CELL) / scale).floor()
                y2 = ((_STRIDE * rows + _CELL) / scale).floor()
                cell_boxes = torch.stack([x1, y1, x2, y2], dim=1).float()
                keep = batched_nms(cell_boxes, score, frame_idx, 0.5)
                found_boxes.append(torch.cat([cell_boxes[keep], score[keep, None], reg[keep]], dim=1))
                found_index.append(frame_idx[keep] + start)
        if not found_boxes:
            return torch.zeros((0, 5), device=device), torch.zeros((0,), dtype=torch.long, device=device)
        candidates = torch.cat(found_boxes)
        frame_index = torch.cat(found_index)
        keep = batched_nms(candidates[:, :4], candidates[:, 4], frame_index, 0.7)
        candidates, frame_index = candidates[keep], frame_index[keep]
        boxes = _square(_regress(candidates[:, :4], candidates[:, 5:9], inclusive=False))
        return torch.cat([boxes, candidates[:, 4:5]], dim=1), frame_index

    def _in_batches(
        self, net: nn.Module, source: _CropSource, boxes: torch.Tensor, frame_index: torch.Tensor, size: int
    ) -> list[torch.Tensor]:
        """``net`` on size×size crops of every candidate, ``_CANDIDATE_BATCH`` at a time; its
        outputs (small per candidate) concatenated."""
        outputs: list[list[torch.Tensor]] = []
        for start in range(0, len(boxes), _CANDIDATE_BATCH):
            part = slice(start, start + _CANDIDATE_BATCH)
            crops = _normalise(source.crop(frame_index[part], boxes[part], size))
            outputs.append([out.float() for out in net(crops.contiguous(memory_format=torch.channels_last))])
        return [torch.cat(parts) for parts in zip(*outputs, strict=True)]

    def _refine(
        self,
        source: _CropSource,
        boxes: torch.Tensor,
        frame_index: torch.Tensor,
        per_frame: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        offsets, probs = self._in_batches(self.rnet, source, boxes, frame_index, 24)
        score = probs[:, 1]
        passed = score > self.thresholds[1]
        keep = passed.nonzero().flatten()
        keep = keep[batched_nms(boxes[keep, :4], score[keep], frame_index[keep], 0.7)]  # likeliest first
        if per_frame is not None:
            kept_per_frame: dict[int, int] = {}
            chosen = []
            for position, frame_number in enumerate(frame_index[keep].tolist()):
                if kept_per_frame.get(frame_number, 0) < per_frame:
                    kept_per_frame[frame_number] = kept_per_frame.get(frame_number, 0) + 1
                    chosen.append(position)
            keep = keep[torch.tensor(chosen, dtype=torch.long, device=keep.device)]
        boxes, frame_index, offsets, score = boxes[keep], frame_index[keep], offsets[keep], score[keep]
        boxes = _square(_regress(boxes[:, :4], offsets, inclusive=True))
        return torch.cat([boxes, score[:, None]], dim=1), frame_index

    def _output(
        self, source: _CropSource, boxes: torch.Tensor, frame_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        offsets, points, probs = self._in_batches(self.onet, source, boxes, frame_index, 48)
        score = probs[:, 1]
        passed = score > self.thresholds[2]
        boxes, frame_index = boxes[passed, :4], frame_index[passed]
        offsets, points, score = offsets[passed], points[passed], score[passed]
        width = (boxes[:, 2] - boxes[:, 0] + 1).unsqueeze(1)
        height = (boxes[:, 3] - boxes[:, 1] + 1).unsqueeze(1)
        xs = width * points[:, 0:5] + boxes[:, 0:1] - 1
        ys = height * points[:, 5:10] + boxes[:, 1:2] - 1
        landmarks = torch.stack([xs, ys], dim=2)
        boxes = _regress(boxes, offsets, inclusive=True)
        keep = _nms_min(boxes, score, frame_index, 0.7)
        return boxes[keep], score[keep], landmarks[keep], frame_index[keep]
