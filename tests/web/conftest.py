"""Fixtures of the web tests: a headless Chromium for the browser tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator

import pytest


def chromium_path() -> str | None:
    """Debian's chromium, or one named by HERALD_TEST_CHROMIUM; None when there is none."""
    for candidate in (os.environ.get("HERALD_TEST_CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    """A headless Chromium (Playwright); the test skips, saying how to install it, without."""
    playwright_api = pytest.importorskip(
        "playwright.async_api", reason="pip install playwright (the dev extra) for browser tests"
    )
    path = chromium_path()
    if path is None:
        pytest.skip(
            "no Chromium found: `sudo apt-get install chromium` (Debian/Ubuntu) or set "
            "HERALD_TEST_CHROMIUM to a Chromium binary to run the browser test"
        )
    async with playwright_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            await chromium.close()
