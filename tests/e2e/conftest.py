"""The whole stack and a real browser: headless Chromium from Debian's package, driven by Playwright.

Nothing is downloaded and nothing skips: without /usr/bin/chromium (apt-get install chromium) the
tests fail and say so.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

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


@pytest.fixture()
def page(browser: object) -> Iterator[object]:
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    context = browser.new_context(viewport={"width": 1100, "height": 1400})
    opened = context.new_page()
    try:
        yield opened
    finally:
        context.close()
