"""Probe a video with ffprobe: streams, duration, rotation, and when each frame is shown.

The packets of the video are listed (demuxing only, no decoding) to learn each frame's time and
where the keyframes are, so variable frame rates sample the frames that are really there.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from core.media import SNIFF_BYTES, looks_like_video
from pipeline._ffmpeg import ffmpeg_binary
from pipeline.errors import (
    CorruptVideoError,
    DecodeTimeoutError,
    InputError,
    LimitExceededError,
    NotAVideoError,
    NoVideoStreamError,
)
from pipeline.timeline import StreamPackets, human_duration, scan_packets
from pipeline.types import AnalysisConfig, FrameTimeline, VideoInfo

__all__ = ["probe_video"]

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 30.0
# Codecs of still pictures: ffprobe reports an image as a one-frame stream of one of these.
IMAGE_CODECS = frozenset(
    {
        "mjpeg",
        "png",
        "apng",
        "bmp",
        "gif",
        "webp",
        "tiff",
        "jpeg2000",
        "jpegls",
        "jpegxl",
        "ppm",
        "pgm",
        "pam",
        "pbm",
        "qoi",
        "sgi",
        "targa",
        "dpx",
        "exr",
        "hdr",
        "xbm",
        "xpm",
        "pcx",
        "psd",
        "svg",
    }
)


def _parse_rate(text: Any) -> float | None:
    try:
        value = float(Fraction(str(text)))
    except (ValueError, ZeroDivisionError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def _parse_float(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _rotation_clockwise(stream: dict[str, Any]) -> int:
    """Degrees clockwise a player rotates the stored frames (0, 90, 180 or 270)."""
    for side_data in stream.get("side_data_list") or []:
        if "rotation" in side_data:
            # The display matrix angle is counter-clockwise.
            degrees = -(_parse_float(side_data["rotation"]) or 0.0)
            return round(degrees / 90.0) * 90 % 360
    tag = (stream.get("tags") or {}).get("rotate")
    if tag is not None:
        return round((_parse_float(tag) or 0.0) / 90.0) * 90 % 360
    return 0


def _run_ffprobe(path: Path) -> dict[str, Any]:
    command = [
        ffmpeg_binary("ffprobe"),
        "-v",
        "error",
        "-hide_banner",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
        "--",
        str(path),
    ]
    try:
        result = subprocess.run(command, capture_output=True, timeout=PROBE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise DecodeTimeoutError(
            f"{path.name}: ffprobe did not finish within {PROBE_TIMEOUT_S:.0f} s"
        ) from exc
    stderr = result.stderr.decode("utf-8", errors="replace").strip()
    if result.returncode != 0:
        with open(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
        reason = stderr.splitlines()[-1] if stderr else f"ffprobe exit status {result.returncode}"
        reason = reason.replace(f"{path}: ", "").replace(str(path), path.name)
        if looks_like_video(head):
            raise CorruptVideoError(f"{path.name}: the video container cannot be read ({reason})")
        raise NotAVideoError(f"{path.name} is not a video file ({reason})")
    try:
        doc = json.loads(result.stdout or b"{}")
    except json.JSONDecodeError as exc:
        raise CorruptVideoError(f"{path.name}: ffprobe returned unreadable output") from exc
    if stderr:
        log.debug("video.probe.stderr", extra={"path": str(path), "stderr": stderr[-2000:]})
    return doc if isinstance(doc, dict) else {}


def probe_video(path: str | Path, config: AnalysisConfig | None = None) -> VideoInfo:
    """Read what the video is and refuse what cannot or must not be analysed.

    ``path`` is a readable, non-empty file (``pipeline.media_source.open_media_source`` checks
    that and sends still images to Pillow). Raises NotAVideoError, NoVideoStreamError,
    CorruptVideoError or LimitExceededError; never returns a VideoInfo it could not decode. A
    video of one frame comes back with ``media_type`` "image".
    """
    config = config or AnalysisConfig()
    path = Path(path)
    try:
        stat = path.stat()
        with open(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})", code="unreadable_file") from exc

    doc = _run_ffprobe(path)
    fmt = doc.get("format") or {}
    streams = doc.get("streams") or []
    pictures = [
        s
        for s in streams
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    has_audio = any(s.get("codec_type") == "audio" for s in streams)
    if not pictures:
        if has_audio:
            raise NoVideoStreamError(f"{path.name} has audio but no video stream")
        if looks_like_video(head):
            raise CorruptVideoError(f"{path.name}: the container holds no readable stream (damaged header?)")
        raise NotAVideoError(f"{path.name} is not a video file (no video stream found)")
    format_name = str(fmt.get("format_name") or "")
    # The container's own claim is checked before its packets are read: a file whose headers
    # say ten hours is refused like a ten-hour video, without indexing it.
    _check_claimed_duration(path, _parse_float(fmt.get("duration")) or 0.0, config)
    is_still_format = format_name.endswith("_pipe") or format_name in ("image2", "webp", "gif")
    scans = scan_packets(path, pictures, config)
    stream = _choose_stream(pictures, scans, is_still_format)
    scan = scans.get(int(stream.get("index") or 0))

    codec = str(stream.get("codec_name") or "unknown")
    start_time = _parse_float(fmt.get("start_time"))
    timeline = scan.timeline(stream, start_time or 0.0) if scan is not None else None
    duration = _parse_float(stream.get("duration"))
    if duration is None and timeline is not None and scan is not None:
        duration = scan.end_s(stream, start_time or 0.0)  # Matroska, WebM: no duration per stream
    duration = duration or _parse_float(fmt.get("duration"))
    nb_frames_text = str(stream.get("nb_frames") or "")
    nb_frames = int(nb_frames_text) if nb_frames_text.isdigit() else None
    if scan is not None and scan.count:
        nb_frames = scan.count  # counted, not claimed
        single_frame = scan.count <= 1
    else:
        single_frame = duration is None or duration <= 0 or (nb_frames or 0) <= 1
    # Images of the accepted formats never reach ffprobe (pipeline.media_source reads them with
    # Pillow); others (BMP, TIFF, …) that ffprobe reads as a picture are refused. One picture in
    # a video container is an image job.
    if codec in IMAGE_CODECS and (is_still_format or (single_frame and not looks_like_video(head))):
        raise NotAVideoError(
            f"{path.name} is a still image ({codec}) in a format not accepted; send JPEG, PNG, WebP or GIF"
        )

    width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
    if width <= 0 or height <= 0:
        raise CorruptVideoError(f"{path.name}: the video stream has no picture size (damaged header?)")
    rotation = _rotation_clockwise(stream)
    if rotation in (90, 270):
        width, height = height, width

    fps = _parse_rate(stream.get("avg_frame_rate"))
    if fps is None or fps > 1000:
        fps = _parse_rate(stream.get("r_frame_rate"))
    if (fps is None or fps > 1000) and nb_frames and duration:
        fps = nb_frames / duration
    if timeline is not None:
        fps = _timeline_rate(timeline, fps)
    if duration is None and nb_frames and fps:
        duration = nb_frames / fps
    if duration is None or duration <= 0:
        raise CorruptVideoError(f"{path.name}: the video's duration cannot be determined")
    # The stream's own claim counts too: a stream whose frames are ten hours apart is refused.
    _check_claimed_duration(path, duration, config)
    if fps is None:
        raise CorruptVideoError(f"{path.name}: the video's frame rate cannot be determined")
    long_side, short_side = max(width, height), min(width, height)
    # Portrait video is as welcome as landscape: compare long side with long side.
    long_cap, short_cap = max(config.max_width, config.max_height), min(config.max_width, config.max_height)
    if long_side > long_cap or short_side > short_cap:
        raise LimitExceededError(
            f"{path.name} is {width}×{height}; the limit is {config.max_width}×{config.max_height}"
        )
    if width * height * fps > config.max_pixels_per_second:
        raise LimitExceededError(
            f"{path.name} is {width}×{height} at {fps:.1f} fps, past the limit of "
            f"{config.max_pixels_per_second / 1e6:.0f} Mpixel/s"
        )
    # A video of a single frame is a still picture: analysed like an image, decoded by ffmpeg.
    single = (nb_frames if nb_frames is not None else duration * fps) < 1.5
    bit_rate = _parse_float(fmt.get("bit_rate"))
    return VideoInfo(
        duration_s=round(duration, 6),
        fps=round(fps, 6),
        width=width,
        height=height,
        codec=codec,
        rotation=rotation,
        nb_frames=nb_frames,
        format_name=format_name,
        size_bytes=stat.st_size,
        has_audio=has_audio,
        bit_rate=int(bit_rate) if bit_rate is not None else None,
        stream_index=int(stream.get("index") or 0),
        start_time_s=round(start_time or 0.0, 6),
        timeline=timeline,
        media_type="image" if single else "video",
    )


def _check_claimed_duration(path: Path, claimed: float, config: AnalysisConfig) -> None:
    if claimed > config.max_duration_s:
        raise LimitExceededError(
            f"{path.name} claims to last {human_duration(claimed)}; the limit is "
            f"{human_duration(config.max_duration_s)}"
        )


def _choose_stream(
    pictures: Sequence[dict[str, Any]], scans: dict[int, StreamPackets], is_still_format: bool
) -> dict[str, Any]:
    """The stream to analyse: the largest picture that moves (two frames or more), the default
    one among equals. A cover image or thumbnail stored as a stream of its own is passed over."""

    def moves(stream: dict[str, Any]) -> bool:
        codec = str(stream.get("codec_name") or "")
        if codec in IMAGE_CODECS and is_still_format:
            return False
        scan = scans.get(int(stream.get("index") or 0))
        if scan is not None:
            return scan.count >= 2
        if scans:
            return False  # listed, and no packet of this stream
        return codec not in IMAGE_CODECS  # no listing: only the header to go by

    def rank(stream: dict[str, Any]) -> tuple[int, int, int]:
        area = int(stream.get("width") or 0) * int(stream.get("height") or 0)
        default = int((stream.get("disposition") or {}).get("default") or 0)
        return area, default, -int(stream.get("index") or 0)

    moving = [s for s in pictures if moves(s)]
    return max(moving or pictures, key=rank)


def _timeline_rate(timeline: FrameTimeline, header_fps: float | None) -> float | None:
    """The average frame rate the timeline shows; the header's when they agree (it is exact)."""
    if len(timeline) < 2:
        return header_fps
    span = float(timeline.times[-1] - timeline.times[0])
    if span <= 0:
        return header_fps
    measured = (int(timeline.numbers[-1]) - int(timeline.numbers[0])) / span
    if header_fps is not None and abs(measured - header_fps) <= 0.01 * header_fps:
        return header_fps
    return measured
