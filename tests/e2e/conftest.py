"""The whole stack and a real browser: headless Chromium from Debian's package, driven by Playwright.

Nothing is downloaded and nothing skips: without /usr/bin/chromium (apt-get install chromium) the
tests fail and say so.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import ViewportSize

from tests.utils.stack import QUICK_SETTINGS, Stack, running_stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
]
SOURCE_BUCKET = "e2e-client-videos"
DESKTOP: ViewportSize = {"width": 1100, "height": 1400}
PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    for tool in ("ffmpeg", "ffprobe"):
        assert shutil.which(tool), f"{tool} is required (apt-get install ffmpeg)"
    with running_stack(
        tmp_path_factory.mktemp("e2e-stack"),
        settings={**QUICK_SETTINGS, "SOURCE_BUCKETS": SOURCE_BUCKET},
        bucket="dfs-monitoring",
        worker_name="e2e",
        metrics=True,
    ) as running:
        yield running


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack with videos stored in a local directory, as ``./scripts/platform`` runs it: direct
    uploads then go through the API's own upload route (with the key) instead of presigned URLs."""
    root = tmp_path_factory.mktemp("e2e-local-stack")
    with running_stack(
        root,
        settings=QUICK_SETTINGS,
        storage_url=(root / "storage").as_uri(),
        worker_name="e2e-local",
        prefix_tag="local-",
    ) as running:
        yield running


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install chromium (see scripts/setup)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


def _refusing_csp_violations(context: object) -> Iterator[object]:
    """A new page of ``context``; the test fails if the page's Content-Security-Policy refused
    anything (a script, a style, an image, a request) while it ran."""
    from playwright.sync_api import BrowserContext, ConsoleMessage

    assert isinstance(context, BrowserContext)
    refused: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            refused.append(message.text)

    opened = context.new_page()
    opened.on("console", note)
    try:
        yield opened
    finally:
        context.close()
    assert not refused, f"the page's Content-Security-Policy refused: {refused}"


@pytest.fixture()
def page(browser: object) -> Iterator[object]:
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    yield from _refusing_csp_violations(browser.new_context(viewport=DESKTOP))


@pytest.fixture()
def phone(browser: object) -> Iterator[object]:
    """A page on a 390 px wide phone screen (mobile viewport rules and touch on)."""
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    yield from _refusing_csp_violations(
        browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    )


@pytest.fixture()
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: $E2E_SCREENSHOTS when set (to look at them afterwards), else tmp."""
    folder = Path(os.environ.get("E2E_SCREENSHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def enter_key(page: object, stack: Stack, headers: dict[str, str]) -> None:
    """Opens the page and enters the key, as a person would."""
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    page.goto(stack.base_url + "/")
    expect(page.locator("#view-nokey")).to_be_visible()
    page.fill("#api-key", headers["Authorization"].split(" ", 1)[1])
    page.click("#key-form button[type=submit]")
    expect(page.get_by_test_id("key-status")).to_have_text("key set")
    expect(page.locator("#view-home")).to_be_visible()
