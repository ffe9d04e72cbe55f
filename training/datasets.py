"""Labelled face crops for training and evaluation, from crop folders or DFDC-layout video folders."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.crop import crop_face, isotropic_resize, pad_to_square
from pipeline.errors import InputError

__all__ = [
    "CACHE_VERSION",
    "DEFAULT_CACHE_DIR",
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "CropSet",
    "DatasetError",
    "Entry",
    "dataset_kind",
    "group_of",
    "identity_split",
    "is_validation_group",
    "load_crop_folder",
    "load_dataset",
    "load_video_folder",
    "read_entries",
    "resolve_file",
    "split_indices",
]

CACHE_VERSION = 1
DEFAULT_CACHE_DIR = Path(__file__).resolve().parent.parent / "runs" / "cache"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")


class DatasetError(InputError):
    """A dataset folder that cannot be read: missing metadata, bad labels, missing files."""

    code = "invalid_dataset"
    exit_code = 3


@dataclass(frozen=True)
class Entry:
    """One labelled file of a dataset folder."""

    file: str  # relative to the folder, as the metadata names it
    label: int  # 1 = FAKE, 0 = REAL
    group: str  # identity group: never split between train and validation


@dataclass
class CropSet:
    """Face crops in memory: ``images`` (N, S, S, 3) RGB uint8 with one row per crop.

    ``items`` names the file each crop came from (a video gives several crops, all with the same
    item and group); ``manifest_sha256`` fingerprints the labelled file list it was built from.
    """

    images: np.ndarray
    labels: np.ndarray  # int64 (N,)
    groups: list[str]
    items: list[str]
    kind: str  # "crops" or "videos"
    manifest_sha256: str
    size: int

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: Sequence[int] | np.ndarray) -> CropSet:
        index = np.asarray(indices, dtype=np.int64)
        return CropSet(
            images=self.images[index],
            labels=self.labels[index],
            groups=[self.groups[i] for i in index],
            items=[self.items[i] for i in index],
            kind=self.kind,
            manifest_sha256=self.manifest_sha256,
            size=self.size,
        )


def group_of(file: str, label: int, original: str | None) -> str:
    """The identity group: a fake's source video, a real's own name (extensions dropped)."""
    if label == 1 and original:
        return Path(original).stem
    return Path(file).stem


def _parse_label(raw: Any, file: str) -> int:
    text = str(raw).strip().upper()
    if text in ("FAKE", "1"):
        return 1
    if text in ("REAL", "0"):
        return 0
    raise DatasetError(f"{file}: label must be FAKE or REAL, got {raw!r}")


def read_entries(root: str | Path) -> list[Entry]:
    """Read ``metadata.csv`` or ``metadata.json`` of a dataset folder into sorted entries.

    A crop folder holds images plus ``metadata.csv`` (``file,label[,original]``) or
    ``metadata.json`` (``{"file.jpg": {"label": "FAKE"|"REAL", "original": ...}}``), images next
    to it or under ``faces/``; a video folder in the DFDC layout holds ``*.mp4`` plus
    ``metadata.json``."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}", code="file_not_found")
    csv_path, json_path = root / "metadata.csv", root / "metadata.json"
    rows: list[tuple[str, Any, str | None]] = []
    if csv_path.is_file():
        with open(csv_path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"file", "label"} <= set(reader.fieldnames):
                raise DatasetError(f"{csv_path} needs the columns file,label (and optionally original)")
            for row in reader:
                rows.append((row["file"], row["label"], row.get("original") or None))
    elif json_path.is_file():
        try:
            doc = json.loads(json_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{json_path} is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise DatasetError(f"{json_path} must map file names to {{'label': ...}} objects")
        for file, info in doc.items():
            if not isinstance(info, dict) or "label" not in info:
                raise DatasetError(f"{json_path}: entry {file!r} has no label")
            rows.append((str(file), info["label"], info.get("original") or None))
    else:
        raise DatasetError(f"{root} has no metadata.csv or metadata.json")
    if not rows:
        raise DatasetError(f"{root}: the metadata lists no files")
    entries = []
    for file, raw_label, original in rows:
        if not file or Path(file).is_absolute() or ".." in Path(file).parts:
            raise DatasetError(f"{root}: bad file name {file!r} in the metadata")
        label = _parse_label(raw_label, file)
        entries.append(Entry(file=file, label=label, group=group_of(file, label, original)))
    return sorted(entries, key=lambda e: e.file)


def dataset_kind(entries: Sequence[Entry]) -> str:
    """``videos`` when every file is a video, ``crops`` when every file is an image."""
    suffixes = {Path(e.file).suffix.lower() for e in entries}
    if suffixes <= set(VIDEO_SUFFIXES):
        return "videos"
    if suffixes <= set(IMAGE_SUFFIXES):
        return "crops"
    raise DatasetError(f"a dataset holds either images or videos, found {sorted(suffixes)}")


def resolve_file(root: Path, file: str) -> Path:
    """Where a file named in the metadata lies: next to it or under faces/."""
    for candidate in (root / file, root / "faces" / file):
        if candidate.is_file():
            return candidate
    raise DatasetError(f"{file} is listed in the metadata but not found under {root}", code="file_not_found")


def _manifest_sha256(root: Path, entries: Sequence[Entry], extra: str = "") -> str:
    digest = hashlib.sha256(extra.encode())
    for entry in entries:
        size = resolve_file(root, entry.file).stat().st_size
        digest.update(f"{entry.file},{entry.label},{entry.group},{size}\n".encode())
    return digest.hexdigest()


# The train/validation split is by identity group: a fake belongs to the group of the real video
# it was made from (its ``original``), a real to its own name. Groups go to validation by a seeded
# hash of their name alone, so the split does not depend on the order or subset of the files and
# ``evaluate`` recovers exactly the held-out groups.
def is_validation_group(group: str, *, val_fraction: float, seed: int) -> bool:
    """Whether ``group`` is held out: a seeded hash of its name, uniform in [0, 1), below the fraction."""
    digest = hashlib.sha256(f"{seed}:{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < val_fraction


def identity_split(
    groups: Sequence[str], *, val_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of (train, validation) rows; every group falls wholly on one side."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError("val_fraction must be between 0 and 1")
    held = {g: is_validation_group(g, val_fraction=val_fraction, seed=seed) for g in set(groups)}
    is_val = np.array([held[g] for g in groups], dtype=bool)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def split_indices(
    groups: Sequence[str], split: str, *, val_fraction: float = 0.2, seed: int = 0
) -> np.ndarray:
    """Rows of ``split`` (``train``, ``val`` or ``all``) under ``identity_split``."""
    if split == "all":
        return np.arange(len(groups))
    train, val = identity_split(groups, val_fraction=val_fraction, seed=seed)
    if split == "train":
        return train
    if split == "val":
        return val
    raise ValueError(f"unknown split {split!r}; use train, val or all")


def _read_crop(path: Path, size: int) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"{path} is not a readable image")
    # Same resize as inference: isotropic to the model size, padded to a square.
    return pad_to_square(isotropic_resize(image[:, :, ::-1], size), size)


def _cache_paths(cache_dir: Path, key: str) -> tuple[Path, Path]:
    return cache_dir / f"{key}.npy", cache_dir / f"{key}.json"


def _load_cache(cache_dir: Path, key: str) -> tuple[np.ndarray, dict[str, Any]] | None:
    images_path, info_path = _cache_paths(cache_dir, key)
    if not (images_path.is_file() and info_path.is_file()):
        return None
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
        images = np.load(images_path, allow_pickle=False)
    except (OSError, ValueError, json.JSONDecodeError):
        return None  # a half-written cache is rebuilt, not trusted
    if images.dtype != np.uint8 or images.shape[0] != len(info.get("items", ())):
        return None
    return images, info


def _save_cache(cache_dir: Path, key: str, images: np.ndarray, info: dict[str, Any]) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    images_path, info_path = _cache_paths(cache_dir, key)
    tmp_images = images_path.with_name(images_path.name + ".tmp.npy")
    np.save(tmp_images, images, allow_pickle=False)
    tmp_images.replace(images_path)
    tmp_info = info_path.with_name(info_path.name + ".tmp")
    tmp_info.write_text(json.dumps(info), encoding="utf-8")
    tmp_info.replace(info_path)


def load_crop_folder(
    root: str | Path,
    *,
    size: int,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
    progress: Callable[[str], None] | None = None,
) -> CropSet:
    """Every image of a crop folder, resized once to size×size and cached."""
    root = Path(root)
    entries = read_entries(root)
    if dataset_kind(entries) != "crops":
        raise DatasetError(f"{root} is a video folder; use load_video_folder")
    manifest = _manifest_sha256(root, entries)
    key = f"crops-{manifest[:16]}-{size}-v{CACHE_VERSION}"
    cached = _load_cache(Path(cache_dir), key) if cache_dir is not None else None
    if cached is not None:
        images, info = cached
    else:
        if progress:
            progress(f"decoding {len(entries)} crops from {root} at {size}×{size}")
        paths = [resolve_file(root, e.file) for e in entries]
        images = np.empty((len(entries), size, size, 3), dtype=np.uint8)
        workers = max(1, min(4, os.cpu_count() or 1))

        def fill(index: int) -> None:
            images[index] = _read_crop(paths[index], size)

        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(fill, range(len(entries))))
        info = {"items": [e.file for e in entries], "manifest_sha256": manifest}
        if cache_dir is not None:
            _save_cache(Path(cache_dir), key, images, info)
    return CropSet(
        images=images,
        labels=np.array([e.label for e in entries], dtype=np.int64),
        groups=[e.group for e in entries],
        items=[e.file for e in entries],
        kind="crops",
        manifest_sha256=manifest,
        size=size,
    )


def _largest_face_crops(
    path: Path,
    detector: Any,
    *,
    frames: int,
    size: int,
    margin: float,
    square: tuple[float, float] | None = None,
) -> list[np.ndarray]:
    """The largest face of ``frames`` frames spread evenly over the video, cut by ``crop_face``."""
    from pipeline.media_source import open_media_source
    from pipeline.types import AnalysisConfig

    source = open_media_source(path)
    info = source.info
    # One window over the whole video with more wanted frames than allowed: the planner then
    # spreads exactly ``frames`` samples evenly over it.
    config = AnalysisConfig(segment_seconds=info.duration_s + 1.0, sample_fps=1000.0, max_frames=frames)
    crops = []
    for plan in source.plan(config):
        _, decoded = source.decode(plan, config)
        for frame, detections in zip(decoded, detector.detect(decoded), strict=True):
            if detections:
                largest = max(detections, key=lambda d: d.size)
                crops.append(
                    crop_face(
                        frame,
                        largest.box,
                        margin=margin,
                        size=size,
                        square_scale=square[0] if square else None,
                        shift_y=square[1] if square else 0.0,
                    )
                )
    return crops


def load_video_folder(
    root: str | Path,
    *,
    size: int,
    margin: float,
    square: tuple[float, float] | None = None,
    frames_per_video: int = 8,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> CropSet:
    """Faces of a DFDC-layout video folder: ``frames_per_video`` frames spread over each video,
    the largest face of each frame detected and cropped by the pipeline's own code, cached.
    ``square`` (scale, shift) selects ``crop_face``'s square framing instead of ``margin``."""
    root = Path(root)
    entries = read_entries(root)
    if dataset_kind(entries) != "videos":
        raise DatasetError(f"{root} is a crop folder; use load_crop_folder")
    manifest = _manifest_sha256(root, entries, extra=f"frames={frames_per_video}")
    framing = f"s{square[0]:.3f}_{square[1]:.3f}" if square else f"m{margin:.3f}"
    key = f"videos-{manifest[:16]}-{size}-{framing}-v{CACHE_VERSION}"
    cached = _load_cache(Path(cache_dir), key) if cache_dir is not None else None
    if cached is not None:
        images, info = cached
        items: list[str] = info["items"]
    else:
        from pipeline.faces import FaceDetector

        detector = FaceDetector(device=device)
        crops: list[np.ndarray] = []
        items = []
        for number, entry in enumerate(entries, 1):
            if progress:
                progress(f"[{number}/{len(entries)}] faces of {entry.file}")
            for crop in _largest_face_crops(
                resolve_file(root, entry.file),
                detector,
                frames=frames_per_video,
                size=size,
                margin=margin,
                square=square,
            ):
                crops.append(crop)
                items.append(entry.file)
        images = np.stack(crops) if crops else np.zeros((0, size, size, 3), dtype=np.uint8)
        if cache_dir is not None:
            _save_cache(Path(cache_dir), key, images, {"items": items, "manifest_sha256": manifest})
    by_file = {e.file: e for e in entries}
    return CropSet(
        images=images,
        labels=np.array([by_file[i].label for i in items], dtype=np.int64),
        groups=[by_file[i].group for i in items],
        items=items,
        kind="videos",
        manifest_sha256=manifest,
        size=size,
    )


def load_dataset(
    root: str | Path,
    *,
    size: int,
    margin: float,
    square: tuple[float, float] | None = None,
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR,
    frames_per_video: int = 8,
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
) -> CropSet:
    """A crop folder or a video folder, whichever ``root`` is."""
    kind = dataset_kind(read_entries(root))
    if kind == "crops":
        return load_crop_folder(root, size=size, cache_dir=cache_dir, progress=progress)
    return load_video_folder(
        root,
        size=size,
        margin=margin,
        square=square,
        frames_per_video=frames_per_video,
        cache_dir=cache_dir,
        device=device,
        progress=progress,
    )
