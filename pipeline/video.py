"""Video input: probe with ffprobe, plan segments and sampled frames, decode only those frames with ffmpeg.

The probe lists the packets of the video (demuxing only, no decoding) to learn when each frame is
shown and where the keyframes are: frames are chosen by their own timestamps, so variable frame
rates (screen and browser recordings) sample the frames that are really there. ffmpeg does the
dropping, the rotation and the scaling; Python only ever sees the sampled frames, read as raw RGB
from a pipe in fixed-size chunks.
"""

from __future__ import annotations

import io
import json
import logging
import math
import shutil
import subprocess
import threading
from array import array
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import numpy as np

from pipeline.errors import (
    CorruptVideoError,
    DecodeError,
    DecodeTimeoutError,
    EmptyFileError,
    InputError,
    LimitExceededError,
    NotAVideoError,
    NoVideoStreamError,
    PipelineError,
    SourceNotFoundError,
)
from pipeline.types import AnalysisConfig, FrameTimeline, SegmentPlan, VideoInfo

__all__ = [
    "SegmentDecoder",
    "decode_segment",
    "decoded_size",
    "frame_number",
    "plan_segments",
    "probe",
    "sample_numbers",
]

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
# A sample matches the first frame at or after its time less this (below MIN_FRAME_GAP_S, above
# a millisecond clock's rounding, so plans made from rounded times still find their frame).
MATCH_BEFORE_S = 0.0006
# The decoder seeks this far past the first sample: to the keyframe at or before that frame.
SEEK_PAST_S = 0.0001
# Containers without an index that ffmpeg seeks in by bisecting timestamps (MPEG-TS and -PS): the
# seek may land just past the keyframe asked for, where the frames up to the next keyframe cannot
# be decoded, so they are sought this much before it. The others land on that keyframe.
BISECTED_FORMATS = frozenset({"mpegts", "mpegtsraw", "mpeg", "mpegvideo"})
BISECTED_SEEK_MARGIN_S = 1.0
# Decoding stops this long after the last sample's time when frames are missing.
DECODE_PAST_LAST_S = 1.0
# Codecs of still pictures: ffprobe reports an image as a one-frame stream of one of these.
IMAGE_CODECS = frozenset(
    {"mjpeg", "png", "apng", "bmp", "gif", "webp", "tiff", "jpeg2000", "jpegls", "jpegxl", "ppm", "pgm",
     "pam", "pbm", "qoi", "sgi", "targa", "dpx", "exr", "hdr", "xbm", "xpm", "pcx", "psd", "svg"}
)
# A segment tail shorter than this fraction of segment_seconds joins the previous segment, so a
# 10.2 s video is one task, not one task plus a task for a single frame.
MIN_TAIL_FRACTION = 0.2
# Frame times within this tolerance of the claimed end may be missing: container durations are
# often a frame or two longer than the picture stream.
END_TOLERANCE_S = 1.0
_STDERR_LINES_KEPT = 40
_CORRUPTION_MARKERS = ("invalid data", "partial file", "error while decoding", "corrupt", "truncat",
                       "moov atom not found", "invalid nal", "missing picture", "concealing")


def _ffmpeg_binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise PipelineError(f"{name} is not installed (Debian: apt-get install ffmpeg)",
                            code="ffmpeg_missing")
    return found


def _looks_like_video_container(head: bytes) -> bool:
    """True when the first bytes name a video container format, so a parse failure means damage."""
    if len(head) >= 8 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot"):
        return True
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # Matroska / WebM (EBML)
        return True
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return True
    # FLV, MPEG program stream, ASF / WMV
    if head.startswith((b"FLV", b"\x00\x00\x01\xba", b"\x30\x26\xb2\x75\x8e\x66\xcf\x11")):
        return True
    return len(head) > 188 and head[0] == 0x47 and head[188] == 0x47  # MPEG-TS sync bytes


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
        _ffmpeg_binary("ffprobe"), "-v", "error", "-hide_banner",
        "-print_format", "json", "-show_format", "-show_streams", "--", str(path),
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
            head = handle.read(512)
        reason = stderr.splitlines()[-1] if stderr else f"ffprobe exit status {result.returncode}"
        reason = reason.replace(f"{path}: ", "").replace(str(path), path.name)
        if _looks_like_video_container(head):
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
            head = handle.read(512)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})", code="unreadable_file") from exc

    doc = _run_ffprobe(path)
    fmt = doc.get("format") or {}
    streams = doc.get("streams") or []
    pictures = [
        s for s in streams
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    has_audio = any(s.get("codec_type") == "audio" for s in streams)
    if not pictures:
        if has_audio:
            raise NoVideoStreamError(f"{path.name} has audio but no video stream")
        if _looks_like_video_container(head):
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
        _ffmpeg_binary("ffprobe"), "-v", "error", "-hide_banner", "-select_streams", "v",
        "-show_entries", "packet=stream_index,pts,dts,duration,flags", "-of", "compact=p=0",
        "--", str(path),
    ]
    try:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL)
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
        _stop(process)
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


def _sample_step(duration: float, config: AnalysisConfig) -> tuple[int, float]:
    """How many frames a window of ``duration`` seconds samples, and the time between them."""
    wanted = max(1, math.floor(duration * config.sample_fps + 1e-9))
    if wanted <= config.max_frames:
        return wanted, 1.0 / config.sample_fps
    return config.max_frames, duration / config.max_frames  # capped: spread evenly over the window


def plan_segments(info: VideoInfo, config: AnalysisConfig | None = None) -> list[SegmentPlan]:
    """Cut the video into ``segment_seconds`` windows and choose the frames each one samples.

    Frames are sampled every 1/sample_fps seconds from the start of each window; when that is
    more than ``max_frames``, the ``max_frames`` frames are spread evenly over the window instead.
    Each sample is a whole source frame, the one nearest to the sampling instant among those
    shown from within the window: its time and number are that frame's. With the probe's
    timeline these are the frames' own timestamps, whatever the frame rate does; without it
    (plain ``VideoInfo``), frames are taken to be evenly spaced at ``info.fps``.

    Raises LimitExceededError (``sparse_keyframes``) when a segment would decode more than
    ``max_keyframe_lead_s`` of video before its first sample.
    """
    config = config or AnalysisConfig()
    if config.segment_seconds <= 0 or config.sample_fps <= 0 or config.max_frames < 1:
        raise ValueError("segment_seconds and sample_fps must be positive and max_frames at least 1")
    duration = info.duration_s
    bounds: list[tuple[float, float]] = []
    start = 0.0
    while start < duration - 1e-9:
        end = min(start + config.segment_seconds, duration)
        bounds.append((start, end))
        start = end
    if len(bounds) >= 2 and bounds[-1][1] - bounds[-1][0] < MIN_TAIL_FRACTION * config.segment_seconds:
        tail = bounds.pop()
        bounds[-1] = (bounds[-1][0], tail[1])
    timeline = info.timeline
    plans = []
    for index, (start, end) in enumerate(bounds):
        count, step = _sample_step(end - start, config)
        seek = None
        if timeline is not None:
            first = 0 if index == 0 else None
            last = len(timeline) if index == len(bounds) - 1 else None
            positions = _nearest_frames(timeline.times, start, end, count, step, first=first, last=last)
            times = tuple(round(float(timeline.times[p]), 6) for p in positions)
            numbers = tuple(int(timeline.numbers[p]) for p in positions)
            seek = _seek_point(timeline, times[0], info.format_name) if times else None
        else:
            frames = _frame_numbers(start, end, info.fps, count, step)
            times = tuple(round(n / info.fps, 6) for n in frames)
            numbers = tuple(frames)
        plans.append(SegmentPlan(index=index, start_s=round(start, 6), end_s=round(end, 6),
                                 frame_times=times, frame_numbers=numbers, seek_s=seek))
    if timeline is not None:
        _check_keyframe_leads(plans, timeline, config)
    return plans


def _keyframe_before(timeline: FrameTimeline, t: float) -> int | None:
    """Position in ``timeline.keyframes`` of the last keyframe at or before ``t``; None if none."""
    before = int(np.searchsorted(timeline.keyframes, t + MATCH_BEFORE_S, side="right")) - 1
    return before if before >= 0 else None


def _seek_point(timeline: FrameTimeline, first: float, format_name: str) -> float | None:
    """Where the decoder of a segment whose first sample is shown at ``first`` seeks to."""
    if len(timeline.keyframes) == 0:
        return None  # unknown: the decoder seeks just past the first sample
    before = _keyframe_before(timeline, first)
    if before is None or before == 0:
        # From the first keyframe: decoding from the start costs the same, and some demuxers
        # (FLV) seek badly to their very beginning.
        return 0.0
    if BISECTED_FORMATS & set(format_name.split(",")):
        return round(max(0.0, float(timeline.keyframes[before]) - BISECTED_SEEK_MARGIN_S), 6)
    return round(first + SEEK_PAST_S, 6)


def _nearest_frames(
    times: np.ndarray, start: float, end: float, count: int, step: float,
    *, first: int | None = None, last: int | None = None,
) -> list[int]:
    """Positions in ``times`` of the frames nearest to ``start + k·step`` (k < count) among those
    shown from [start, end) (``first``/``last`` widen that to the ends of the video); none when
    no frame starts in the window (a still stretch of a variable-rate video)."""
    lo = first if first is not None else int(np.searchsorted(times, start - 1e-6, side="left"))
    hi = last if last is not None else int(np.searchsorted(times, end - 1e-6, side="left"))
    if hi <= lo:
        return []
    window = times[lo:hi]
    instants = start + np.arange(count) * step
    after = np.clip(np.searchsorted(window, instants, side="left"), 0, len(window) - 1)
    before = np.clip(after - 1, 0, len(window) - 1)
    # Ties go to the later frame, as rounding a frame number half up does.
    nearest = np.where(instants - window[before] < window[after] - instants, before, after)
    chosen: list[int] = []
    for position in nearest.tolist():
        if not chosen or position > chosen[-1]:
            chosen.append(position)
    return [lo + position for position in chosen]


def _check_keyframe_leads(
    plans: Sequence[SegmentPlan], timeline: FrameTimeline, config: AnalysisConfig
) -> None:
    """Refuse a file whose segments would each decode from a keyframe far back: without a
    keyframe near each segment, every segment re-decodes the video up to it (quadratic cost)."""
    if len(timeline.keyframes) == 0:
        return  # the container does not flag keyframes: nothing to go by
    for plan in plans:
        if not plan.frame_times:
            continue
        first = plan.frame_times[0]
        before = _keyframe_before(timeline, first)
        lead = first - float(timeline.keyframes[before] if before is not None else timeline.times[0])
        if lead > config.max_keyframe_lead_s:
            raise LimitExceededError(
                f"keyframes are too far apart: segment {plan.index} ({plan.start_s:g}–{plan.end_s:g} s) "
                f"would decode {lead:.0f} s of video before its first frame; the limit is "
                f"{config.max_keyframe_lead_s:g} s (re-encode with a keyframe every few seconds, "
                "e.g. ffmpeg -g 60)",
                code="sparse_keyframes",
            )


def _frame_numbers(start: float, end: float, fps: float, count: int, step: float) -> list[int]:
    """The source frames nearest to ``start + k·step`` (k < count) among those shown in [start, end),
    for frames evenly spaced at ``fps``. When the sampling rate is above the frame rate, the
    repeats are dropped.
    """
    first = math.ceil(start * fps - 1e-6)
    last = max(first, math.ceil(end * fps - 1e-6) - 1)
    chosen: list[int] = []
    for k in range(count):
        number = min(max(math.floor((start + k * step) * fps + 0.5), first), last)
        if not chosen or number > chosen[-1]:
            chosen.append(number)
    return chosen


def frame_number(t: float, fps: float) -> int:
    """The source frame a time stands for in evenly spaced video (plans made without a timeline)."""
    return max(0, math.floor(t * fps + 0.5))


def sample_numbers(plan: SegmentPlan, info: VideoInfo) -> list[int]:
    """The source frame number of each of ``plan``'s samples."""
    if len(plan.frame_numbers) == len(plan.frame_times):
        return list(plan.frame_numbers)
    return [frame_number(t, info.fps) for t in plan.frame_times]


def decoded_size(info: VideoInfo, config: AnalysisConfig) -> tuple[int, int]:
    """Width and height of the frames ``decode_segment`` returns (the displayed size, capped)."""
    long_side = max(info.width, info.height)
    limit = config.decode_long_side
    if limit <= 0 or long_side <= limit:
        return info.width, info.height
    scale = limit / long_side
    # Even sizes: yuv420 sources scale cleanly and every encoder accepts them.
    return max(2, round(info.width * scale / 2) * 2), max(2, round(info.height * scale / 2) * 2)


class _StderrReader(threading.Thread):
    """Drains ffmpeg's stderr so it can never block on a full pipe; keeps the last lines."""

    def __init__(self, stream: Any) -> None:
        super().__init__(daemon=True)
        self._stream = stream
        self.lines: deque[str] = deque(maxlen=_STDERR_LINES_KEPT)

    def run(self) -> None:
        for raw in iter(self._stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip()
            if line:
                self.lines.append(line)
        self._stream.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    """terminate → wait → kill: ffmpeg gets a chance to exit cleanly, but never hangs the caller."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


class SegmentDecoder:
    """Decodes one segment's sampled frames in the background and hands them out as they arrive.

    One ffmpeg process: input seek to the keyframe before the segment's first sample, ``select``
    filter to keep only the sampled frames (by their timestamps, so each is exactly the frame its
    time names), optional downscale to ``decode_long_side``, raw RGB on stdout. A reader thread
    copies each frame straight into ``frames`` (preallocated N×H×W×3 uint8), so ffmpeg keeps
    decoding while the caller works on the frames already there::

        with SegmentDecoder(path, info, plan, config) as decoder:
            for start, stop in decoder.chunks(8):
                use(decoder.frames[start:stop])

    ``chunks`` raises DecodeTimeoutError past ``decode_timeout_s``, CorruptVideoError when the
    stream breaks off, DecodeError otherwise; leaving the block stops ffmpeg in every case.
    """

    def __init__(
        self, path: str | Path, info: VideoInfo, plan: SegmentPlan, config: AnalysisConfig | None = None
    ) -> None:
        self.path = Path(path)
        self.info = info
        self.plan = plan
        self.config = config or AnalysisConfig()
        width, height = decoded_size(info, self.config)
        self.frames = np.empty((len(plan.frame_times), height, width, 3), dtype=np.uint8)
        self.count = 0  # frames completely read so far
        self._ended = False
        self._read_error: OSError | None = None
        self._changed = threading.Condition()
        self._timed_out = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._threads: list[threading.Thread] = []
        self._stderr: _StderrReader | None = None
        self._watchdog: threading.Timer | None = None

    @property
    def times(self) -> list[float]:
        """Times of the frames read so far."""
        return list(self.plan.frame_times[: self.count])

    def _command(self) -> list[str]:
        height, width = self.frames.shape[1:3]
        info, times = self.info, self.plan.frame_times
        # Timestamps as the container has them (-copyts): the plan's times are the frames' own, so
        # each sample is the first frame shown at or after its time. Times count from the file's
        # start; for an older probe that did not record it, ffmpeg shifts the clock to zero.
        clock = ["-copyts"] if info.start_time_s is not None else ["-copyts", "-start_at_zero"]
        offset = info.start_time_s or 0.0
        # The demuxer goes back to the keyframe before the seek point, and every frame from there
        # on reaches the select filter (which drops all but the samples). Plans that do not say
        # where to seek: just past the first sample.
        seek_to = self.plan.seek_s
        if seek_to is None:
            seek_to = times[0] + SEEK_PAST_S if sample_numbers(self.plan, info)[0] > 0 else 0.0
        seek = ["-noaccurate_seek", "-ss", f"{seek_to:.6f}"] if seek_to > 0 else []
        wanted = "+".join(
            f"gte(t,{at:.6f})*not(gte(prev_t,{at:.6f}))"
            for at in (t + offset - MATCH_BEFORE_S for t in times)
        )
        # trim ends the decode soon after the last sample when frames are missing; -frames:v ends
        # it at the last sample otherwise.
        filters = [f"trim=end={times[-1] + offset + DECODE_PAST_LAST_S:.6f}", f"select='{wanted}'"]
        if (width, height) != (info.width, info.height):
            filters.append(f"scale={width}:{height}:flags=area")
        stream = f"0:{info.stream_index}" if info.stream_index is not None else "0:v:0"
        return [
            _ffmpeg_binary("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "error",
            "-threads", str(self.config.ffmpeg_threads),
            *clock, *seek,
            "-i", str(self.path),
            "-map", stream, "-an", "-sn", "-dn",
            "-vf", ",".join(filters),
            # Pass the selected frames through as they are: no frame duplicated to fill the gaps.
            "-vsync", "passthrough",
            "-frames:v", str(len(self.frames)),
            "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1",
        ]

    def __enter__(self) -> SegmentDecoder:
        if len(self.frames) == 0:
            self._ended = True
            return self
        try:
            self._process = subprocess.Popen(
                self._command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                bufsize=0,
            )
        except OSError as exc:
            raise DecodeError(f"{self.path.name}: ffmpeg could not start ({exc})") from exc
        assert self._process.stderr is not None
        self._stderr = _StderrReader(self._process.stderr)
        self._stderr.start()
        reader = threading.Thread(target=self._read_frames, name="segment-reader", daemon=True)
        reader.start()
        self._threads = [reader]
        self._watchdog = threading.Timer(self.config.decode_timeout_s, self._on_timeout)
        self._watchdog.daemon = True
        self._watchdog.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._process is not None:
            _stop(self._process)
        for thread in self._threads:
            thread.join(timeout=5)
        if self._stderr is not None:
            self._stderr.join(timeout=5)
        # The watchdog holds a bound method of this object: a reference cycle that would keep the
        # frame buffer (hundreds of MB) alive until the garbage collector happens to run.
        self._watchdog = None
        self._threads = []

    def _on_timeout(self) -> None:
        self._timed_out.set()
        if self._process is not None:
            self._process.kill()

    def _read_frames(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        stdout = cast(io.RawIOBase, self._process.stdout)  # unbuffered (bufsize=0): raw reads
        frame_bytes = self.frames[0].nbytes
        try:
            for index in range(len(self.frames)):
                view = memoryview(self.frames[index]).cast("B")
                filled = 0
                while filled < frame_bytes:
                    got = stdout.readinto(view[filled:])
                    if not got:
                        break
                    filled += got
                if filled < frame_bytes:
                    break  # end of stream; a partial frame is dropped
                with self._changed:
                    self.count = index + 1
                    self._changed.notify_all()
        except OSError as exc:  # the pipe closed under us (timeout kill)
            self._read_error = exc
        finally:
            stdout.close()
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def chunks(self, size: int) -> Iterator[tuple[int, int]]:
        """Yield (start, stop) ranges of ``frames`` as soon as ``size`` more are ready (or the end)."""
        size = max(1, size)
        start = 0
        while True:
            wanted = start + size
            with self._changed:
                self._changed.wait_for(lambda: self._ended or self.count >= wanted)  # noqa: B023
                stop = min(self.count, start + size)
                ended = self._ended
            if stop > start:
                yield start, stop
                start = stop
                continue
            if ended:
                break
        self._finish()

    def _finish(self) -> None:
        """After the last frame: wait for ffmpeg and decide whether the segment is complete."""
        process = self._process
        if process is None:
            return
        wanted = len(self.frames)
        if self.count >= wanted:
            _stop(process)  # it may still be flushing; we have what we need
        else:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _stop(process)
        if self._stderr is not None:
            self._stderr.join(timeout=5)
        stderr_lines = self._stderr.lines if self._stderr is not None else []
        stderr_text = "\n".join(_strip_context(line) for line in stderr_lines)
        if stderr_text:
            log.info("video.decode.stderr", extra={"path": str(self.path), "segment": self.plan.index,
                                                    "stderr": stderr_text[-2000:]})
        if self._timed_out.is_set():
            raise DecodeTimeoutError(
                f"{self.path.name}: decoding segment {self.plan.index} took longer than "
                f"{self.config.decode_timeout_s:g} s"
            )
        if self.count < wanted:
            _raise_for_shortfall(self.path, self.info, self.plan, self.count, process.returncode, stderr_text)


def decode_segment(
    path: str | Path, info: VideoInfo, plan: SegmentPlan, config: AnalysisConfig | None = None
) -> tuple[list[float], np.ndarray]:
    """Decode the frames ``plan`` samples: (their times in seconds, uint8 array N×H×W×3 RGB).

    The whole segment at once; see ``SegmentDecoder`` for the errors and for frames as they come.
    """
    with SegmentDecoder(path, info, plan, config) as decoder:
        for _ in decoder.chunks(len(decoder.frames) or 1):
            pass
        return decoder.times, decoder.frames[: decoder.count]


def _strip_context(line: str) -> str:
    """Drop ffmpeg's ``[mov,mp4 @ 0x55…]`` prefix: an address means nothing to a reader."""
    if line.startswith("[") and " @ 0x" in line.split("]", 1)[0]:
        return line.split("] ", 1)[-1]
    return line


def _raise_for_shortfall(
    path: Path, info: VideoInfo, plan: SegmentPlan, got: int, returncode: int | None, stderr_text: str
) -> None:
    """Decide whether missing frames mean a broken file or just a duration that was rounded up."""
    missing_from = plan.frame_times[got]
    lowered = stderr_text.lower()
    last_line = stderr_text.splitlines()[-1].replace(str(path), path.name) if stderr_text else ""
    if any(marker in lowered for marker in _CORRUPTION_MARKERS):
        raise CorruptVideoError(
            f"{path.name} is truncated or corrupt: the picture stops at about {missing_from:.1f} s "
            f"of {info.duration_s:.1f} s ({last_line.split(': ')[-1]})"
        )
    near_end = missing_from >= info.duration_s - END_TOLERANCE_S
    if got > 0 and near_end and returncode == 0:
        return
    if returncode not in (0, None):
        raise DecodeError(f"{path.name}: ffmpeg failed on segment {plan.index} ({last_line or returncode})")
    raise CorruptVideoError(
        f"{path.name} is truncated: the picture stops at about {missing_from:.1f} s "
        f"of {info.duration_s:.1f} s"
    )
