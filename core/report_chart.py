"""The report's score chart: P(fake) over the video's time as inline SVG, frame scores as dots,
segment scores as steps, the threshold and the inconclusive band."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["NARROW_CHART", "WIDE_CHART", "ChartLayout", "ScoredFrame", "ScoredSegment", "score_chart"]


class ScoredFrame(Protocol):
    """A sampled frame as the chart reads it (``core.report.ReportFrame``)."""

    @property
    def t(self) -> float: ...
    @property
    def index(self) -> int: ...
    @property
    def score(self) -> float | None: ...


class ScoredSegment(Protocol):
    """A segment as the chart reads it (``core.report.ReportSegment``)."""

    @property
    def index(self) -> int: ...
    @property
    def start_s(self) -> float: ...
    @property
    def end_s(self) -> float: ...
    @property
    def score(self) -> float | None: ...


@dataclass(frozen=True)
class ChartLayout:
    """One drawing of the score chart. The SVG scales to the page's width, text and all, so a phone
    gets a drawing made for its width instead of the desktop one shrunk to half its size."""

    name: str
    width: int
    height: int
    pad_left: int
    pad_right: int
    pad_top: int
    pad_bottom: int
    time_steps: int


WIDE_CHART = ChartLayout("wide", 760, 240, 58, 12, 12, 34, 5)
NARROW_CHART = ChartLayout("narrow", 360, 220, 58, 8, 10, 38, 3)


def score_chart(
    layout: ChartLayout,
    *,
    duration_s: float | None,
    frames: Sequence[ScoredFrame],
    segments: Sequence[ScoredSegment],
    threshold: float | None,
    band: tuple[float, float] | None,
) -> str:
    """Score over time: frame scores as dots joined within runs, segment scores as steps, the
    threshold and the inconclusive band."""
    duration = max(duration_s or 0.0, max((f.t for f in frames), default=0.0), 1e-6)
    pad_l, pad_t, chart_w, chart_h = layout.pad_left, layout.pad_top, layout.width, layout.height
    plot_w = chart_w - pad_l - layout.pad_right
    plot_h = chart_h - pad_t - layout.pad_bottom

    def x_of(t: float) -> float:
        return pad_l + plot_w * min(max(t / duration, 0.0), 1.0)

    def y_of(score: float) -> float:
        return pad_t + plot_h * (1.0 - min(max(score, 0.0), 1.0))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {chart_w} {chart_h}" '
        f'class="chart-{layout.name}" role="img" aria-label="P(fake) over time">',
        f'<rect x="{pad_l}" y="{pad_t}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ccc"/>',
    ]
    if band is not None:
        top, bottom = y_of(band[1]), y_of(band[0])
        parts.append(
            f'<rect x="{pad_l}" y="{top:.1f}" width="{plot_w}" height="{bottom - top:.1f}" fill="#f5cba7" '
            f'opacity="0.45"><title>inconclusive band {band[0]:.3f}–{band[1]:.3f}</title></rect>'
        )
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = y_of(tick)
        parts.append(f'<line x1="{pad_l}" y1="{y:.1f}" x2="{pad_l + plot_w}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(
            f'<text x="{pad_l - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{tick:.2f}</text>'
        )
    middle_y = pad_t + plot_h / 2
    parts.append(
        f'<text x="14" y="{middle_y:.1f}" text-anchor="middle" class="axis" '
        f'transform="rotate(-90 14 {middle_y:.1f})">P(fake)</text>'
    )
    steps = layout.time_steps
    for k in range(steps + 1):
        t = duration * k / steps
        anchor = "start" if k == 0 else "end" if k == steps else "middle"  # keep the end labels inside
        parts.append(
            f'<text x="{x_of(t):.1f}" y="{pad_t + plot_h + 18}" text-anchor="{anchor}" class="tick">'
            f"{t:.1f} s</text>"
        )
    parts.append(
        f'<text x="{pad_l + plot_w / 2:.1f}" y="{chart_h - 3}" text-anchor="middle" class="axis">'
        "time in the video</text>"
    )
    if threshold is not None:
        threshold_y = y_of(threshold)
        parts.append(
            f'<line x1="{pad_l}" y1="{threshold_y:.1f}" x2="{pad_l + plot_w}" y2="{threshold_y:.1f}" '
            f'stroke="#c0392b" stroke-dasharray="5,4"><title>threshold {threshold:.3f}</title></line>'
        )
    for segment in segments:
        if segment.score is None:
            continue
        y = y_of(segment.score)
        x1, x2 = x_of(segment.start_s), x_of(segment.end_s)
        parts.append(
            f'<line x1="{x1:.1f}" y1="{y:.1f}" x2="{x2:.1f}" y2="{y:.1f}" '
            f'stroke="#8e44ad" stroke-width="3" opacity="0.6"><title>segment {segment.index}: '
            f"{segment.score:.3f}</title></line>"
        )
    run: list[str] = []
    for frame in frames:
        if frame.score is None:
            if len(run) > 1:
                parts.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="#2c7fb8"/>')
            run = []
            continue
        x, y = x_of(frame.t), y_of(frame.score)
        run.append(f"{x:.1f},{y:.1f}")
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="#2c7fb8">'
            f"<title>t={frame.t:.2f} s  frame {frame.index}  P(fake)={frame.score:.3f}</title></circle>"
        )
    if len(run) > 1:
        parts.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="#2c7fb8"/>')
    parts.append("</svg>")
    return "\n".join(parts)
