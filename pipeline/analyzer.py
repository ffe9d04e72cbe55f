"""The pipeline's one entry: open the source → plan → analyse each segment → finalize.

``analyze`` (exported as ``pipeline.analyze``) runs the whole video for the command line; the
Celery worker calls the same ``Analyzer`` steps in separate tasks, keeping one ``Analyzer`` per
process so MTCNN and the classifier load once. A ``SegmentResult`` is plain data and carries
everything ``finalize`` needs, so the worker may rebuild it from database rows.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import aggregate
from pipeline.crop import crop_face
from pipeline.explain import GradCam, TopCrops, absolute_heatmap, encode_jpeg, overlay_heatmap
from pipeline.faces import Detection, FaceDetector, crop_growth, smallest_face_to_score
from pipeline.following import FaceFollower
from pipeline.media_source import MediaSource, open_media_source
from pipeline.model import Classifier
from pipeline.plan import sample_numbers
from pipeline.quality import QualityStats, measure_segment
from pipeline.results import frame_results, video_result
from pipeline.tracking import link_tracks
from pipeline.types import (
    AnalysisConfig,
    SegmentPlan,
    SegmentResult,
    SmallFaces,
    VideoInfo,
    VideoResult,
)

__all__ = [
    "Analyzer",
    "AnalyzerFactory",
    "ChunkCallback",
    "FrameCallback",
    "ProgressCallback",
    "StageCallback",
    "analyze",
]

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]  # (segments done, segments in all)
ChunkCallback = Callable[[int], None]  # frames of the segment just analysed (one chunk's worth)
FrameCallback = Callable[[int, int], None]  # (sampled frames done, sampled frames planned in all)
StageCallback = Callable[[str], None]  # "probe", "load", "analyze": what the analysis starts doing
AnalyzerFactory = Callable[[AnalysisConfig], "Analyzer"]
# Chunks of face crops queued for the classifier before detection waits for it (16 frames' worth
# at the default chunk_frames).
MAX_PENDING_CHUNKS = 4
# A segment that scored no face looks again on this many of its frames for faces under the size
# the model needs (counting up to SMALL_FACE_MAX of them a frame), to say why nothing was scored.
SMALL_FACE_FRAMES = 4
SMALL_FACE_MAX = 100


class Analyzer:
    """Loads MTCNN and the classifier once; analyses any number of videos with them.

    Raises ``pipeline.errors.ModelError`` at construction when the checkpoint is missing or bad,
    so a worker fails at start-up, not on its first job.
    """

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        device: str = "auto",
        config: AnalysisConfig | None = None,
    ) -> None:
        self.config = config or AnalysisConfig()
        self.classifier = Classifier(
            model_path, device=device, batch_size=self.config.batch_size, tta_flip=self.config.tta_flip
        )
        if self.classifier.device.type == "cpu":
            _set_cpu_threads(self.config.torch_threads)
            if self.config.ffmpeg_threads == 0:
                self.config = self.config.replace(ffmpeg_threads=_half_the_cores())
        model = self.classifier.model  # load and warm up now: a bad checkpoint fails here
        self.model_config = model.config
        self.device = self.classifier.device
        self.detector = FaceDetector(
            device=str(self.device),
            detect_long_side=self.config.detect_long_side,
            min_face_size=self.config.min_face_size,
            det_threshold=self.config.det_threshold,
            batch_size=self.config.batch_size,
            max_faces=self.config.max_faces_per_frame,
        )
        self.model_info: dict[str, Any] = self.classifier.describe()
        self._gradcam: GradCam | None = None  # built when the first explanation is asked for

    @property
    def threshold(self) -> float:
        return float(self.model_config.threshold)

    @property
    def inconclusive_band(self) -> tuple[float, float] | None:
        band = self.model_config.inconclusive_band
        return None if band is None else (float(band[0]), float(band[1]))

    def open(self, path: str | Path) -> MediaSource:
        """Probe the file (video or image) under this Analyzer's limits."""
        return open_media_source(path, self.config)

    def plan(self, source: MediaSource) -> list[SegmentPlan]:
        return source.plan(self.config)

    def analyze_segment(
        self, source: MediaSource, plan: SegmentPlan, on_frames: ChunkCallback | None = None
    ) -> SegmentResult:
        """Decode, detect, track, crop and classify one segment. Track ids are local (1, 2, …).
        ``on_frames(n)`` runs after each chunk of ``n`` frames has been through detection.

        Frames are detected and classified in chunks while ffmpeg is still decoding the rest, so
        ``decode_s`` is the time spent waiting for frames, not ffmpeg's own time.
        """
        config = self.config
        info = source.info
        started = time.perf_counter()
        decode_s = detect_s = classify_s = quality_s = 0.0
        size = self.model_config.input_size
        framing = self.model_config.crop_options()
        detections: list[list[Detection]] = []
        scores: list[np.ndarray] = []
        quality = QualityStats()
        suspicious = TopCrops(config.explain_top_k)
        # Three stages run at once: ffmpeg decodes ahead (its own process), this thread detects
        # faces in the frames already decoded, and a second thread classifies the faces found.
        # Crops wait for their scores in ``pending``: at most MAX_PENDING_CHUNKS chunks of them,
        # so memory stays bounded however many faces the segment holds.
        pending: deque[tuple[Future[tuple[np.ndarray, float]], list[np.ndarray], int]] = deque()
        faces_so_far = 0

        def collect_oldest() -> None:
            nonlocal classify_s
            future, crops, first = pending.popleft()
            chunk_scores, seconds = future.result()
            classify_s += seconds
            scores.append(chunk_scores)
            suspicious.offer(chunk_scores, crops, first=first)  # keeps only the top few crops

        with (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="classify") as classify_pool,
            source.open_frames(plan, config) as decoder,
        ):
            follower = self._follower(decoder.frames.shape[2], decoder.frames.shape[1])
            chunks = decoder.chunks(config.chunk_frames)
            while True:
                waited = time.perf_counter()
                chunk = next(chunks, None)
                decode_s += time.perf_counter() - waited
                if chunk is None:
                    break
                frames = decoder.frames[chunk[0] : chunk[1]]
                t0 = time.perf_counter()
                found = follower.detect(frames)
                crops = [
                    crop_face(frame, det.box, size=size, **framing)
                    for frame, dets in zip(frames, found, strict=True)
                    for det in dets
                ]
                t1 = time.perf_counter()
                if crops:
                    future = classify_pool.submit(self._classify, np.stack(crops))
                    pending.append((future, crops, faces_so_far))
                    faces_so_far += len(crops)
                while pending and (pending[0][0].done() or len(pending) > MAX_PENDING_CHUNKS):
                    collect_oldest()
                quality.merge(
                    measure_segment(
                        frames,
                        [[d.box for d in dets] for dets in found],
                        scale=(info.width / frames.shape[2], info.height / frames.shape[1]),
                    )
                )
                t2 = time.perf_counter()
                detections.extend(found)
                detect_s += t1 - t0
                quality_s += t2 - t1
                if on_frames is not None:
                    on_frames(len(frames))
            times = decoder.times
            decoded_height, decoded_width = decoder.frames.shape[1:3]
            while pending:
                collect_oldest()
            small_faces = None
            if faces_so_far == 0:
                small_faces = self._small_faces(
                    decoder.frames[: len(detections)], follower.smallest_face, info.width / decoded_width
                )
        t0 = time.perf_counter()
        track_ids = link_tracks(
            [[d.box for d in dets] for dets in detections], iou_threshold=config.track_iou
        )
        detect_s += time.perf_counter() - t0

        all_scores = np.concatenate(scores) if scores else np.zeros((0,), dtype=np.float32)
        t0 = time.perf_counter()
        explained = self._explain(suspicious)
        explain_s = time.perf_counter() - t0
        # Frames may come back downscaled (decode_long_side); results are in the video's pixels.
        segment_frames, explanations = frame_results(
            times,
            sample_numbers(plan, info)[: len(times)],
            detections,
            track_ids,
            all_scores,
            explained,
            (info.width / decoded_width, info.height / decoded_height),
        )
        # Stage times are each stage's own busy time; they overlap, so they need not add up to
        # the segment's wall time. decode_s is the time spent waiting for decoded frames.
        timings = {
            "wall_s": time.perf_counter() - started,
            "decode_s": decode_s,
            "detect_s": detect_s,
            "classify_s": classify_s,
            "quality_s": quality_s,
            "explain_s": explain_s,
        }
        result = SegmentResult(
            index=plan.index,
            start_s=plan.start_s,
            end_s=plan.end_s,
            score=aggregate.segment_score(segment_frames, config.aggregation),
            frames=segment_frames,
            tracks=aggregate.track_results(segment_frames),
            timings=timings,
            quality=quality.to_dict(),
            explanations=explanations,
            small_faces=small_faces,
        )
        log.info(
            "pipeline.segment.done",
            extra={
                "segment": plan.index,
                "frames": len(segment_frames),
                "faces": result.face_count,
                "detections": follower.stats.to_dict(),
                **{k: round(v, 3) for k, v in timings.items()},
            },
        )
        return result

    def _follower(self, width: int, height: int) -> FaceFollower:
        """The face detection of one segment of decoded frames width×height (see AnalysisConfig)."""
        config = self.config
        smallest = smallest_face_to_score(
            width,
            height,
            input_size=self.model_config.input_size,
            growth=crop_growth(self.model_config.crop_options()),
            max_upscale=config.max_face_upscale,
            frame_fraction=config.min_face_fraction,
        )
        return FaceFollower(
            self.detector,
            detect_interval=config.detect_interval,
            max_faces=config.max_faces_per_frame,
            smallest_face=smallest,
        )

    def _small_faces(self, frames: np.ndarray, smallest: float, to_video: float) -> SmallFaces | None:
        """When a segment scored no face: the faces a few of its frames hold below ``smallest``
        (the size the model needs, which detection did not look under), so a crowd filmed from
        afar is reported as faces too small, not as no face. ``to_video`` maps the frames' pixels
        to the video's."""
        if len(frames) == 0 or smallest <= self.detector.smallest_face(*frames.shape[1:3]):
            return None  # detection already looked for every face it can find
        step = max(1, -(-len(frames) // SMALL_FACE_FRAMES))
        found = self.detector.detect(frames[::step], max_faces=SMALL_FACE_MAX)
        sizes = [det.size for dets in found for det in dets if det.size < smallest]
        if not sizes:
            return None
        return SmallFaces(
            faces_seen=max(len(dets) for dets in found),
            face_size_px=float(np.median(sizes)) * to_video,
            min_face_size_px=smallest * to_video,
        )

    def _classify(self, crops: np.ndarray) -> tuple[np.ndarray, float]:
        started = time.perf_counter()
        scores = self.classifier.predict(crops)
        return scores, time.perf_counter() - started

    def _explain(self, suspicious: TopCrops) -> dict[int, tuple[bytes, bytes]]:
        """Grad-CAM of the segment's most suspicious crops: position → (overlay, crop) as JPEG."""
        chosen = suspicious.items()
        if not chosen:
            return {}
        if self._gradcam is None:
            self._gradcam = GradCam(self.classifier.model)
        heatmaps = self._gradcam.explain(np.stack([crop for _, _, crop in chosen]))
        return {
            position: (
                encode_jpeg(overlay_heatmap(crop, absolute_heatmap(heatmap, score))),
                encode_jpeg(crop),
            )
            for (position, score, crop), heatmap in zip(chosen, heatmaps.maps, strict=True)
        }

    def finalize(
        self, info: VideoInfo, segments: Sequence[SegmentResult], timings: dict[str, float] | None = None
    ) -> VideoResult:
        """Give tracks video-wide ids, score the video and decide the verdict (see
        ``pipeline.results.video_result``)."""
        return video_result(
            info,
            segments,
            config=self.config,
            threshold=self.threshold,
            inconclusive_band=self.inconclusive_band,
            model_info=self.model_info,
            caveat=self.model_config.caveat or None,
            timings=timings,
        )

    def analyze(self, path: str | Path, progress: ProgressCallback | None = None) -> VideoResult:
        """The whole video, segment after segment, with this Analyzer's networks and config."""
        return analyze(path, config=self.config, load=lambda _: self, progress=progress)


def _half_the_cores() -> int:
    return max(1, (os.cpu_count() or 2) // 2)


def _set_cpu_threads(requested: int) -> None:
    """Size torch's CPU thread pool for stages that run side by side (see AnalysisConfig)."""
    import torch

    threads = requested if requested > 0 else _half_the_cores()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def analyze(
    path: str | Path,
    *,
    model_path: str | Path | None = None,
    device: str = "auto",
    config: AnalysisConfig | None = None,
    progress: ProgressCallback | None = None,
    load: AnalyzerFactory | None = None,
    on_frames: FrameCallback | None = None,
    on_stage: StageCallback | None = None,
    **overrides: Any,
) -> VideoResult:
    """Analyse one video; ``overrides`` replace ``AnalysisConfig`` fields.

    The video is probed before the networks load, so a bad file is refused in a fraction of a
    second. ``load(config)`` builds the ``Analyzer`` (default: a fresh one from ``model_path``
    and ``device``); the time it takes is left out of ``timings["total_s"]``, since a worker loads
    the networks once for many videos. ``progress(done, total)`` runs once the segments are
    planned (``done`` 0) and after each one; ``on_frames(done, total)`` once the frames are
    planned and after each chunk of sampled frames (a finer progress, for short videos too);
    ``on_stage(name)`` when the analysis starts to
    ``probe``, ``load`` the networks and ``analyze`` the planned frames.
    """
    config = (config or AnalysisConfig()).replace(**overrides)
    started = time.perf_counter()
    if on_stage is not None:
        on_stage("probe")
    source = open_media_source(path, config)
    probe_s = time.perf_counter() - started
    plans = source.plan(config)
    loading = time.perf_counter()
    if on_stage is not None:
        on_stage("load")
    analyzer = load(config) if load else Analyzer(model_path=model_path, device=device, config=config)
    load_s = time.perf_counter() - loading
    if on_stage is not None:
        on_stage("analyze")
    frames_planned = sum(len(plan.frame_times) for plan in plans)
    frames_done = 0

    def chunk_done(count: int) -> None:
        nonlocal frames_done
        frames_done += count
        if on_frames is not None:
            on_frames(min(frames_done, frames_planned), frames_planned)

    if on_frames is not None:
        on_frames(0, frames_planned)
    segments = []
    for done, plan in enumerate(plans):
        if progress is not None:
            progress(done, len(plans))
        segments.append(analyzer.analyze_segment(source, plan, chunk_done))
    if progress is not None:
        progress(len(plans), len(plans))
    result = analyzer.finalize(source.info, segments, {"probe_s": probe_s})
    result.timings["total_s"] = time.perf_counter() - started - load_s
    return result
