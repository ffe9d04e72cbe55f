"""One input file as frames to analyse: a video (ffprobe, ffmpeg) or a still image (Pillow), chosen once.

``open_media_source(path)`` reads the file's first bytes, decides which of the two reads it and
probes it; everything after that (the plan, the decoder) asks the source, never the file type
again. A probed ``VideoInfo`` carries the choice with it (an image's ``format_name`` starts with
``image/``), so a later stage that only kept the info, such as the worker's analyze task, gets the
same source back from ``media_source_for(path, info)``. A video of a single frame is read as a
video and analysed as an image (its ``info.media_type`` is "image").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Protocol

import numpy as np

from core.media import SNIFF_BYTES, sniff_image
from pipeline.decode import SegmentDecoder, decode_segment
from pipeline.errors import EmptyFileError, InputError, NotAVideoError, SourceNotFoundError
from pipeline.ffprobe import probe_video
from pipeline.image import StillDecoder, is_still, plan_still, probe_image
from pipeline.plan import plan_segments
from pipeline.types import AnalysisConfig, SegmentPlan, VideoInfo

__all__ = [
    "FrameDecoder",
    "ImageSource",
    "MediaSource",
    "VideoSource",
    "media_source_for",
    "open_media_source",
    "source_kind",
]


class FrameDecoder(Protocol):
    """One segment's sampled frames as they are decoded (``SegmentDecoder``, ``StillDecoder``)."""

    frames: np.ndarray  # N×H×W×3 uint8 RGB, filled up to ``count``
    count: int

    @property
    def times(self) -> list[float]: ...

    def __enter__(self) -> FrameDecoder: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def chunks(self, size: int) -> Iterator[tuple[int, int]]: ...


class MediaSource(Protocol):
    """A probed input: what it is, how it is planned, how its sampled frames are decoded."""

    @property
    def path(self) -> Path:
        """The file."""
        ...

    @property
    def info(self) -> VideoInfo:
        """What the probe found."""
        ...

    def plan(self, config: AnalysisConfig | None = None) -> list[SegmentPlan]:
        """The segments and the frames each samples."""
        ...

    def open_frames(self, plan: SegmentPlan, config: AnalysisConfig | None = None) -> FrameDecoder:
        """The decoder of one segment's sampled frames (enter it to start decoding)."""
        ...

    def decode(
        self, plan: SegmentPlan, config: AnalysisConfig | None = None
    ) -> tuple[list[float], np.ndarray]:
        """The frames ``plan`` samples, whole: (their times, uint8 N×H×W×3 RGB)."""
        ...


@dataclass(frozen=True)
class VideoSource:
    """A video read by ffprobe and decoded by ffmpeg, only the sampled frames."""

    path: Path
    info: VideoInfo
    noun: ClassVar[str] = "video"

    @classmethod
    def probe(cls, path: Path, config: AnalysisConfig | None = None) -> VideoSource:
        return cls(path, probe_video(path, config))

    def plan(self, config: AnalysisConfig | None = None) -> list[SegmentPlan]:
        return plan_segments(self.info, config)

    def open_frames(self, plan: SegmentPlan, config: AnalysisConfig | None = None) -> SegmentDecoder:
        return SegmentDecoder(self.path, self.info, plan, config)

    def decode(
        self, plan: SegmentPlan, config: AnalysisConfig | None = None
    ) -> tuple[list[float], np.ndarray]:
        return decode_segment(self.path, self.info, plan, config)


@dataclass(frozen=True)
class ImageSource:
    """A still image (JPEG, PNG, WebP, GIF) read by Pillow: one segment of one frame."""

    path: Path
    info: VideoInfo
    noun: ClassVar[str] = "image"

    @classmethod
    def probe(cls, path: Path, config: AnalysisConfig | None = None) -> ImageSource:
        return cls(path, probe_image(path, config))

    def plan(self, config: AnalysisConfig | None = None) -> list[SegmentPlan]:
        return plan_still(self.info, config)

    def open_frames(self, plan: SegmentPlan, config: AnalysisConfig | None = None) -> StillDecoder:
        return StillDecoder(self.path, self.info, plan, config)

    def decode(
        self, plan: SegmentPlan, config: AnalysisConfig | None = None
    ) -> tuple[list[float], np.ndarray]:
        with StillDecoder(self.path, self.info, plan, config) as still:
            return still.times, still.frames


def source_kind(path: str | Path) -> type[VideoSource] | type[ImageSource]:
    """Which source reads the file: its first bytes tell a JPEG, PNG, WebP or GIF image from the
    rest, which ffprobe reads. Raises SourceNotFoundError, NotAVideoError (a directory),
    EmptyFileError or InputError (``unreadable_file``)."""
    path = Path(path)
    try:
        stat = path.stat()
    except FileNotFoundError as exc:
        raise SourceNotFoundError(f"{path}: no such file") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})", code="unreadable_file") from exc
    if path.is_dir():
        raise NotAVideoError(f"{path} is a directory, not a video file")
    if stat.st_size == 0:
        raise EmptyFileError(f"{path.name} is empty (0 bytes)")
    try:
        with open(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})", code="unreadable_file") from exc
    return ImageSource if sniff_image(head) is not None else VideoSource


def open_media_source(path: str | Path, config: AnalysisConfig | None = None) -> MediaSource:
    """Probe the file with the reader its first bytes call for; refuse what cannot or must not be
    analysed with the pipeline's typed errors (``pipeline.errors``)."""
    path = Path(path)
    return source_kind(path).probe(path, config)


def media_source_for(path: str | Path, info: VideoInfo) -> MediaSource:
    """The source of a file already probed (``info`` as the probe returned it, or rebuilt from
    what was stored of it)."""
    path = Path(path)
    if is_still(info):
        return ImageSource(path, info)
    return VideoSource(path, info)
