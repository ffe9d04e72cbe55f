"""Plain data the pipeline produces: shared by the CLI's JSON, the worker's rows and the tests.

No torch here: the worker's persistence layer and the API can read these shapes cheaply.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, Protocol

import numpy as np

from core.media import DEFAULT_SAMPLE_FPS
from core.verdicts import FACES_TOO_SMALL, FACES_TOO_SMALL_LABEL, faces_too_small_message
from core.verdicts import explanation as verdict_explanation
from core.verdicts import label as verdict_label

__all__ = [
    "AnalysisConfig",
    "FaceExplanation",
    "FaceResult",
    "FrameResult",
    "FrameTimeline",
    "SegmentPlan",
    "SegmentResult",
    "SmallFaces",
    "TrackResult",
    "Verdict",
    "VideoInfo",
    "VideoResult",
    "suspicion_order",
]

Verdict = Literal["fake", "real", "inconclusive", "no_face"]
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class AnalysisConfig:
    """Knobs of one analysis. Defaults are the service's; the CLI and API may override some."""

    segment_seconds: float = 10.0
    sample_fps: float = DEFAULT_SAMPLE_FPS
    max_frames: int = 32  # per segment
    detect_long_side: int = 640  # MTCNN runs on a copy downscaled to this long side
    # Smallest face looked for, in pixels of the detection copy: 20 at a 640 long side means
    # faces from 60 px up in 1080p video. MTCNN's cost grows with (frame size / this)².
    min_face_size: int = 20
    # Smallest face worth scoring, in decoded pixels: one the classifier's crop enlarges at most
    # max_face_upscale times (input 160, crop 1.085× the face: 74 px, a third of 1080p's pyramid
    # cost saved). In frames too small for any face to pass that, faces from min_face_fraction of
    # the short side (72 px in 720p, 36 px in 360p) are the video's subjects and are scored
    # anyway. MTCNN skips the pyramid scales below it. max_face_upscale 0: no such limit.
    max_face_upscale: float = 2.0
    min_face_fraction: float = 0.1
    # Whole-frame detection on every detect_interval-th sampled frame (2 s at 3 fps), on a scene
    # cut, on motion away from the followed faces and when a followed face is not found again; in
    # between, each face is re-detected only in a square three times its size around where it
    # was. 1: whole-frame detection on every frame. At 4, 6 and 8 no face of the test clips was
    # lost against whole-frame detection on every frame (bench/pipeline.py measures it).
    detect_interval: int = 6
    det_threshold: float = 0.95  # MTCNN face probability below this is dropped
    track_iou: float = 0.3  # IoU to continue a track from the previous sampled frame
    aggregation: Literal["mean", "confident", "track_top"] = "mean"
    # Score each face crop and its mirror image and average the two (twice the classifier time).
    tta_flip: bool = False
    batch_size: int = 32
    # Frames larger than this long side are scaled down by ffmpeg before they reach Python (boxes
    # are still reported in the video's own pixels): bounds memory for 4K and 8K inputs.
    decode_long_side: int = 1920
    # Decoder threads. 0: automatic; with the networks on a CPU that means half the cores (they
    # are shared with detection and classification), on a GPU ffmpeg's own choice.
    ffmpeg_threads: int = 0
    # Frames handed to detection and classification at a time while ffmpeg decodes the rest:
    # small, so detection starts soon after decoding does and little is left once it ends (the
    # classifier costs the same per face in batches of 4 as of 32 on a CPU).
    chunk_frames: int = 4
    # Intra-op threads for torch on CPU (process-wide). 0: half the cores, since detection and
    # classification run side by side next to ffmpeg; one thread each on a 2-core machine.
    torch_threads: int = 0
    # Input caps: a file beyond any of these is refused before decoding.
    max_width: int = 7680
    max_height: int = 4320
    max_duration_s: float = 4 * 3600.0
    max_pixels_per_second: float = 7680 * 4320 * 120.0
    # A still image past this many pixels (read from its header) is refused before decoding:
    # the decompression-bomb guard.
    max_image_pixels: int = 50_000_000
    # Each side of a still image, and the long side against the short one: a picture under the
    # pixel cap can still be a line (49,999,999×1) whose resampling needs gigabytes, and that
    # shows no face anyway.
    max_image_side: int = 20_000
    max_image_aspect_ratio: float = 20.0
    decode_timeout_s: float = 300.0  # per segment
    # A segment is decoded from the keyframe before its first sample. A file whose keyframes are
    # further apart than this (seconds of video decoded only to reach a segment) is refused, so
    # a video costs at most a bounded multiple of one decoding pass, never segments × duration.
    max_keyframe_lead_s: float = 60.0
    # Faces kept per frame, the largest first: bounds detection, classification and memory
    # whatever a frame holds (a crowd, a mosaic of faces).
    max_faces_per_frame: int = 16
    # Grad-CAM heatmaps for this many of each segment's most suspicious faces (0: none); each
    # costs a backward pass.
    explain_top_k: int = 0

    def settings_used(self) -> dict[str, Any]:
        """The knobs that change a verdict, as a report records them."""
        return {
            "sample_fps": self.sample_fps,
            "segment_seconds": self.segment_seconds,
            "max_frames": self.max_frames,
            "max_faces_per_frame": self.max_faces_per_frame,
            "min_face_size": self.min_face_size,
            "det_threshold": self.det_threshold,
            "aggregation": self.aggregation,
            "tta_flip": self.tta_flip,
        }

    def replace(self, **changes: Any) -> AnalysisConfig:
        values = asdict(self)
        values.update({k: v for k, v in changes.items() if v is not None})
        return AnalysisConfig(**values)


@dataclass(frozen=True, eq=False)
class FrameTimeline:
    """When each frame of the analysed stream is shown, read from the container by the probe.

    ``times``: seconds from the start of the file, increasing, frames less than a millisecond
    after the previous one left out (they cannot be told apart by time); ``numbers``: each
    one's position among all the stream's frames; ``keyframes``: times of the frames decoding
    can start from (empty when the container does not say).
    """

    times: np.ndarray  # float64
    numbers: np.ndarray  # int64
    keyframes: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.times)


@dataclass(frozen=True)
class VideoInfo:
    duration_s: float
    fps: float  # average: frames over duration (frames are chosen by their times, not by rate)
    width: int  # as displayed (rotation applied)
    height: int
    codec: str
    rotation: int = 0  # degrees clockwise the player rotates the stored frames
    nb_frames: int | None = None
    format_name: str = ""
    size_bytes: int = 0
    has_audio: bool = False
    bit_rate: int | None = None
    # The video stream analysed (ffmpeg's index among all the file's streams); None: the first.
    stream_index: int | None = None
    # The file's start time, which frame times are measured from; None: unknown (an older probe).
    start_time_s: float | None = None
    # "image" for a still picture (pipeline.image) or a video of a single frame; "video" otherwise.
    media_type: str = "video"
    # Every frame's time, for planning; kept by the probe's caller only, never stored.
    timeline: FrameTimeline | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "timeline"}


@dataclass(frozen=True)
class SegmentPlan:
    index: int
    start_s: float
    end_s: float
    frame_times: tuple[float, ...]  # presentation times of the frames this segment samples
    # Each sampled frame's number in the stream; empty in plans made before frames were counted
    # (then the number is the time times the frame rate).
    frame_numbers: tuple[int, ...] = ()
    # Where decoding starts: ffmpeg seeks to this time, which lands on a keyframe at or before
    # the first sample (0: from the start). None: the planner did not know the keyframes.
    seek_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "start_s": self.start_s, "end_s": self.end_s,
                "frame_times": list(self.frame_times), "frame_numbers": list(self.frame_numbers),
                "seek_s": self.seek_s}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> SegmentPlan:
        seek = doc.get("seek_s")
        return cls(int(doc["index"]), float(doc["start_s"]), float(doc["end_s"]),
                   tuple(float(t) for t in doc["frame_times"]),
                   tuple(int(n) for n in doc.get("frame_numbers") or ()),
                   None if seek is None else float(seek))


@dataclass
class FaceResult:
    box: Box  # x1, y1, x2, y2 in full-resolution pixels of the displayed frame
    det_score: float
    track: int
    score: float  # P(fake)

    def to_dict(self) -> dict[str, Any]:
        return {"box": [round(v, 1) for v in self.box], "det_score": round(self.det_score, 4),
                "track": self.track, "score": round(self.score, 5)}


@dataclass
class FrameResult:
    index: int  # frame number in the source video (round(t * fps))
    t: float  # seconds from the start
    score: float | None  # max over faces; None when the frame has none
    faces: list[FaceResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "t": round(self.t, 3),
                "score": None if self.score is None else round(self.score, 5),
                "faces": [f.to_dict() for f in self.faces]}


@dataclass
class TrackResult:
    id: int
    first_t: float
    last_t: float
    score: float
    faces: int  # how many detections the track holds

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "first_t": round(self.first_t, 3), "last_t": round(self.last_t, 3),
                "score": round(self.score, 5), "faces": self.faces}


class ExplainedFace(Protocol):
    """An explained face as the analysis has it (``FaceExplanation``) or as it is stored."""

    @property
    def score(self) -> float: ...

    @property
    def frame_index(self) -> int: ...

    @property
    def face(self) -> int: ...


def suspicion_order(explained: ExplainedFace) -> tuple[float, int, int]:
    """The sort key of a video's "most suspicious faces": the highest score first, then the
    earlier frame, then the face's place in its frame. The analysis, the job's stored ranks and
    the report all rank by it."""
    return (-explained.score, explained.frame_index, explained.face)


@dataclass
class FaceExplanation:
    """A Grad-CAM heatmap of one face: the model's crop and the crop with the heatmap over it."""

    frame_index: int
    t: float
    face: int  # position of the face in its frame's faces
    track: int  # local to the segment, like FaceResult.track before finalize
    score: float
    box: Box
    heatmap_jpeg: bytes
    crop_jpeg: bytes

    def to_dict(self) -> dict[str, Any]:
        return {"frame_index": self.frame_index, "t": round(self.t, 3), "face": self.face,
                "track": self.track, "score": round(self.score, 5), "box": [round(v, 1) for v in self.box]}


@dataclass(frozen=True)
class SmallFaces:
    """Faces an analysis saw but did not score, every one smaller than the model needs: how many
    (the most in one frame) and how large (the median), against the smallest it scores. Sizes are
    a face box's longer side in the video's pixels."""

    faces_seen: int
    face_size_px: float
    min_face_size_px: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "faces_seen": self.faces_seen,
            "face_size_px": round(self.face_size_px, 1),
            "min_face_size_px": round(self.min_face_size_px, 1),
        }

    @classmethod
    def from_dict(cls, doc: Any) -> SmallFaces | None:
        """The counts stored by ``to_dict``; None for anything else."""
        if not isinstance(doc, dict):
            return None
        try:
            return cls(int(doc["faces_seen"]), float(doc["face_size_px"]), float(doc["min_face_size_px"]))
        except (KeyError, TypeError, ValueError):
            return None


@dataclass
class SegmentResult:
    index: int
    start_s: float
    end_s: float
    score: float | None  # None when no face was found in the segment
    frames: list[FrameResult]
    tracks: list[TrackResult]  # ids local to this segment until the video is aggregated
    timings: dict[str, float] = field(default_factory=dict)  # decode_s, detect_s, classify_s
    # Input statistics of the sampled frames (pipeline.quality.QualityStats.to_dict()).
    quality: dict[str, Any] | None = None
    explanations: list[FaceExplanation] = field(default_factory=list)
    # Set when the segment scored no face but saw smaller ones.
    small_faces: SmallFaces | None = None

    @property
    def face_count(self) -> int:
        return sum(len(f.faces) for f in self.frames)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3),
                "score": None if self.score is None else round(self.score, 5),
                "frames": len(self.frames), "faces": self.face_count}


@dataclass
class VideoResult:
    verdict: Verdict
    score: float | None
    model: dict[str, Any]  # name, version, sha256, trained
    video: VideoInfo
    segments: list[SegmentResult]
    frames: list[FrameResult]
    tracks: list[TrackResult]
    timings: dict[str, float]  # probe_s, decode_s, detect_s, classify_s, total_s
    threshold: float = 0.5
    # Scores in [low, high) are inconclusive (the checkpoint's band); None: the checkpoint has none.
    inconclusive_band: tuple[float, float] | None = None
    aggregation: str = "mean"
    # The checkpoint's one sentence on what it was trained on and what it misses; None: none given.
    caveat: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # AnalysisConfig.settings_used()
    # With a no_face verdict: the faces seen that were too small to score, if any.
    small_faces: SmallFaces | None = None

    @property
    def no_face_reason(self) -> dict[str, Any] | None:
        """Why nothing was scored, when it is known: ``{"code": "faces_too_small", "faces_seen",
        "face_size_px", "min_face_size_px", "message"}``; None otherwise."""
        if self.verdict != "no_face" or self.small_faces is None:
            return None
        return {
            "code": FACES_TOO_SMALL,
            **self.small_faces.to_dict(),
            "message": faces_too_small_message(
                faces_seen=self.small_faces.faces_seen,
                face_size_px=self.small_faces.face_size_px,
                min_face_size_px=self.small_faces.min_face_size_px,
                media_type=self.video.media_type,
            ),
        }

    @property
    def verdict_label(self) -> str | None:
        return FACES_TOO_SMALL_LABEL if self.no_face_reason else verdict_label(self.verdict)

    @property
    def explanation(self) -> str | None:
        """How the verdict was reached, in a sentence or two for people."""
        reason = self.no_face_reason
        if reason is not None:
            return str(reason["message"])
        return verdict_explanation(
            verdict=self.verdict, score=self.score, threshold=self.threshold,
            band=self.inconclusive_band, aggregation=self.aggregation, media_type=self.video.media_type,
        )

    @property
    def rtf(self) -> float | None:
        if self.video.duration_s <= 0:
            return None
        return self.timings.get("total_s", 0.0) / self.video.duration_s

    def to_dict(self) -> dict[str, Any]:
        video = self.video
        image: dict[str, Any] = {}
        if video.media_type == "image":
            # An image's result is its one frame's faces.
            image["faces"] = [
                {"box": [round(v, 1) for v in face.box], "det_score": round(face.det_score, 4),
                 "score": round(face.score, 5)}
                for frame in self.frames for face in frame.faces
            ]
        return {
            "media_type": video.media_type,
            **image,
            "verdict": self.verdict,
            "score": None if self.score is None else round(self.score, 5),
            "verdict_label": self.verdict_label,
            "no_face_reason": self.no_face_reason,
            "threshold": self.threshold,
            "inconclusive_band": None if self.inconclusive_band is None else list(self.inconclusive_band),
            "aggregation": self.aggregation,
            "explanation": self.explanation,
            "model": self.model,
            "caveat": self.caveat,
            "settings": self.settings,
            "video": {"duration_s": video.duration_s, "fps": video.fps, "width": video.width,
                      "height": video.height, "codec": video.codec},
            "segments": [s.to_dict() for s in self.segments],
            "frames": [f.to_dict() for f in self.frames],
            "tracks": [t.to_dict() for t in self.tracks],
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "rtf": None if self.rtf is None else round(self.rtf, 4),
        }
