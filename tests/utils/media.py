"""Media factories for tests and benchmarks: videos with known faces, and broken inputs of every kind.

Everything is generated here with numpy and the system ffmpeg, so no media file is ever stored
in the repository. Faces come from ``skimage.data.astronaut()``: its head is pasted into frames
at known positions, so tests can check that the pipeline finds it where it really is.
"""

from __future__ import annotations

import bisect
import functools
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

__all__ = [
    "ASTRONAUT_FACE_BOX",
    "BAD_MEDIA_KINDS",
    "FRAME_CODE_BITS",
    "FaceVideo",
    "box_iou",
    "face_mosaic",
    "make_bad_media",
    "make_face_video",
    "make_mosaic_video",
    "read_frame_code",
    "shot_frames",
]

Box = tuple[float, float, float, float]

# The head region cut out of skimage's astronaut (rows, columns), and the face box MTCNN finds
# inside that patch (x1, y1, x2, y2). Measured once with facenet-pytorch on the original image
# (181, 62, 268, 172) and shifted into patch coordinates.
_HEAD_ROWS = slice(10, 290)
_HEAD_COLS = slice(100, 350)
ASTRONAUT_FACE_BOX: Box = (81.0, 52.0, 168.0, 162.0)

# Frame codes: the frame's index written as black/white squares along the top-left edge, so a
# test can tell exactly which source frame the decoder returned.
FRAME_CODE_BITS = 12
_CODE_CELL = 16

BAD_MEDIA_KINDS = (
    "text",
    "image_as_mp4",
    "empty",
    "truncated",
    "corrupt_header",
    "audio_only",
    "absurd_resolution",
    "absurd_duration",
)
BadMediaKind = Literal[
    "text",
    "image_as_mp4",
    "empty",
    "truncated",
    "corrupt_header",
    "audio_only",
    "absurd_resolution",
    "absurd_duration",
]


@dataclass(frozen=True)
class FaceVideo:
    """A generated video and the ground truth needed to check what the pipeline finds in it."""

    path: Path
    seconds: float
    width: int
    height: int
    fps: float
    faces: int
    codec: str
    frame_count: int
    # Per face: x_from, x_to, y_top, patch height, mirrored.
    face_lanes: tuple[tuple[float, float, float, int, bool], ...]
    # Presentation time of each frame (seconds), by frame index.
    frame_times: tuple[float, ...] = ()

    def face_boxes(self, frame_index: int) -> list[Box]:
        """Where the faces are in frame ``frame_index`` (full-resolution pixels, x1, y1, x2, y2)."""
        if self.faces == 0:
            return []
        progress = frame_index / max(self.frame_count - 1, 1)
        boxes: list[Box] = []
        for x_from, x_to, y_top, patch_height, mirrored in self.face_lanes:
            scale = patch_height / (_HEAD_ROWS.stop - _HEAD_ROWS.start)
            left = round(x_from + (x_to - x_from) * progress)
            top = round(y_top)
            fx1, fy1, fx2, fy2 = ASTRONAUT_FACE_BOX
            if mirrored:  # the mirrored head: its face box mirrors too
                patch_width = round((_HEAD_COLS.stop - _HEAD_COLS.start) * scale)
                fx1, fx2 = patch_width / scale - fx2, patch_width / scale - fx1
            boxes.append((left + fx1 * scale, top + fy1 * scale, left + fx2 * scale, top + fy2 * scale))
        return boxes

    def face_boxes_at(self, t: float) -> list[Box]:
        return self.face_boxes(self.frame_at(t))

    def frame_at(self, t: float) -> int:
        """The index of the frame shown at ``t`` seconds (the last one that starts by then)."""
        if not self.frame_times:
            return round(t * self.fps)
        return max(0, bisect.bisect_right(self.frame_times, t + 1e-3) - 1)  # millisecond clocks


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix1, iy1 = max(a[0], b[0]), max(a[1], b[1])
    ix2, iy2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, ix2 - ix1) * max(0.0, iy2 - iy1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@functools.lru_cache(maxsize=8)
def _head_patch(height: int, mirrored: bool) -> np.ndarray:
    from skimage import data

    head = data.astronaut()[_HEAD_ROWS, _HEAD_COLS]
    if mirrored:
        head = head[:, ::-1]
    scale = height / head.shape[0]
    width = round(head.shape[1] * scale)
    return np.ascontiguousarray(cv2.resize(head, (width, height), interpolation=cv2.INTER_AREA))


@functools.lru_cache(maxsize=4)
def _faceless_patch(height: int) -> np.ndarray:
    from skimage import data

    coffee = data.coffee()  # a cup on a saucer: textured, no face
    scale = height / coffee.shape[0]
    return np.ascontiguousarray(
        cv2.resize(coffee, (round(coffee.shape[1] * scale), height), interpolation=cv2.INTER_AREA)
    )


def _background(width: int, height: int) -> np.ndarray:
    """A still, textured backdrop (smooth colour ramps and a soft pattern): not trivially flat."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    red = 60 + 60 * xs / max(width, 1)
    green = 70 + 50 * ys / max(height, 1)
    blue = 90 + 25 * np.sin(xs / 37.0) * np.cos(ys / 29.0)
    return np.clip(np.stack([red, green, blue], axis=-1), 0, 255).astype(np.uint8)


def _draw_frame_code(frame: np.ndarray, index: int) -> None:
    for bit in range(FRAME_CODE_BITS):
        value = 255 if (index >> bit) & 1 else 0
        x = bit * _CODE_CELL
        frame[0:_CODE_CELL, x : x + _CODE_CELL] = value


def read_frame_code(frame: np.ndarray) -> int:
    """Read back the frame index written by ``make_face_video(..., frame_code=True)``."""
    index = 0
    half = _CODE_CELL // 2
    for bit in range(FRAME_CODE_BITS):
        x = bit * _CODE_CELL
        # The middle of each cell: compression smears the edges, never the centre.
        cell = frame[half - 3 : half + 3, x + half - 3 : x + half + 3]
        if float(cell.mean()) > 127:
            index |= 1 << bit
    return index


def _ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        raise RuntimeError("ffmpeg is not installed; the media factories need it")
    return path


def _encoder_args(codec: str) -> list[str]:
    if codec in ("libx264", "h264"):
        return ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"]
    if codec in ("libx265", "hevc"):
        return ["-c:v", "libx265", "-preset", "ultrafast", "-crf", "24", "-pix_fmt", "yuv420p",
                "-x265-params", "log-level=error"]
    if codec in ("libvpx-vp9", "vp9"):
        return ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "0",
                "-crf", "32", "-pix_fmt", "yuv420p"]
    if codec == "mpeg4":
        return ["-c:v", "mpeg4", "-q:v", "4", "-pix_fmt", "yuv420p"]
    if codec == "mjpeg":
        return ["-c:v", "mjpeg", "-q:v", "4", "-pix_fmt", "yuvj420p"]
    raise ValueError(f"unsupported codec {codec!r}")


def make_face_video(
    path: str | Path,
    *,
    seconds: float = 2.0,
    width: int = 640,
    height: int = 360,
    fps: float = 30.0,
    faces: int = 1,
    codec: str = "libx264",
    audio: bool = False,
    rotation: int = 0,
    frame_code: bool = False,
    faststart: bool = False,
    travel: float = 1.0,
    frame_rates: Sequence[tuple[float, float]] = (),
    keyframe_interval: int | None = None,
) -> FaceVideo:
    """Encode a video in which ``faces`` (0, 1 or 2) astronaut heads move across the frame.

    Face 1 moves left → right along the upper lane, face 2 (mirrored) right → left along the
    lower one; with ``faces=0`` a coffee cup moves instead, so there is motion but no face.
    ``rotation`` (0, 90, 180, 270) is written as the stream's ``rotate`` tag, which this ffmpeg
    stores as a display matrix: players, and ffmpeg, show the frames rotated (the returned width
    and height are the displayed ones). ``frame_code`` writes each frame's index in its top-left
    corner (see ``read_frame_code``). ``travel`` is the fraction of the frame's free width the
    faces cross over the whole video (1.0: edge to edge; smaller is slower).

    ``frame_rates`` makes a variable frame rate, as screen and browser recorders do: pieces of
    (frames per second, seconds) played one after the other, in place of ``fps`` and ``seconds``.
    ``keyframe_interval`` puts a keyframe every that many frames and nowhere else (0: the first
    frame only); by default the encoder chooses.
    """
    if faces not in (0, 1, 2):
        raise ValueError("faces must be 0, 1 or 2")
    if width % 2 or height % 2:
        raise ValueError("width and height must be even (yuv420p)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame_times = _frame_times(frame_rates) if frame_rates else ()
    frame_count = len(frame_times) if frame_rates else max(1, round(seconds * fps))
    lanes = max(faces, 1)
    patch_height = int(min(0.5 * height, 0.85 * height / lanes))
    lane_height = height / lanes

    movers: list[tuple[np.ndarray, float, float, float]] = []  # patch, x_from, x_to, y_top
    face_lanes: list[tuple[float, float, float, int, bool]] = []
    for lane in range(lanes):
        mirrored = lane == 1
        patch = _head_patch(patch_height, mirrored) if faces else _faceless_patch(patch_height)
        free = max(width - patch.shape[1], 0)
        distance = round(free * min(max(travel, 0.0), 1.0))
        x_from, x_to = (float(free), float(free - distance)) if mirrored else (0.0, float(distance))
        y_top = float(round(lane * lane_height + (lane_height - patch_height) / 2))
        movers.append((patch, x_from, x_to, y_top))
        face_lanes.append((x_from, x_to, y_top, patch_height, mirrored))

    background = _background(width, height)
    tmp = path.with_name(path.name + ".encoding" + path.suffix)
    command = [
        _ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", f"{fps}", "-i", "pipe:0",
    ]
    if audio:
        command += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}"]
    if frame_rates:
        # Each frame is stamped with its own time; passthrough keeps the gaps as they are.
        command += ["-vf", f"settb=1/{_VFR_CLOCK},setpts='{_pts_expression(frame_times)}'",
                    "-fps_mode", "passthrough"]
        if path.suffix.lower() in (".mp4", ".mov", ".m4v"):
            command += ["-video_track_timescale", str(_VFR_CLOCK)]
    command += _encoder_args(codec)
    if keyframe_interval is not None:
        command += _keyframe_args(codec, keyframe_interval or frame_count + 1)
    if audio:
        command += ["-c:a", "aac", "-b:a", "64k", "-shortest"]
    if faststart and path.suffix.lower() in (".mp4", ".mov", ".m4v"):
        command += ["-movflags", "+faststart"]
    command.append(str(tmp))
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdin is not None
    try:
        for index in range(frame_count):
            progress = index / max(frame_count - 1, 1)
            frame = background.copy()
            for patch, x_from, x_to, y_top in movers:
                left = round(x_from + (x_to - x_from) * progress)
                top = round(y_top)
                ph, pw = patch.shape[:2]
                frame[top : top + ph, left : left + pw] = patch[: height - top, : width - left]
            if frame_code:
                _draw_frame_code(frame, index)
            process.stdin.write(frame.tobytes())
        process.stdin.close()
    except BrokenPipeError:
        pass
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.wait(timeout=600) != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"ffmpeg failed to encode {path.name}: {stderr.strip()[-500:]}")
    if rotation % 360:
        _set_rotation(tmp, path, rotation)
        tmp.unlink()
    else:
        tmp.replace(path)
    if frame_rates:
        seconds = sum(piece_seconds for _, piece_seconds in frame_rates)
        fps = frame_count / seconds
    return FaceVideo(
        path=path,
        seconds=seconds if frame_rates else frame_count / fps,
        width=width if rotation % 180 == 0 else height,
        height=height if rotation % 180 == 0 else width,
        fps=fps,
        faces=faces,
        codec=codec,
        frame_count=frame_count,
        face_lanes=tuple(face_lanes) if faces else (),
        frame_times=frame_times or tuple(index / fps for index in range(frame_count)),
    )


# Time base of variable-frame-rate test videos: 90 kHz holds every frame time of the usual rates.
_VFR_CLOCK = 90_000


def _frame_times(frame_rates: Sequence[tuple[float, float]]) -> tuple[float, ...]:
    times: list[float] = []
    start = 0.0
    for rate, seconds in frame_rates:
        count = max(1, round(rate * seconds))
        times.extend(start + round(index * _VFR_CLOCK / rate) / _VFR_CLOCK for index in range(count))
        start += count / rate
    return tuple(times)


def _pts_expression(frame_times: Sequence[float]) -> str:
    """A setpts expression (in ticks of ``_VFR_CLOCK``) that stamps frame N with ``frame_times[N]``:
    one linear piece per run of evenly spaced frames."""
    runs: list[tuple[int, float, float | None]] = []  # first frame, its time, seconds per frame
    for index, t in enumerate(frame_times):
        if runs:
            first, start, step = runs[-1]
            if step is None:
                runs[-1] = (first, start, t - start)  # a run's second frame sets its spacing
                continue
            if abs(start + (index - first) * step - t) < 1e-6:
                continue
        runs.append((index, t, None))
    expression = ""
    for position in reversed(range(len(runs))):
        first, start, step = runs[position]
        term = f"round(({start!r}+(N-{first})*{step or 0.0!r})*{_VFR_CLOCK})"
        expression = f"if(lt(N,{runs[position + 1][0]}),{term},{expression})" if expression else term
    return expression


def _keyframe_args(codec: str, interval: int) -> list[str]:
    if codec in ("libx264", "h264"):
        return ["-g", str(interval), "-keyint_min", str(interval), "-sc_threshold", "0"]
    if codec in ("libvpx-vp9", "vp9"):
        return ["-g", str(interval), "-keyint_min", str(interval)]
    raise ValueError(f"keyframe_interval is not supported for {codec!r}")


def _paste_head(frame: np.ndarray, patch_height: int, mirrored: bool, left: int, top: int) -> Box:
    """Paste an astronaut head at (left, top), cut at the frame's edges; its face box."""
    patch = _head_patch(patch_height, mirrored)
    height, width = frame.shape[:2]
    ph, pw = patch.shape[:2]
    x1, y1 = max(left, 0), max(top, 0)
    x2, y2 = min(left + pw, width), min(top + ph, height)
    if x2 > x1 and y2 > y1:
        frame[y1:y2, x1:x2] = patch[y1 - top : y2 - top, x1 - left : x2 - left]
    scale = patch_height / (_HEAD_ROWS.stop - _HEAD_ROWS.start)
    fx1, fy1, fx2, fy2 = ASTRONAUT_FACE_BOX
    if mirrored:
        fx1, fx2 = pw / scale - fx2, pw / scale - fx1
    return (left + fx1 * scale, top + fy1 * scale, left + fx2 * scale, top + fy2 * scale)


def shot_frames(
    width: int, height: int, count: int, *, patch_height: int, cut_at: int | None = None, step: int = 12,
    enters_at: int = 0,
) -> tuple[np.ndarray, list[list[Box]]]:
    """Sampled frames of up to two shots, made in memory: (N×H×W×3 uint8 RGB, face boxes per frame).

    Shot one: the astronaut's head ``patch_height`` pixels tall moves ``step`` pixels right per
    frame over the textured backdrop (before frame ``enters_at``, the backdrop alone). From frame
    ``cut_at`` on, a cut to another shot: a coffee backdrop, the mirrored head a third larger on
    the right moving left, and a second head half the size on the left, still.
    """
    backdrop = _background(width, height)
    coffee = cv2.resize(_faceless_patch(256), (width, height), interpolation=cv2.INTER_LINEAR)
    frames = np.empty((count, height, width, 3), dtype=np.uint8)
    boxes: list[list[Box]] = []
    for index in range(count):
        if cut_at is None or index < cut_at:
            frames[index] = backdrop
            top = (height - patch_height) // 3
            if index >= enters_at:
                boxes.append([_paste_head(frames[index], patch_height, False, 10 + step * index, top)])
            else:
                boxes.append([])
        else:
            frames[index] = coffee
            big, small = round(patch_height * 4 / 3), patch_height // 2
            moved = step * (index - cut_at)
            left = width - round(big * 0.9) - 10 - moved
            boxes.append([
                _paste_head(frames[index], big, True, left, height - big - 10),
                _paste_head(frames[index], small, False, 20, 20),
            ])
    return frames, boxes


def face_mosaic(
    width: int, height: int, *, patch_height: int, shift: int = 0
) -> tuple[np.ndarray, list[Box]]:
    """A frame tiled with astronaut heads ``patch_height`` pixels tall, like a crowd or a grid of
    video-call tiles, moved ``shift`` pixels right; and the face box of every head (x1, y1, x2, y2)."""
    patch = _head_patch(patch_height, False)
    frame = _background(width, height)
    scale = patch_height / (_HEAD_ROWS.stop - _HEAD_ROWS.start)
    fx1, fy1, fx2, fy2 = ASTRONAUT_FACE_BOX
    boxes: list[Box] = []
    ph, pw = patch.shape[:2]
    for top in range(0, height - ph + 1, ph):
        for left in range(shift, width - pw + 1, pw):
            frame[top : top + ph, left : left + pw] = patch
            boxes.append((left + fx1 * scale, top + fy1 * scale, left + fx2 * scale, top + fy2 * scale))
    return frame, boxes


def make_mosaic_video(
    path: str | Path, *, seconds: float = 2.0, width: int = 1280, height: int = 720, fps: float = 10.0,
    patch_height: int = 140,
) -> tuple[Path, int]:
    """Encode ``face_mosaic`` frames drifting right a pixel a frame; returns the path and the
    number of faces in each frame."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame_count = max(2, round(seconds * fps))
    command = [
        _ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", f"{fps}", "-i", "pipe:0",
        *_encoder_args("libx264"), str(path),
    ]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdin is not None and process.stderr is not None
    faces = 0
    for index in range(frame_count):
        frame, boxes = face_mosaic(width, height, patch_height=patch_height, shift=index % 8)
        faces = len(boxes)
        process.stdin.write(frame.tobytes())
    process.stdin.close()
    stderr = process.stderr.read().decode(errors="replace")
    if process.wait(timeout=600) != 0:
        raise RuntimeError(f"ffmpeg failed to encode {path.name}: {stderr.strip()[-500:]}")
    return path, faces


def _set_rotation(source: Path, target: Path, rotation: int) -> None:
    _run_ffmpeg(["-i", str(source), "-c", "copy", "-metadata:s:v:0", f"rotate={rotation % 360}", str(target)])


def _run_ffmpeg(args: list[str]) -> None:
    result = subprocess.run(
        [_ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
        capture_output=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed: {result.stderr.decode(errors='replace')[-500:]}")


def make_bad_media(kind: BadMediaKind | str, path: str | Path) -> Path:
    """Write one kind of unusable input at ``path`` (its suffix is kept: bad files lie about it).

    - ``text``: a text file; ``image_as_mp4``: a BMP image (a picture format the service does not
      take; JPEG, PNG, WebP and GIF are image jobs); ``empty``: zero bytes;
    - ``truncated``: an MP4 whose index is intact but whose second half is gone;
    - ``corrupt_header``: an MP4 whose container index (the ``moov`` box) is overwritten with noise;
    - ``audio_only``: AAC audio in an MP4, no picture;
    - ``absurd_resolution``: a real 8448×8448 H.264 video (past the 7680×4320 cap);
    - ``absurd_duration``: two frames whose timestamps are 11.6 days apart, so the file claims an
      enormous duration.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "text":
        path.write_text("This is not a video.\nJust some notes, saved with the wrong name.\n" * 20)
    elif kind == "image_as_mp4":
        from skimage import data

        ok, encoded = cv2.imencode(".bmp", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError("could not encode the BMP")
        path.write_bytes(encoded.tobytes())
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        source = path.with_name(path.stem + ".whole.mp4")
        make_face_video(source, seconds=4.0, width=320, height=240, fps=25, faststart=True)
        whole = source.read_bytes()
        source.unlink()
        path.write_bytes(whole[: len(whole) // 2])
    elif kind == "corrupt_header":
        source = path.with_name(path.stem + ".whole.mp4")
        make_face_video(source, seconds=2.0, width=320, height=240, fps=25, faststart=True)
        data_bytes = bytearray(source.read_bytes())
        source.unlink()
        moov = data_bytes.find(b"moov")
        if moov < 0:
            raise RuntimeError("no moov box in the generated MP4")
        noise = np.random.default_rng(7).integers(0, 256, size=512, dtype=np.uint8).tobytes()
        data_bytes[moov + 4 : moov + 4 + len(noise)] = noise
        path.write_bytes(bytes(data_bytes))
    elif kind == "audio_only":
        _run_ffmpeg(["-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "aac", "-f", "mp4",
                     str(path)])
    elif kind == "absurd_resolution":
        _run_ffmpeg(["-f", "lavfi", "-i", "color=c=gray:s=8448x8448:r=1:d=1", "-frames:v", "1",
                     "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-f", "mp4",
                     str(path)])
    elif kind == "absurd_duration":
        # The second frame is stamped a million seconds (11.6 days) after the first; a coarse
        # track timescale keeps the gap within MP4's 32-bit sample durations.
        _run_ffmpeg(["-f", "lavfi", "-i", "testsrc=s=320x240:r=25:d=0.08",
                     "-vf", "setpts='if(eq(N,1),1000000/TB,PTS)'", "-fps_mode", "passthrough",
                     "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                     "-video_track_timescale", "25", "-f", "mp4", str(path)])
    else:
        raise ValueError(f"unknown bad media kind {kind!r}; use one of {', '.join(BAD_MEDIA_KINDS)}")
    return path
