"""The one-file HTML report as a person reads it: opened in a real browser at desktop and phone
widths. Built from plain records (``core.report``), so no stack is needed. Screenshots go to
$E2E_SCREENSHOTS when it is set."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from core.heatmaps import legend_stops
from core.report import (
    Report,
    ReportFace,
    ReportFrame,
    ReportInput,
    ReportModel,
    ReportSegment,
    ReportTrack,
    ReportVideo,
)
from core.report_html import render_report

pytestmark = pytest.mark.e2e

CAVEAT = "Trained on DFDC face swaps; may miss lip-sync and fully generated faces."


def _jpeg(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (value, value, value)).save(buffer, format="JPEG")
    return buffer.getvalue()


GREY_JPEG = _jpeg(128)


def _report(**changes: Any) -> Report:
    values: dict[str, Any] = {
        "analysed_at": datetime(2026, 12, 7, 12, 0, tzinfo=UTC),
        "input": ReportInput(name="clip.mp4", size_bytes=1_234_567, sha256="ab" * 32),
        "verdict": "real",
        "score": 0.04,
        "threshold": 0.437,
        "inconclusive_band": (0.377, 0.572),
        "aggregation": "mean",
        "model": ReportModel(name="lite0", version="2.2.0", sha256="c" * 64, trained=True, caveat=CAVEAT),
        "video": ReportVideo(duration_s=6.0, width=640, height=360, fps=25.0, codec="h264"),
        "settings": {"sample_fps": 3.0, "aggregation": "mean"},
        "frames": [ReportFrame(t=t / 3, index=t * 8, score=0.03 + 0.002 * t, faces=1) for t in range(18)],
        "segments": [
            ReportSegment(index=i, start_s=3.0 * i, end_s=3.0 * (i + 1), frames=9, faces=9, score=0.04)
            for i in range(2)
        ],
        "tracks": [ReportTrack(id=0, first_t=0.0, last_t=5.7, faces=18, score=0.04)],
        "faces": [
            ReportFace(
                t=1.0, frame_index=25, track=0, score=0.05, crop_jpeg=GREY_JPEG, heatmap_jpeg=GREY_JPEG
            )
        ],
        "job_id": "job-1",
    }
    values.update(changes)
    return Report(**values)


def _open(shown: Page, document: str) -> None:
    shown.set_content(document)
    shown.wait_for_load_state("load")


def _rgb(shown: Page, selector: str, prop: str) -> tuple[int, ...]:
    value = shown.eval_on_selector(selector, f"node => getComputedStyle(node).{prop}")
    return tuple(int(part) for part in re.findall(r"\d+", value)[:3])


def _font_px(shown: Page, selector: str) -> float:
    return float(shown.eval_on_selector(selector, "node => parseFloat(getComputedStyle(node).fontSize)"))


def test_a_real_verdict_says_what_the_model_did_and_weighs_its_limits(
    page: Page, phone: Page, shots: Path
) -> None:
    document = render_report(_report())
    for name, shown in (("desktop", page), ("phone", phone)):
        _open(shown, document)
        expect(shown.locator("p.verdict")).to_have_text("No signs of manipulation found by this model")
        expect(shown.locator("p.explanation")).to_contain_text("not proof that the video is authentic")
        caveat = shown.locator("p.caveat")
        expect(caveat).to_be_visible()
        expect(caveat).to_contain_text(CAVEAT)
        # Not small grey print: body size or larger, dark, upright, on a note of its own.
        size = _font_px(shown, "p.caveat")
        assert size >= 14, size
        assert max(_rgb(shown, "p.caveat", "color")) < 80, _rgb(shown, "p.caveat", "color")
        assert shown.eval_on_selector("p.caveat", "node => getComputedStyle(node).fontStyle") == "normal"
        assert shown.eval_on_selector("p.caveat", "node => getComputedStyle(node).borderLeftWidth") == "4px"
        # Read right after the verdict, before the provenance table.
        order = shown.evaluate(
            "() => [...document.body.children].map(n => n.className || n.tagName.toLowerCase())"
        )
        assert order.index("caveat") < order.index("table"), order
        shown.screenshot(path=str(shots / f"report-real-{name}.png"), full_page=True)


def legend_colours(shown: Page, selector: str) -> list[tuple[int, ...]]:
    """The colours of a legend bar's gradient, left to right, as the browser computed them."""
    gradient = shown.eval_on_selector(selector, "node => getComputedStyle(node).backgroundImage")
    return [tuple(int(v) for v in match) for match in re.findall(r"rgb\((\d+), (\d+), (\d+)\)", gradient)]


def test_the_heatmaps_colour_scale_is_drawn_with_labelled_ends(page: Page, phone: Page, shots: Path) -> None:
    document = render_report(_report())
    for name, shown in (("desktop", page), ("phone", phone)):
        _open(shown, document)
        legend = shown.get_by_test_id("heatmap-legend")
        expect(legend).to_be_visible()
        expect(legend.locator(".heat-end.lo")).to_have_text("0 no evidence")
        expect(legend.locator(".heat-end.hi")).to_have_text("1 strongest (P(fake) 1)")
        bar = legend.locator(".heat-bar").bounding_box()
        assert bar is not None and bar["width"] >= 80 and bar["height"] >= 10, bar
        # Ends left and right of the bar, on the screen.
        low, high = (legend.locator(f".heat-end.{end}").bounding_box() for end in ("lo", "hi"))
        assert low is not None and high is not None
        assert low["x"] < bar["x"] and high["x"] >= bar["x"] + bar["width"] - 1, (low, bar, high)
        assert high["x"] + high["width"] <= shown.viewport_size["width"]  # type: ignore[index]
        assert legend_colours(shown, "[data-testid=heatmap-legend] .heat-bar") == [
            c for _, c in legend_stops()
        ]
        shown.locator("h2", has_text="Most suspicious faces").scroll_into_view_if_needed()
        shown.screenshot(path=str(shots / f"report-legend-{name}.png"))


def test_chart_text_is_legible_on_a_phone_and_on_a_desktop(page: Page, phone: Page, shots: Path) -> None:
    document = render_report(_report())
    for name, shown in (("desktop", page), ("phone", phone)):
        _open(shown, document)
        charts = shown.locator("svg[aria-label='P(fake) over time']")
        expect(charts).to_have_count(2)
        visible = [charts.nth(i) for i in range(2) if charts.nth(i).is_visible()]
        assert len(visible) == 1, name
        chart = visible[0]
        box = chart.bounding_box()
        assert box is not None and box["x"] + box["width"] <= shown.viewport_size["width"]  # type: ignore[index]
        heights = chart.evaluate(
            "svg => [...svg.querySelectorAll('text')].map(n => n.getBoundingClientRect().height)"
        )
        assert heights and min(heights) >= 10, (name, heights)
        chart.scroll_into_view_if_needed()
        shown.screenshot(path=str(shots / f"report-chart-{name}.png"))
