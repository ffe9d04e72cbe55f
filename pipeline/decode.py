"""Decode only a segment's sampled frames with ffmpeg, read as raw RGB from a pipe in fixed-size chunks.

ffmpeg does the dropping, the rotation and the scaling; Python only ever sees the sampled frames.
"""

from __future__ import annotations

import io
import logging
import subprocess
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np

from pipeline._ffmpeg import ffmpeg_binary, stop_process
from pipeline.errors import (
    CorruptVideoError,
    DecodeError,
    DecodeTimeoutError,
)
from pipeline.plan import MATCH_BEFORE_S, SEEK_PAST_S, decoded_size, sample_numbers
from pipeline.types import AnalysisConfig, SegmentPlan, VideoInfo

__all__ = ["SegmentDecoder", "decode_segment"]

log = logging.getLogger(__name__)

# Decoding stops this long after the last sample's time when frames are missing.
DECODE_PAST_LAST_S = 1.0
# Frame times within this tolerance of the claimed end may be missing: container durations are
# often a frame or two longer than the picture stream.
END_TOLERANCE_S = 1.0
_STDERR_LINES_KEPT = 40
_CORRUPTION_MARKERS = (
    "invalid data",
    "partial file",
    "error while decoding",
    "corrupt",
    "truncat",
    "moov atom not found",
    "invalid nal",
    "missing picture",
    "concealing",
)


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
            ffmpeg_binary("ffmpeg"),
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-threads",
            str(self.config.ffmpeg_threads),
            *clock,
            *seek,
            "-i",
            str(self.path),
            "-map",
            stream,
            "-an",
            "-sn",
            "-dn",
            "-vf",
            ",".join(filters),
            # Pass the selected frames through as they are: no frame duplicated to fill the gaps.
            "-vsync",
            "passthrough",
            "-frames:v",
            str(len(self.frames)),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "pipe:1",
        ]

    def __enter__(self) -> SegmentDecoder:
        if len(self.frames) == 0:
            self._ended = True
            return self
        try:
            self._process = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
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
            stop_process(self._process)
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
            stop_process(process)  # it may still be flushing; we have what we need
        else:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                stop_process(process)
        if self._stderr is not None:
            self._stderr.join(timeout=5)
        stderr_lines = self._stderr.lines if self._stderr is not None else []
        stderr_text = "\n".join(_strip_context(line) for line in stderr_lines)
        if stderr_text:
            log.info(
                "video.decode.stderr",
                extra={"path": str(self.path), "segment": self.plan.index, "stderr": stderr_text[-2000:]},
            )
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
