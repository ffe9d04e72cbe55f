"""A one-file HTML report of an analysis: summary, score over time and the most suspicious faces.

Everything is inline (styles, the SVG chart, face crops and Grad-CAM heatmaps as base64 JPEG), so
the file can be mailed or attached to a ticket and opens anywhere without a network.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from pipeline.crop import crop_face
from pipeline.errors import PipelineError
from pipeline.types import AnalysisConfig, SegmentPlan, VideoInfo, VideoResult
from pipeline.video import decode_segment

if TYPE_CHECKING:
    from pipeline.explain import GradCam

__all__ = ["SuspiciousFace", "collect_suspicious_faces", "render_report", "write_report"]

CROP_SIZE = 160
MAX_FACES_PER_TRACK = 3
_CHART_W, _CHART_H = 760, 220
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 44, 12, 12, 30


@dataclass(frozen=True)
class SuspiciousFace:
    t: float
    frame_index: int
    track: int
    score: float
    det_score: float
    box: tuple[float, float, float, float]
    jpeg_base64: str
    heatmap_base64: str | None = None  # Grad-CAM over the model's own crop of this face


def _pick_faces(result: VideoResult, limit: int) -> list[tuple[int, int]]:
    """(frame position, face position) of the highest-scoring faces, a few per track at most."""
    ranked = sorted(
        (
            (face.score, fi, ai)
            for fi, frame in enumerate(result.frames)
            for ai, face in enumerate(frame.faces)
        ),
        reverse=True,
    )
    per_track: dict[int, int] = {}
    picked = []
    for _, fi, ai in ranked:
        track = result.frames[fi].faces[ai].track
        if per_track.get(track, 0) >= MAX_FACES_PER_TRACK:
            continue
        per_track[track] = per_track.get(track, 0) + 1
        picked.append((fi, ai))
        if len(picked) >= limit:
            break
    return picked


def collect_suspicious_faces(
    video_path: str | Path,
    result: VideoResult,
    *,
    limit: int = 8,
    margin: float = 0.3,
    config: AnalysisConfig | None = None,
    gradcam: GradCam | None = None,
) -> list[SuspiciousFace]:
    """Decode again only the frames holding the top faces and crop them for display; with
    ``gradcam``, also explain each face as the model saw it (its margin and input size).

    The analysis keeps no pixels (its results are plain numbers the worker stores), so the
    report seeks back to each chosen frame: a handful of one-frame decodes.
    """
    config = config or AnalysisConfig()
    info = result.video
    chosen = _pick_faces(result, limit)
    frames_needed = sorted({fi for fi, _ in chosen})
    pixels: dict[int, np.ndarray] = {}
    for fi in frames_needed:
        frame = result.frames[fi]
        # The frame's own time and number: the decoder seeks to it and selects it by its timestamp.
        plan = SegmentPlan(index=-1, start_s=frame.t, end_s=frame.t, frame_times=(frame.t,),
                           frame_numbers=(frame.index,))
        try:
            _, decoded = decode_segment(video_path, info, plan, config)
        except PipelineError:
            continue  # the report shows fewer faces rather than failing an analysis that succeeded
        if len(decoded):
            pixels[fi] = decoded[0]
    faces = []
    model_crops = []
    for fi, ai in chosen:
        if fi not in pixels:
            continue
        frame = result.frames[fi]
        face = frame.faces[ai]
        image = pixels[fi]
        sx, sy = image.shape[1] / info.width, image.shape[0] / info.height
        box = (face.box[0] * sx, face.box[1] * sy, face.box[2] * sx, face.box[3] * sy)
        crop = crop_face(image, box, margin=margin, size=CROP_SIZE)
        bgr = cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)
        ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 88])
        if not ok:
            continue
        if gradcam is not None:
            model_config = gradcam.model.config
            model_crops.append(
                crop_face(image, box, size=model_config.input_size, **model_config.crop_options())
            )
        faces.append(SuspiciousFace(
            t=frame.t, frame_index=frame.index, track=face.track, score=face.score,
            det_score=face.det_score, box=face.box, jpeg_base64=base64.b64encode(encoded.tobytes()).decode(),
        ))
    if gradcam is not None and model_crops:
        faces = _with_heatmaps(faces, np.stack(model_crops), gradcam)
    return faces


def _with_heatmaps(faces: list[SuspiciousFace], crops: np.ndarray, gradcam: GradCam) -> list[SuspiciousFace]:
    from pipeline.explain import encode_jpeg, overlay_heatmap

    heatmaps = gradcam.explain(crops)
    explained = []
    for face, crop, heatmap in zip(faces, crops, heatmaps.maps, strict=True):
        overlay = cv2.resize(
            overlay_heatmap(crop, heatmap), (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_AREA
        )
        explained.append(replace(face, heatmap_base64=base64.b64encode(encode_jpeg(overlay)).decode()))
    return explained


def _chart(result: VideoResult) -> str:
    """Score over time: frame scores as dots joined within runs, segment scores as steps, threshold."""
    duration = max(result.video.duration_s, 1e-6)
    plot_w, plot_h = _CHART_W - _PAD_L - _PAD_R, _CHART_H - _PAD_T - _PAD_B

    def x_of(t: float) -> float:
        return _PAD_L + plot_w * min(max(t / duration, 0.0), 1.0)

    def y_of(score: float) -> float:
        return _PAD_T + plot_h * (1.0 - min(max(score, 0.0), 1.0))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_CHART_W} {_CHART_H}" '
        f'role="img" aria-label="P(fake) over time">',
        f'<rect x="{_PAD_L}" y="{_PAD_T}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ccc"/>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = y_of(tick)
        parts.append(f'<line x1="{_PAD_L}" y1="{y:.1f}" x2="{_PAD_L + plot_w}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(
            f'<text x="{_PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{tick:.2f}</text>'
        )
    steps = 5
    for k in range(steps + 1):
        t = duration * k / steps
        anchor = "start" if k == 0 else "end" if k == steps else "middle"  # keep the end labels inside
        parts.append(
            f'<text x="{x_of(t):.1f}" y="{_CHART_H - 10}" text-anchor="{anchor}" class="tick">'
            f"{t:.1f} s</text>"
        )
    threshold_y = y_of(result.threshold)
    parts.append(
        f'<line x1="{_PAD_L}" y1="{threshold_y:.1f}" x2="{_PAD_L + plot_w}" y2="{threshold_y:.1f}" '
        f'stroke="#c0392b" stroke-dasharray="5,4"><title>threshold {result.threshold:.3f}</title></line>'
    )
    for segment in result.segments:
        if segment.score is None:
            continue
        y = y_of(segment.score)
        x1, x2 = x_of(segment.start_s), x_of(segment.end_s)
        parts.append(
            f'<line x1="{x1:.1f}" y1="{y:.1f}" x2="{x2:.1f}" y2="{y:.1f}" '
            f'stroke="#8e44ad" stroke-width="3" opacity="0.6"><title>segment {segment.index}: '
            f'{segment.score:.3f}</title></line>'
        )
    run: list[str] = []
    for frame in result.frames:
        if frame.score is None:
            if len(run) > 1:
                parts.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="#2c7fb8"/>')
            run = []
            continue
        point = f"{x_of(frame.t):.1f},{y_of(frame.score):.1f}"
        run.append(point)
        parts.append(
            f'<circle cx="{x_of(frame.t):.1f}" cy="{y_of(frame.score):.1f}" r="2.5" fill="#2c7fb8">'
            f"<title>t={frame.t:.2f} s  frame {frame.index}  P(fake)={frame.score:.3f}</title></circle>"
        )
    if len(run) > 1:
        parts.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="#2c7fb8"/>')
    parts.append("</svg>")
    return "\n".join(parts)


_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 820px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 24px 0 8px; }
.verdict { font-size: 28px; font-weight: 700; } .fake { color: #c0392b; } .real { color: #1e8449; }
.no_face { color: #7f8c8d; }
.banner { background: #c0392b; color: #fff; padding: 10px 14px; font-weight: 700; border-radius: 4px; }
table { border-collapse: collapse; }
td, th { padding: 3px 12px 3px 0; text-align: left; vertical-align: top; }
th { color: #555; font-weight: 600; } .tick { font-size: 10px; fill: #666; }
.faces { display: flex; flex-wrap: wrap; gap: 10px; } figure { margin: 0; text-align: center; }
figure img { width: 160px; height: 160px; border: 1px solid #ccc; } figure img.heatmap { margin-left: 4px; }
figcaption { font-size: 12px; color: #444; }
"""


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _input_row(video: VideoInfo) -> str:
    if video.media_type == "image":
        return f"<tr><th>Image</th><td>{video.width}×{video.height}, {html.escape(video.codec)}</td></tr>"
    return (
        f"<tr><th>Video</th><td>{video.duration_s:.2f} s, {video.width}×{video.height}, "
        f"{video.fps:.2f} fps, {html.escape(video.codec)}</td></tr>"
    )


def render_report(result: VideoResult, *, title: str, faces: Sequence[SuspiciousFace] = ()) -> str:
    esc = html.escape
    model = result.model
    video = result.video
    timings = result.timings
    face_count = sum(len(f.faces) for f in result.frames)
    frames_with_faces = sum(1 for f in result.frames if f.faces)
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>DeepfakeStream report: {esc(title)}</title>",
        f"<style>{_STYLE}</style></head><body>",
    ]
    if not model.get("trained", False):
        lines.append(
            '<p class="banner">UNTRAINED MODEL: this checkpoint was never trained. The scores below are '
            "the output of random weights and say nothing about this video.</p>"
        )
    lines += [
        f"<h1>{esc(title)}</h1>",
        f'<p class="verdict {esc(result.verdict)}">{esc(result.verdict.replace("_", " ").upper())}</p>',
        "<table>",
        f"<tr><th>P(fake)</th><td>{_fmt(result.score)} (threshold {result.threshold:.3f})</td></tr>",
        f"<tr><th>Faces</th><td>{face_count} in {frames_with_faces} of {len(result.frames)} sampled frames, "
        f"{len(result.tracks)} track(s)</td></tr>",
        _input_row(video),
        f"<tr><th>Model</th><td>{esc(str(model.get('name')))} {esc(str(model.get('version')))}, "
        f"trained: {esc(str(model.get('trained')).lower())}, "
        f"sha256 {esc(str(model.get('sha256', ''))[:16])}…</td></tr>",
        f"<tr><th>Time</th><td>{_fmt(timings.get('total_s'), 2)} s, real-time factor {_fmt(result.rtf, 3)} "
        f"(overlapping busy times: probe {_fmt(timings.get('probe_s'), 2)}, "
        f"decode wait {_fmt(timings.get('decode_s'), 2)}, detect {_fmt(timings.get('detect_s'), 2)}, "
        f"classify {_fmt(timings.get('classify_s'), 2)})</td></tr>",
        "</table>",
    ]
    if video.media_type != "image":  # one frame has no course over time
        lines += [
            "<h2>Score over time</h2>",
            "<p>Dots: sampled frames (highest face score in the frame). Bars: segment scores. "
            "Dashed line: the decision threshold.</p>",
            _chart(result),
        ]
    lines.append("<h2>Most suspicious faces</h2>")
    if any(face.heatmap_base64 for face in faces):
        lines.append(
            "<p>Beside each face, its Grad-CAM heatmap: red where the classifier found the most "
            "evidence for a fake, computed on the crop the classifier saw.</p>"
        )
    if faces:
        lines.append('<div class="faces">')
        for face in faces:
            heatmap = (
                f'<img class="heatmap" alt="Grad-CAM heatmap, track {face.track}, t={face.t:.2f} s" '
                f'src="data:image/jpeg;base64,{face.heatmap_base64}">'
                if face.heatmap_base64
                else ""
            )
            lines.append(
                f'<figure><img alt="face, track {face.track}, t={face.t:.2f} s" '
                f'src="data:image/jpeg;base64,{face.jpeg_base64}">{heatmap}'
                f"<figcaption>P(fake) {face.score:.3f}<br>track {face.track}, {face.t:.2f} s "
                f"(frame {face.frame_index})</figcaption></figure>"
            )
        lines.append("</div>")
    else:
        lines.append("<p>No face was found in the sampled frames.</p>")
    if result.tracks:
        lines += ["<h2>Face tracks</h2>", "<table><tr><th>track</th><th>from</th><th>to</th>"
                  "<th>faces</th><th>P(fake)</th></tr>"]
        for track in result.tracks:
            lines.append(
                f"<tr><td>{track.id}</td><td>{track.first_t:.2f} s</td><td>{track.last_t:.2f} s</td>"
                f"<td>{track.faces}</td><td>{_fmt(track.score)}</td></tr>"
            )
        lines.append("</table>")
    lines += [
        "<h2>Segments</h2>",
        "<table><tr><th>#</th><th>from</th><th>to</th><th>frames</th><th>faces</th><th>P(fake)</th></tr>",
    ]
    for segment in result.segments:
        lines.append(
            f"<tr><td>{segment.index}</td><td>{segment.start_s:.2f} s</td><td>{segment.end_s:.2f} s</td>"
            f"<td>{len(segment.frames)}</td><td>{segment.face_count}</td><td>{_fmt(segment.score)}</td></tr>"
        )
    lines += ["</table>", "</body></html>"]
    return "\n".join(lines) + "\n"


def write_report(
    path: str | Path,
    result: VideoResult,
    *,
    video_path: str | Path,
    margin: float = 0.3,
    config: AnalysisConfig | None = None,
    gradcam: GradCam | None = None,
) -> Path:
    """Render the report for ``result`` (of ``video_path``) and write it atomically to ``path``;
    with ``gradcam``, each suspicious face comes with its heatmap."""
    path = Path(path)
    faces = collect_suspicious_faces(video_path, result, margin=margin, config=config, gradcam=gradcam)
    document = render_report(result, title=Path(video_path).name, faces=faces)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(document, encoding="utf-8")
    tmp.replace(path)
    return path
