"""The optional bearer token of the web endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from streams.feed import MatchFeed
from streams.metrics import WorkerMetrics
from streams.settings import Settings
from streams.top import read_metrics
from streams.web import MonitoringServer
from streams.web_auth import TOKEN_COOKIE
from tests.monitoring_support import free_port

pytestmark = pytest.mark.timeout(30)

TOKEN = "dashboard-token-0123456789"


@pytest.fixture
async def server() -> AsyncIterator[MonitoringServer]:
    settings = Settings(web_host="127.0.0.1", web_port=free_port(), web_token=TOKEN)
    metrics = WorkerMetrics()
    metrics.events_embedded.labels("text", "text").inc()
    server = MonitoringServer(settings, metrics, MatchFeed(), lambda: True)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def status_of(server: MonitoringServer, path: str, **headers: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"{server.url}{path}", headers=headers) as response:
        return response.status


@pytest.mark.parametrize("path", ["/", "/metrics", "/api/snapshot", "/events", "/static/dashboard.js"])
async def test_request_without_token_rejected(server: MonitoringServer, path: str) -> None:
    assert await status_of(server, path) == 401
    assert await status_of(server, path, Authorization="Bearer wrong-token") == 401


async def test_bearer_token_admitted(server: MonitoringServer) -> None:
    assert await status_of(server, "/metrics", Authorization=f"Bearer {TOKEN}") == 200
    assert await status_of(server, "/api/snapshot", Authorization=f"Bearer {TOKEN}") == 200


async def test_health_open_without_token(server: MonitoringServer) -> None:
    assert await status_of(server, "/healthz") == 200


async def test_query_token_sets_cookie_for_browser(server: MonitoringServer) -> None:
    # A browser keeps cookies of 127.0.0.1; aiohttp's jar does so only when unsafe=True.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get(f"{server.url}/?token={TOKEN}") as response:
            assert response.status == 200
            assert str(response.url) == f"{server.url}/"
        assert TOKEN_COOKIE in {cookie.key for cookie in session.cookie_jar}
        async with session.get(f"{server.url}/api/snapshot") as response:
            assert response.status == 200


async def test_top_reads_with_token(server: MonitoringServer) -> None:
    assert server.url is not None
    with pytest.raises(OSError):
        await asyncio.to_thread(read_metrics, f"{server.url}/metrics")
    scrape = await asyncio.to_thread(read_metrics, f"{server.url}/metrics", token=TOKEN)
    assert scrape is not None
