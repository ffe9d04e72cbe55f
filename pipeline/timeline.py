"""The frame timeline of a video: each packet's time and keyframe flag, listed by ffprobe, not decoded."""

from __future__ import annotations

import logging
import subprocess
import threading
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from pipeline._ffmpeg import ffmpeg_binary, stop_process
from pipeline.errors import DecodeError, DecodeTimeoutError, LimitExceededError
from pipeline.types import AnalysisConfig, FrameTimeline

__all__ = ["MIN_FRAME_GAP_S", "StreamPackets", "human_duration", "scan_packets"]

log = logging.getLogger(__name__)

# Listing the packets reads the whole file (no decoding): about a second per hour of 30 fps video.
SCAN_TIMEOUT_S = 120.0
# Packets listed per second of the duration cap, at most: a file holding more frames than this
# rate allows over the longest accepted video is refused rather than indexed in memory.
MAX_SCANNED_FPS = 240.0
# Container clocks are as coarse as a millisecond. Frames closer together than this cannot be
# told apart by time: the later one is never sampled.
MIN_FRAME_GAP_S = 0.001


@dataclass
class StreamPackets:
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


def scan_packets(
    path: Path, pictures: Sequence[dict[str, Any]], config: AnalysisConfig
) -> dict[int, StreamPackets]:
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
    scans: dict[int, StreamPackets] = {}
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
                    f"frames per second over at most {human_duration(config.max_duration_s)}"
                )
            scan = scans.setdefault(index, StreamPackets())
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


def human_duration(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds:.0f} s"
