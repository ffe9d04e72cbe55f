"""Probe a video with ffprobe: streams, duration, rotation, and when each frame is shown.

The packets of the video are listed (demuxing only, no decoding) to learn each frame's time and
where the keyframes are, so variable frame rates sample the frames that are really there.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import threading
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from core.media import SNIFF_BYTES, looks_like_video
from pipeline._ffmpeg import ffmpeg_binary, stop_process
from pipeline.errors import (
    CorruptVideoError,
    DecodeError,
    DecodeTimeoutError,
    EmptyFileError,
    InputError,
    LimitExceededError,
    NotAVideoError,
    NoVideoStreamError,
    SourceNotFoundError,
)
from pipeline.types import AnalysisConfig, FrameTimeline, VideoInfo

__all__ = ["probe"]

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 30.0
# Listing the packets reads the whole file (no decoding): about a second per hour of 30 fps video.
SCAN_TIMEOUT_S = 120.0
# Packets listed per second of the duration cap, at most: a file holding more frames than this
# rate allows over the longest accepted video is refused rather than indexed in memory.
MAX_SCANNED_FPS = 240.0
# Container clocks are as coarse as a millisecond. Frames closer together than this cannot be
# told apart by time: the later one is never sampled.
MIN_FRAME_GAP_S = 0.001
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


def probe(path: str | Path, config: AnalysisConfig | None = None) -> VideoInfo:
    """Read what the video is and refuse what cannot or must not be analysed.

    Raises SourceNotFoundError, EmptyFileError, NotAVideoError, NoVideoStreamError,
    CorruptVideoError or LimitExceededError; never returns a VideoInfo it could not decode.
    """
    config = config or AnalysisConfig()
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
    scans = _scan_packets(path, pictures, config)
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
    if codec in IMAGE_CODECS and (single_frame or is_still_format):
        raise NotAVideoError(f"{path.name} is a still image ({codec}), not a video")

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
    if (nb_frames if nb_frames is not None else duration * fps) < 1.5:
        raise NotAVideoError(
            f"{path.name} holds a single frame: a still picture, not a video (analyse videos of "
            "at least two frames)"
        )
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
    )


def _check_claimed_duration(path: Path, claimed: float, config: AnalysisConfig) -> None:
    if claimed > config.max_duration_s:
        raise LimitExceededError(
            f"{path.name} claims to last {_human_duration(claimed)}; the limit is "
            f"{_human_duration(config.max_duration_s)}"
        )


@dataclass
class _StreamPackets:
    """What the packet listing says about one video stream: when its frames are shown."""

    ticks: array[int] = field(default_factory=lambda: array("q"))  # pts (or dts), stream time base
    keyframe_ticks: array[int] = field(default_factory=lambda: array("q"))
    untimed: int = 0  # packets with neither pts nor dts
    end_ticks: int | None = None  # latest pts + duration

    @property
    def count(self) -> int:
        return len(self.ticks) + self.untimed

    def _seconds(self, ticks: array[int], stream: dict[str, Any], start_s: float) -> np.ndarray | None:
        try:
            time_base = Fraction(str(stream.get("time_base")))
        except (ValueError, ZeroDivisionError):
            return None
        if time_base <= 0:
            return None
        values = np.sort(np.frombuffer(ticks, dtype=np.int64)) if len(ticks) else np.zeros(0, np.int64)
        return values.astype(np.float64) * (time_base.numerator / time_base.denominator) - start_s

    def timeline(self, stream: dict[str, Any], start_s: float) -> FrameTimeline | None:
        """Frame times from the file's start; None when some frames carry no time at all."""
        if self.untimed or len(self.ticks) < 1:
            return None
        seconds = self._seconds(self.ticks, stream, start_s)
        keyframes = self._seconds(self.keyframe_ticks, stream, start_s)
        if seconds is None or keyframes is None:
            return None
        keep = np.concatenate(([True], np.diff(seconds) >= MIN_FRAME_GAP_S))
        numbers = np.flatnonzero(keep).astype(np.int64)
        return FrameTimeline(times=seconds[keep], numbers=numbers, keyframes=np.unique(keyframes))

    def end_s(self, stream: dict[str, Any], start_s: float) -> float | None:
        """When the last frame stops being shown, from the file's start."""
        if self.end_ticks is None:
            return None
        end = self._seconds(array("q", [self.end_ticks]), stream, start_s)
        return float(end[0]) if end is not None and len(end) else None


def _scan_packets(
    path: Path, pictures: Sequence[dict[str, Any]], config: AnalysisConfig
) -> dict[int, _StreamPackets]:
    """List the packets of the video streams (demuxing only): their times and keyframe flags.

    Best effort: a listing ffprobe cannot make leaves the header's frame rate to go by (empty
    result). A file with more packets than ``MAX_SCANNED_FPS`` over the duration cap allows is
    refused; one that takes longer than ``SCAN_TIMEOUT_S`` to list is a timeout.
    """
    wanted = {int(s.get("index") or 0) for s in pictures}
    limit = max(10_000, int(config.max_duration_s * MAX_SCANNED_FPS))
    command = [
        ffmpeg_binary("ffprobe"),
        "-v",
        "error",
        "-hide_banner",
        "-select_streams",
        "v",
        "-show_entries",
        "packet=stream_index,pts,dts,duration,flags",
        "-of",
        "compact=p=0",
        "--",
        str(path),
    ]
    try:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
    except OSError as exc:
        raise DecodeError(f"{path.name}: ffprobe could not start ({exc})") from exc
    timed_out = threading.Event()

    def on_timeout() -> None:
        timed_out.set()
        process.kill()

    watchdog = threading.Timer(SCAN_TIMEOUT_S, on_timeout)
    watchdog.daemon = True
    watchdog.start()
    scans: dict[int, _StreamPackets] = {}
    seen = 0
    try:
        assert process.stdout is not None
        for line in process.stdout:
            items = line.decode("ascii", "replace").strip().split("|")
            packet = dict(item.partition("=")[::2] for item in items)
            try:
                index = int(packet.get("stream_index", ""))
            except ValueError:
                continue
            if index not in wanted or "D" in packet.get("flags", ""):
                continue  # another stream's, or one the demuxer marks to be discarded
            seen += 1
            if seen > limit:
                raise LimitExceededError(
                    f"{path.name} holds more than {limit:,} frames; the limit is {MAX_SCANNED_FPS:g} "
                    f"frames per second over at most {_human_duration(config.max_duration_s)}"
                )
            scan = scans.setdefault(index, _StreamPackets())
            ticks = _parse_ticks(packet.get("pts"))
            if ticks is None:
                ticks = _parse_ticks(packet.get("dts"))
            if ticks is None:
                scan.untimed += 1
                continue
            scan.ticks.append(ticks)
            if "K" in packet.get("flags", ""):
                scan.keyframe_ticks.append(ticks)
            end = ticks + (_parse_ticks(packet.get("duration")) or 0)
            if scan.end_ticks is None or end > scan.end_ticks:
                scan.end_ticks = end
    finally:
        watchdog.cancel()
        stop_process(process)
        if process.stdout is not None:
            process.stdout.close()
    if timed_out.is_set():
        raise DecodeTimeoutError(f"{path.name}: listing the frames took longer than {SCAN_TIMEOUT_S:.0f} s")
    if process.returncode != 0:
        log.info("video.probe.packets_unreadable", extra={"path": str(path), "status": process.returncode})
        return {}
    return scans


def _parse_ticks(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _choose_stream(
    pictures: Sequence[dict[str, Any]], scans: dict[int, _StreamPackets], is_still_format: bool
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


def _human_duration(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds:.0f} s"
