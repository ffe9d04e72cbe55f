"""The HTML of a report (``core.report.Report``): one self-contained file, styles, the SVG chart and
the face images inline, so it opens anywhere without a network."""

from __future__ import annotations

import base64
import html
from datetime import UTC, datetime
from typing import Any

from core import heatmaps
from core.report import Report, ReportVideo
from core.report_chart import NARROW_CHART, WIDE_CHART, score_chart

__all__ = ["render_report"]


_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 820px; color: #222;
       padding: 0 12px; }
h1 { font-size: 20px; margin: 0 0 4px; word-break: break-all; } h2 { font-size: 16px; margin: 24px 0 8px; }
.verdict { font-size: 28px; font-weight: 700; margin: 8px 0; }
.fake { color: #c0392b; } .real { color: #1e8449; } .inconclusive { color: #b9770e; }
.no_face { color: #5d6d7e; }
.explanation { font-size: 15px; }
.caveat { font-size: 15px; color: #222; background: #fff7e6; border-left: 4px solid #d9a022;
          padding: 8px 12px; }
.banner { background: #c0392b; color: #fff; padding: 10px 14px; font-weight: 700; border-radius: 4px; }
table { border-collapse: collapse; }
td, th { padding: 3px 12px 3px 0; text-align: left; vertical-align: top; }
th { color: #555; font-weight: 600; } .tick { font-size: 10px; fill: #666; }
.axis { font-size: 11px; fill: #444; } code { word-break: break-all; }
.faces { display: flex; flex-wrap: wrap; gap: 12px; } figure { margin: 0; text-align: center; }
figure img { width: 160px; height: 160px; border: 1px solid #ccc; } figure img.heatmap { margin-left: 4px; }
figcaption { font-size: 12px; color: #444; }
svg { width: 100%; height: auto; }
/* Two drawings of the chart, one per width class: chart text stays 10 px or more on a phone. */
svg.chart-narrow { display: none; } svg.chart-narrow .tick, svg.chart-narrow .axis { font-size: 12px; }
@media (max-width: 600px) { svg.chart-wide { display: none; } svg.chart-narrow { display: block; } }
.heat-legend { display: flex; flex-wrap: wrap; align-items: center; gap: 4px 8px; margin: 4px 0 12px;
               font-size: 13px; }
.heat-bar { flex: 1 1 100px; min-width: 80px; max-width: 260px; height: 14px; border: 1px solid #ccc;
            border-radius: 3px; }
.heat-end { white-space: nowrap; }
"""


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _size(size_bytes: int | None) -> str:
    if size_bytes is None:
        return "size unknown"
    value = float(size_bytes)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{size_bytes} bytes" if unit == "bytes" else f"{value:.1f} {unit} ({size_bytes} bytes)"
        value /= 1000
    raise AssertionError("unreachable")


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _jpeg(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def _heat_legend() -> str:
    """The heatmaps' colour bar with its ends labelled, in the colours the overlays are drawn in."""
    return (
        '<div class="heat-legend" data-testid="heatmap-legend">'
        '<span class="heat-end lo">0 no evidence</span>'
        f'<span class="heat-bar" style="background: {heatmaps.legend_gradient()}" role="img" '
        'aria-label="heatmap colours from 0, no evidence, to 1, the strongest evidence of a face scored '
        'P(fake) 1"></span>'
        '<span class="heat-end hi">1 strongest (P(fake) 1)</span></div>'
    )


def _settings_text(settings: dict[str, Any]) -> str:
    return ", ".join(f"{name} {value}" for name, value in settings.items() if value is not None) or "—"


def _video_text(video: ReportVideo) -> str:
    parts = []
    if video.duration_s is not None and video.media_type != "image":
        parts.append(f"{video.duration_s:.2f} s")
    if video.width and video.height:
        parts.append(f"{video.width}×{video.height}")
    if video.fps and video.media_type != "image":
        parts.append(f"{video.fps:.2f} fps")
    if video.codec:
        parts.append(video.codec)
    return ", ".join(parts) or "—"


def _faces_text(report: Report, face_count: int, frames_with_faces: int) -> str:
    if report.video.media_type == "image":
        return f"{face_count} in the picture"
    return (
        f"{face_count} in {frames_with_faces} of {len(report.frames)} sampled frames, "
        f"{len(report.tracks)} track(s)"
    )


def _score_text(report: Report) -> str:
    if report.score is None:
        return "no score (no face was analysed)"
    text = f"{report.score:.3f}"
    if report.threshold is not None:
        text += f" (threshold {report.threshold:.3f}"
        if report.inconclusive_band is not None:
            low, high = report.inconclusive_band
            text += f"; inconclusive from {low:.3f} up to {high:.3f}"
        text += ")"
    return text


def render_report(report: Report, *, title: str | None = None) -> str:
    esc = html.escape
    model = report.model
    title = title or report.input.name
    picture = report.video.media_type == "image"
    face_count = sum(f.faces for f in report.frames)
    frames_with_faces = sum(1 for f in report.frames if f.faces)
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>DeepfakeStream report: {esc(title)}</title>",
        f"<style>{_STYLE}</style></head><body>",
    ]
    if model.trained is False:
        lines.append(
            '<p class="banner">UNTRAINED MODEL: this checkpoint was never trained. The scores below are '
            "the output of random weights and say nothing about this video.</p>"
        )
    lines += [
        f"<h1>{esc(title)}</h1>",
        f'<p class="verdict {esc(report.verdict)}" data-verdict="{esc(report.verdict)}">'
        f"{esc(report.verdict_label)}</p>",
    ]
    if report.explanation:
        lines.append(f'<p class="explanation">{esc(report.explanation)}</p>')
    if model.caveat:
        # As prominent as the verdict it qualifies: a missed fake reads "No signs of manipulation
        # found", and this is what says that is no clearance.
        lines.append(f'<p class="caveat"><strong>Limits of this model:</strong> {esc(model.caveat)}</p>')
    source = f"<br>from <code>{esc(report.input.source)}</code>" if report.input.source else ""
    lines += [
        "<table>",
        f"<tr><th>P(fake)</th><td>{esc(_score_text(report))}</td></tr>",
        f"<tr><th>Analysed</th><td>{esc(_when(report.analysed_at))}"
        + (f", job <code>{esc(report.job_id)}</code>" if report.job_id else "")
        + "</td></tr>",
        f"<tr><th>Input file</th><td>{esc(report.input.name)}, {esc(_size(report.input.size_bytes))}"
        f"{source}</td></tr>",
        f"<tr><th>SHA-256</th><td><code>{esc(report.input.sha256 or 'unknown')}</code></td></tr>",
        f"<tr><th>{'Image' if report.video.media_type == 'image' else 'Video'}</th>"
        f"<td>{esc(_video_text(report.video))}</td></tr>",
        f"<tr><th>Faces</th><td>{esc(_faces_text(report, face_count, frames_with_faces))}</td></tr>",
        f"<tr><th>Model</th><td>{esc(str(model.name))} {esc(str(model.version))}, "
        f"trained: {esc(str(model.trained).lower())}"
        + (f", sha256 <code>{esc(model.sha256[:16])}…</code>" if model.sha256 else "")
        + "</td></tr>",
        f"<tr><th>Settings</th><td>{esc(_settings_text(report.settings))}</td></tr>",
    ]
    timings = report.timings or {}
    if "total_s" in timings:
        lines.append(
            f"<tr><th>Time</th><td>{_fmt(timings.get('total_s'), 2)} s (overlapping busy times: "
            f"decode wait {_fmt(timings.get('decode_s'), 2)}, detect {_fmt(timings.get('detect_s'), 2)}, "
            f"classify {_fmt(timings.get('classify_s'), 2)})</td></tr>"
        )
    lines.append("</table>")
    if report.video.media_type == "image":
        pass  # one frame has no course over time
    elif report.verdict == "no_face" or not any(f.score is not None for f in report.frames):
        lines.append(
            "<h2>Score over time</h2><p>No score to plot: no face was found in the sampled frames.</p>"
        )
    else:
        legend = "Dots: sampled frames (the most suspicious face in each). Bars: segment scores. "
        legend += "Dashed line: the decision threshold."
        if report.inconclusive_band is not None:
            legend += " Shaded: the inconclusive band."
        lines += [
            "<h2>Score over time</h2>",
            f"<p>{legend}</p>",
            *(
                score_chart(
                    layout,
                    duration_s=report.video.duration_s,
                    frames=report.frames,
                    segments=report.segments,
                    threshold=report.threshold,
                    band=report.inconclusive_band,
                )
                for layout in (WIDE_CHART, NARROW_CHART)
            ),
        ]
    lines.append("<h2>Most suspicious faces</h2>")
    if report.faces:
        if any(face.heatmap_jpeg for face in report.faces):
            lines.append(
                "<p>Each face as the classifier saw it and, beside it, its Grad-CAM heatmap over the same "
                f"crop: where the classifier found its evidence for a fake. {esc(heatmaps.LEGEND_TEXT)}</p>"
            )
            lines.append(_heat_legend())
        lines.append('<div class="faces">')
        for number, face in enumerate(report.faces, start=1):
            track = f"track {face.track}, " if face.track is not None else ""
            # In a picture every face is at 0.00 s of frame 0: number them instead.
            where = f"face {number}" if picture else f"{track}t={face.t:.2f} s"
            caption = f"face {number}" if picture else f"{track}{face.t:.2f} s (frame {face.frame_index})"
            heatmap = (
                f'<img class="heatmap" alt="Grad-CAM heatmap, {where}" src="{_jpeg(face.heatmap_jpeg)}">'
                if face.heatmap_jpeg
                else ""
            )
            lines.append(
                f'<figure><img class="crop" alt="{where}" src="{_jpeg(face.crop_jpeg)}">'
                f"{heatmap}<figcaption>P(fake) {face.score:.3f}<br>{caption}</figcaption></figure>"
            )
        lines.append("</div>")
    elif face_count:
        lines.append("<p>No face images were kept for this analysis.</p>")
    else:
        lines.append("<p>No face was found in the sampled frames.</p>")
    # A picture is one frame at t=0: its faces are listed above, and tracks from 0.00 to 0.00 s or
    # a one-row segment table would only repeat them.
    if report.tracks and not picture:
        lines += [
            "<h2>Face tracks</h2>",
            "<table><tr><th>track</th><th>from</th><th>to</th><th>faces</th><th>P(fake)</th></tr>",
        ]
        for row in report.tracks:
            lines.append(
                f"<tr><td>{row.id}</td><td>{row.first_t:.2f} s</td><td>{row.last_t:.2f} s</td>"
                f"<td>{row.faces}</td><td>{_fmt(row.score)}</td></tr>"
            )
        lines.append("</table>")
    if report.segments and not picture:
        lines += [
            "<h2>Segments</h2>",
            "<table><tr><th>#</th><th>from</th><th>to</th><th>frames</th><th>faces</th><th>P(fake)</th></tr>",
        ]
        for segment in report.segments:
            lines.append(
                f"<tr><td>{segment.index}</td><td>{segment.start_s:.2f} s</td><td>{segment.end_s:.2f} s</td>"
                f"<td>{segment.frames}</td><td>{segment.faces}</td><td>{_fmt(segment.score)}</td></tr>"
            )
        lines.append("</table>")
    lines += ["</body></html>"]
    return "\n".join(lines) + "\n"
