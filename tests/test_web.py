"""The worker's web server in-process: routes, content types, event stream, port errors."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from importlib.resources import files

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.devstack import StackEndpoints
from streams.errors import ConfigError
from streams.feed import FeedItem, MatchFeed
from streams.metrics import WorkerMetrics
from streams.settings import Settings
from streams.web import ASSETS, SHUTDOWN_TIMEOUT_S, SNAPSHOT_INTERVAL_S, MonitoringServer
from tests.monitoring_support import free_port, monitoring_settings
from tests.support import WorkerProcess

pytestmark = pytest.mark.timeout(30)

# Seconds a test waits for one server-sent event.
EVENT_WAIT_S = 5.0
# Seconds a worker may take to load, start and stop again.
WORKER_EXIT_S = 60.0


class Readiness:
    def __init__(self) -> None:
        self.ready = False

    def __call__(self) -> bool:
        return self.ready


@pytest.fixture
def metrics() -> WorkerMetrics:
    metrics = WorkerMetrics()
    metrics.events_embedded.labels("text", "text").inc(3)
    return metrics


@pytest.fixture
def feed() -> MatchFeed:
    feed = MatchFeed()
    feed.add("text", FeedItem("a", "text", "first snippet"), (FeedItem("b", "text", "second", 0.9),))
    return feed


@pytest.fixture
def readiness() -> Readiness:
    return Readiness()


@pytest.fixture
async def server(metrics: WorkerMetrics, feed: MatchFeed, readiness: Readiness) -> AsyncIterator[MonitoringServer]:
    settings = Settings(web_host="127.0.0.1", web_port=free_port())
    server = MonitoringServer(settings, metrics, feed, readiness)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def get(server: MonitoringServer, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session, session.get(f"{server.url}{path}", headers=headers) as response:
        return response.status, dict(response.headers), await response.read()


async def read_events(response: aiohttp.ClientResponse, count: int) -> list[dict[str, str]]:
    """Read ``count`` server-sent events (field name to value), skipping the retry field."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    while len(events) < count:
        line = (await asyncio.wait_for(response.content.readline(), EVENT_WAIT_S)).decode().rstrip("\n")
        if line:
            name, _, value = line.partition(": ")
            current[name] = value
        elif current:
            if "event" in current:
                events.append(current)
            current = {}
    return events


async def test_metrics_serves_prometheus_text(server: MonitoringServer) -> None:
    status, headers, body = await get(server, "/metrics")

    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {family.name: family for family in text_string_to_metric_families(body.decode())}
    assert families["embedstream_events_embedded"].samples[0].value == 3.0


async def test_metrics_serves_openmetrics_when_asked(server: MonitoringServer) -> None:
    status, headers, body = await get(server, "/metrics", Accept="application/openmetrics-text; version=1.0.0")

    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


async def test_healthz_reports_pipeline_readiness(server: MonitoringServer, readiness: Readiness) -> None:
    status_starting, _, body_starting = await get(server, "/healthz")
    readiness.ready = True
    status_ready, _, body_ready = await get(server, "/healthz")

    assert (status_starting, orjson.loads(body_starting)) == (503, {"ready": False})
    assert (status_ready, orjson.loads(body_ready)) == (200, {"ready": True})


async def test_snapshot_returns_figures_and_feed(server: MonitoringServer) -> None:
    status, headers, body = await get(server, "/api/snapshot")

    document = orjson.loads(body)
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert document["snapshot"]["throughput"][0]["embedded_total"] == 3.0
    assert [entry["source"]["preview"] for entry in document["feed"]] == ["first snippet"]


async def test_page_served_with_content_security_policy(server: MonitoringServer) -> None:
    status, headers, body = await get(server, "/")

    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert b'EventSource' not in body, "the script belongs in dashboard.js, which the policy allows"
    assert b'src="static/dashboard.js"' in body


@pytest.mark.parametrize("name", sorted(ASSETS))
async def test_asset_served_with_content_type(server: MonitoringServer, name: str) -> None:
    status, headers, _ = await get(server, f"/static/{name}")

    assert status == 200
    assert headers["Content-Type"].startswith(ASSETS[name])


async def test_asset_unknown_returns_404(server: MonitoringServer) -> None:
    status, _, _ = await get(server, "/static/..%2Fweb.py")

    assert status == 404


@pytest.mark.parametrize("name", ["index.html", *sorted(ASSETS)])
def test_dashboard_file_loads_nothing_from_other_hosts(name: str) -> None:
    text = files("streams.dashboard").joinpath(name).read_text(encoding="utf-8")

    assert not re.search(r"(?:https?:)?//[\w.-]+\.\w", text), f"{name} refers to another host"
    assert "@import" not in text


async def test_events_stream_sends_snapshot_then_feed(server: MonitoringServer) -> None:
    async with aiohttp.ClientSession() as session, session.get(f"{server.url}/events") as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        snapshot, match = await read_events(response, 2)

    assert snapshot["event"] == "snapshot"
    assert orjson.loads(snapshot["data"])["throughput"][0]["embedded_total"] == 3.0
    assert match["event"] == "match"
    assert match["id"] == "1"
    assert orjson.loads(match["data"])["matches"][0]["similarity"] == 0.9


async def test_events_stream_sends_new_matches(server: MonitoringServer, feed: MatchFeed) -> None:
    async with aiohttp.ClientSession() as session, session.get(f"{server.url}/events") as response:
        await read_events(response, 2)
        feed.add("text", FeedItem("c", "text", "third"), (FeedItem("a", "text", "first", 0.8),))
        events = await read_events(response, 2)

    matches = [event for event in events if event["event"] == "match"]
    assert [event["id"] for event in matches] == ["2"]


async def test_events_stream_resumes_after_last_event_id(server: MonitoringServer, feed: MatchFeed) -> None:
    feed.add("text", FeedItem("c", "text", "third"), (FeedItem("a", "text", "first", 0.8),))
    url = f"{server.url}/events"
    async with aiohttp.ClientSession() as session, session.get(url, headers={"Last-Event-ID": "1"}) as response:
        events = await read_events(response, 2)

    assert [event.get("id") for event in events] == [None, "2"]


async def test_snapshot_failure_logged_once_and_metrics_served(
    server: MonitoringServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def fail(window: object) -> None:
        raise RuntimeError("broken snapshot")

    monkeypatch.setattr("streams.web.build_snapshot", fail)
    await asyncio.sleep(SNAPSHOT_INTERVAL_S * 2.5)
    status, _, _ = await get(server, "/metrics")

    warnings = [record for record in caplog.records if "snapshot failed" in record.getMessage()]
    assert status == 200
    assert len(warnings) == 1, [record.getMessage() for record in warnings]
    assert "broken snapshot" in warnings[0].getMessage()


async def test_start_port_in_use_raises_config_error(metrics: WorkerMetrics, feed: MatchFeed) -> None:
    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        port = occupant.getsockname()[1]
        server = MonitoringServer(Settings(web_host="127.0.0.1", web_port=port), metrics, feed, lambda: True)

        with pytest.raises(ConfigError) as raised:
            await server.start()

    message = str(raised.value)
    assert f"127.0.0.1:{port}" in message
    assert "already in use" in message
    assert "EMBEDSTREAM_WEB_PORT" in message


async def test_stop_ends_open_event_stream(metrics: WorkerMetrics, feed: MatchFeed) -> None:
    server = MonitoringServer(Settings(web_host="127.0.0.1", web_port=free_port()), metrics, feed, lambda: True)
    await server.start()
    async with aiohttp.ClientSession() as session, session.get(f"{server.url}/events") as response:
        await read_events(response, 1)
        started = time.monotonic()
        await server.stop()
        stop_s = time.monotonic() - started
        # read() returns only at the end of the stream, so the timeout fails the test otherwise.
        await asyncio.wait_for(response.content.read(), EVENT_WAIT_S)

    assert stop_s < SHUTDOWN_TIMEOUT_S, f"stopping took {stop_s:.1f} s: the stream held it until the timeout"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_worker_port_in_use_exits_with_message(
    stack: StackEndpoints, start_worker: Callable[..., WorkerProcess]
) -> None:
    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        port = occupant.getsockname()[1]
        worker = start_worker(monitoring_settings(stack, web_port=port))

        status = worker.wait_exit(WORKER_EXIT_S)

    log = worker.log_text()
    assert status == 1, f"the worker exited with {status}:\n{worker.log_tail()}"
    assert f"127.0.0.1:{port}: port {port} is already in use" in log
    assert "EMBEDSTREAM_WEB_PORT (web_port)" in log
