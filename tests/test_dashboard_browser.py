"""The dashboard in a real headless Chromium: figures and match feed update live, without a reload."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright

from streams.devstack import StackEndpoints
from streams.topics import create_topics
from tests.monitoring_support import ARTIFACTS, SENTENCES, Publisher, base_url, fetch, monitoring_settings, require_tool
from tests.support import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

CHROMIUM = "/usr/bin/chromium"
# Flags for a headless browser in a container: no sandbox (root), no GPU, no calls home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

WAIT_S = 60.0
# Milliseconds Playwright waits for an element, while the page updates every second.
ELEMENT_WAIT_MS = 20_000
# Seconds between the two reads of the page.
READ_GAP_S = 3.0
SCREENSHOT = ARTIFACTS / "dashboard.png"

READ_PAGE = """() => ({
  embedded: document.getElementById("total-embedded").textContent,
  updated: document.getElementById("updated").textContent,
  throughputRows: [...document.querySelectorAll("#throughput tbody tr")].map((row) => row.textContent),
  topSequence: Number(document.querySelector("#feed li")?.dataset.sequence ?? 0),
  feedLength: document.querySelectorAll("#feed li.match").length,
  thumbnails: [...document.querySelectorAll("#feed img.thumbnail")].map((image) => image.getAttribute("src")),
  snippets: [...document.querySelectorAll("#feed .snippet")].map((node) => node.textContent),
  marker: window.embedstreamTestMarker ?? null,
  navigations: performance.getEntriesByType("navigation").length,
})"""


def count(text: str) -> int:
    return int(text.replace(",", "")) if text.replace(",", "").isdigit() else -1


def changed(first: dict[str, Any], second: dict[str, Any]) -> bool:
    """Return whether both the embedded total and the newest match differ between two reads."""
    return count(second["embedded"]) > count(first["embedded"]) and second["topSequence"] > first["topSequence"]


async def read_page(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = await page.evaluate(READ_PAGE)
    return state


async def test_dashboard_updates_live_without_reload(
    stack: StackEndpoints, start_worker: Callable[..., WorkerProcess]
) -> None:
    chromium = require_tool("chromium", CHROMIUM)
    settings = monitoring_settings(stack)
    await create_topics(settings)
    worker = start_worker(settings)
    publisher = Publisher(settings)
    publisher.start()
    try:

        async def feed_has_matches() -> bool:
            try:
                return b'"matches":[{' in await asyncio.to_thread(fetch, f"{base_url(settings)}/api/snapshot")
            except OSError:
                return False

        await worker.wait_for(feed_has_matches, WAIT_S, "the first match event in the worker's feed")

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1400, "height": 1000})
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
                navigations: list[str] = []
                page.on("framenavigated", lambda frame: navigations.append(frame.url))

                await page.goto(f"{base_url(settings)}/")
                await page.wait_for_selector('#status[data-state="live"]', timeout=ELEMENT_WAIT_MS)
                await page.wait_for_selector("#feed li.match", timeout=ELEMENT_WAIT_MS)
                await page.wait_for_function(
                    "() => document.querySelectorAll('#feed img.thumbnail').length > 0", timeout=ELEMENT_WAIT_MS
                )
                await page.evaluate("() => { window.embedstreamTestMarker = 'first load'; }")
                first = await read_page(page)

                await asyncio.sleep(READ_GAP_S)
                second = await read_page(page)
                deadline = time.monotonic() + WAIT_S
                while time.monotonic() < deadline and not changed(first, second):
                    await asyncio.sleep(1.0)
                    second = await read_page(page)

                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(SCREENSHOT), full_page=True)
            finally:
                await browser.close()
    finally:
        await publisher.stop()

    assert second["marker"] == "first load", "the page was reloaded between the reads"
    assert len(navigations) == 1, f"the page navigated more than once: {navigations}"
    assert count(first["embedded"]) > 0, f"no embedded total on first read: {first}"
    assert count(second["embedded"]) > count(first["embedded"]), f"the embedded total did not grow: {first} {second}"
    assert second["updated"] != first["updated"], "the snapshot time did not change"
    assert second["topSequence"] > first["topSequence"], "no new match reached the feed"
    assert any(row.startswith("texthashed") for row in second["throughputRows"]), second["throughputRows"]
    assert any(src.startswith("data:image/jpeg;base64,") for src in second["thumbnails"]), "no image thumbnail"
    assert any(snippet.startswith(SENTENCES) for snippet in second["snippets"]), "no text snippet in the feed"
    assert not errors, f"the page reported errors: {errors}"
    assert SCREENSHOT.stat().st_size > 10_000, "the screenshot is suspiciously small"
