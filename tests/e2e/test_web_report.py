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

from core.report import (
    Report,
    ReportFace,
    ReportFrame,
    ReportInput,
    ReportModel,
    ReportSegment,
    ReportTrack,
    ReportVideo,
    render_report,
)

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
