"""More kinds of hostile media than ``tests.utils.media.make_bad_media`` makes.

Frame sizes of zero or far past any limit, durations that lie, single frames, keyframes too far
apart; and unusual videos that must still be analysed: variable frame rates, several video
streams, a crowd of faces in every frame. Everything is generated here with the system ffmpeg and
a few header patches; ``make_hostile_media`` also makes every kind of ``make_bad_media``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from tests.utils.media import BAD_MEDIA_KINDS, _run_ffmpeg, make_bad_media, make_face_video, make_mosaic_video

__all__ = ["HOSTILE_MEDIA_KINDS", "TEN_HOURS_S", "VALID_HOSTILE_MEDIA_KINDS", "make_hostile_media"]

TEN_HOURS_S = 36_000

HOSTILE_MEDIA_KINDS = (
    *BAD_MEDIA_KINDS,
    "zero_size_frames",
    "claims_20000_frames",
    "claims_16k_frames",
    "claims_ten_hours",
    "container_claims_ten_hours",
    "single_frame_image",
    "single_frame_video",
    "sparse_keyframes",
)
# Unusual but valid: each must be analysed, not refused.
VALID_HOSTILE_MEDIA_KINDS = (
    "variable_frame_rate_webm",
    "variable_frame_rate_mkv",
    "small_stream_first",
    "still_stream_first",
    "many_faces",
)
# A face video at 30 fps for 2 s, then 15 fps for 2 s: screen and browser recorders slow down
# when the picture does not change.
VARIABLE_FRAME_RATES = ((30.0, 2.0), (15.0, 2.0))
# Longer than the default 60 s a segment may decode before its first sample, with one keyframe.
SPARSE_KEYFRAMES_SECONDS = 80

_MP4_CONTAINER_BOXES = {b"moov", b"trak", b"mdia", b"edts", b"minf", b"stbl"}


def _tiny_avi(path: Path, *, codec: str) -> bytearray:
    source = path.with_name(path.stem + f".{codec}.avi")
    pixel_format = "gray" if codec == "rawvideo" else "yuvj420p"
    _run_ffmpeg(["-f", "lavfi", "-i", "testsrc=s=64x48:r=5:d=1", "-c:v", codec, "-pix_fmt", pixel_format,
                 "-f", "avi", str(source)])  # fmt: skip
    data = bytearray(source.read_bytes())
    source.unlink()
    return data


def _set_avi_size(data: bytearray, width: int, height: int) -> None:
    """The frame size in the AVI main header (avih) and the stream's BITMAPINFOHEADER (strf)."""
    main = data.find(b"avih")
    stream = data.find(b"strf")
    if main < 0 or stream < 0:
        raise RuntimeError("the generated AVI has no avih or strf chunk")
    struct.pack_into("<II", data, main + 8 + 32, width, height)
    struct.pack_into("<ii", data, stream + 8 + 4, width, height)


def _set_jpeg_sizes(data: bytearray, width: int, height: int) -> None:
    """The size in every JPEG start-of-frame marker (baseline SOF0)."""
    at = data.find(b"\xff\xc0")
    if at < 0:
        raise RuntimeError("no JPEG SOF0 marker in the generated MJPEG")
    while at >= 0:
        struct.pack_into(">HH", data, at + 5, height, width)
        at = data.find(b"\xff\xc0", at + 2)


def _mp4_boxes(data: bytearray, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        if size < 8:
            return
        yield at, kind
        if kind in _MP4_CONTAINER_BOXES:
            yield from _mp4_boxes(data, at + 8, at + size)
        at += size


def _claim_mp4_duration(data: bytearray, seconds: int) -> None:
    """Rewrites the movie, track, media and edit durations (version-0 boxes); the samples stay."""
    movie_scale = 0
    for at, kind in _mp4_boxes(data, 0, len(data)):
        body = at + 8
        if data[body] != 0 and kind in (b"mvhd", b"tkhd", b"mdhd"):
            raise RuntimeError(f"unexpected version-1 {kind.decode()} box")
        if kind == b"mvhd":
            movie_scale = struct.unpack(">I", data[body + 12 : body + 16])[0]
            struct.pack_into(">I", data, body + 16, seconds * movie_scale)
        elif kind == b"tkhd":
            struct.pack_into(">I", data, body + 20, seconds * movie_scale)
        elif kind == b"mdhd":
            media_scale = struct.unpack(">I", data[body + 12 : body + 16])[0]
            struct.pack_into(">I", data, body + 16, seconds * media_scale)
        elif kind == b"elst" and struct.unpack(">I", data[body + 4 : body + 8])[0]:
            struct.pack_into(">I", data, body + 8, seconds * movie_scale)
    if not movie_scale:
        raise RuntimeError("no mvhd box in the generated MP4")


def make_hostile_media(kind: str, path: str | Path) -> Path:
    """Write one kind of hostile input at ``path``; the kinds of ``make_bad_media`` plus:

    - ``zero_size_frames``: MJPEG in AVI whose every size field (headers and JPEG frames) says 0×0;
    - ``claims_20000_frames``: raw video in AVI whose headers claim 20000×20000 frames (more pixels
      than ffmpeg itself accepts), with 64×48 bytes of data;
    - ``claims_16k_frames``: the same claiming 16000×12000, which ffmpeg would accept;
    - ``claims_ten_hours``: H.264 in MP4, two frames whose timestamps are ten hours apart, so the
      video stream itself lasts ten hours;
    - ``container_claims_ten_hours``: a 1 s H.264 MP4 whose movie, track and media headers say ten
      hours while its samples still add up to 1 s;
    - ``single_frame_image``: one MJPEG frame in MP4 (a still picture in a video container);
    - ``single_frame_video``: one H.264 frame in MP4;
    - ``sparse_keyframes``: 80 s of H.264 with a single keyframe, at the start;

    and the valid kinds of ``VALID_HOSTILE_MEDIA_KINDS``:

    - ``variable_frame_rate_webm`` (VP9) and ``variable_frame_rate_mkv`` (H.264): a face at
      ``VARIABLE_FRAME_RATES``, every frame's index in its top-left corner;
    - ``small_stream_first``: a 64×64 test pattern, then a 320×240 face video, in one MP4;
    - ``still_stream_first``: one 640×480 MJPEG frame, then a 320×240 face video, in one MKV;
    - ``many_faces``: 1280×720, 50 faces in every frame.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind in BAD_MEDIA_KINDS:
        return make_bad_media(kind, path)
    if kind == "zero_size_frames":
        data = _tiny_avi(path, codec="mjpeg")
        _set_avi_size(data, 0, 0)
        _set_jpeg_sizes(data, 0, 0)
        path.write_bytes(bytes(data))
    elif kind in ("claims_20000_frames", "claims_16k_frames"):
        data = _tiny_avi(path, codec="rawvideo")
        _set_avi_size(data, *((20000, 20000) if kind == "claims_20000_frames" else (16000, 12000)))
        path.write_bytes(bytes(data))
    elif kind == "claims_ten_hours":
        _run_ffmpeg(["-f", "lavfi", "-i", "testsrc=s=160x120:r=10:d=0.2",
                     "-vf", f"setpts='if(eq(N,1),{TEN_HOURS_S}/TB,PTS)'", "-frames:v", "2",
                     "-fps_mode", "passthrough", "-c:v", "libx264", "-preset", "ultrafast",
                     "-pix_fmt", "yuv420p", "-video_track_timescale", "10",
                     "-f", "mp4", str(path)])  # fmt: skip
    elif kind == "container_claims_ten_hours":
        _run_ffmpeg(["-f", "lavfi", "-i", "testsrc=s=160x120:r=10:d=1", "-c:v", "libx264",
                     "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-movflags", "+faststart",
                     "-f", "mp4", str(path)])  # fmt: skip
        data = bytearray(path.read_bytes())
        _claim_mp4_duration(data, TEN_HOURS_S)
        path.write_bytes(bytes(data))
    elif kind == "single_frame_image":
        _run_ffmpeg(["-f", "lavfi", "-i", "testsrc=s=160x120:r=1:d=1", "-frames:v", "1", "-c:v", "mjpeg",
                     "-f", "mp4", str(path)])  # fmt: skip
    elif kind == "single_frame_video":
        _run_ffmpeg(["-f", "lavfi", "-i", "testsrc=s=160x120:r=10:d=1", "-frames:v", "1", "-c:v", "libx264",
                     "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-f", "mp4", str(path)])  # fmt: skip
    elif kind == "sparse_keyframes":
        _run_ffmpeg(["-f", "lavfi", "-i", f"testsrc=s=160x120:r=10:d={SPARSE_KEYFRAMES_SECONDS}",
                     "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                     "-g", "100000", "-keyint_min", "100000", "-sc_threshold", "0",
                     "-f", "mp4", str(path)])  # fmt: skip
    elif kind in ("variable_frame_rate_webm", "variable_frame_rate_mkv"):
        webm = kind.endswith("webm")
        source = make_face_video(path.with_name(path.stem + (".vfr.webm" if webm else ".vfr.mkv")),
                                 width=320, height=240, frame_rates=VARIABLE_FRAME_RATES,
                                 codec="libvpx-vp9" if webm else "libx264", frame_code=True)
        source.path.replace(path)
    elif kind in ("small_stream_first", "still_stream_first"):
        face = make_face_video(path.with_name(path.stem + ".face.mp4"), seconds=2.0, width=320, height=240,
                               fps=25, frame_code=True)
        if kind == "small_stream_first":
            first = ["-f", "lavfi", "-i", "testsrc=s=64x64:r=25:d=2"]
            codecs = ["-c:v:0", "libx264", "-preset", "ultrafast", "-pix_fmt:v:0", "yuv420p"]
            container = "mp4"
        else:
            first = ["-f", "lavfi", "-i", "testsrc=s=640x480:r=1:d=1"]  # one frame
            codecs, container = ["-c:v:0", "mjpeg", "-pix_fmt:v:0", "yuvj420p"], "matroska"
        _run_ffmpeg([*first, "-i", str(face.path), "-map", "0:v", "-map", "1:v", *codecs, "-c:v:1", "copy",
                     "-f", container, str(path)])  # fmt: skip
        face.path.unlink()
    elif kind == "many_faces":
        source, _ = make_mosaic_video(path.with_name(path.stem + ".mosaic.mp4"), seconds=2.0, fps=5.0)
        source.replace(path)
    else:
        kinds = ", ".join((*HOSTILE_MEDIA_KINDS, *VALID_HOSTILE_MEDIA_KINDS))
        raise ValueError(f"unknown hostile media kind {kind!r}; use one of {kinds}")
    return path
