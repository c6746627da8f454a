"""The worker's web server: Prometheus metrics, the live dashboard, its data and a health check.

Routes:

- ``GET /metrics``: the worker's registry in the Prometheus text format, or in
  OpenMetrics when the scraper's Accept header requests it.
- ``GET /``: the dashboard page; ``GET /static/<file>`` serves its script and style.
- ``GET /api/snapshot``: the latest snapshot and the kept match events as JSON.
- ``GET /events``: server-sent events, a ``snapshot`` event every second and a
  ``match`` event per new match, whose id is the feed sequence number, so a
  reconnecting EventSource resumes after the last match it received.
- ``GET /healthz``: 200 once the pipeline is ready, 503 while it starts or stops.
"""

from __future__ import annotations

import asyncio
import errno
import importlib.resources
import logging
from collections.abc import Callable
from contextlib import suppress

import orjson
from aiohttp import web
from mode import Service
from prometheus_client.exposition import choose_encoder

from streams.errors import ConfigError
from streams.feed import MatchFeed
from streams.logs import RateLimitedLog
from streams.metrics import WorkerMetrics
from streams.scrapes import Scrape, ScrapeWindow
from streams.settings import Settings
from streams.snapshot import RATE_WINDOW_S, build_snapshot
from streams.web_auth import token_middleware

logger = logging.getLogger(__name__)

# Time between two snapshots, and so between two dashboard updates, s.
SNAPSHOT_INTERVAL_S = 1.0

# Minimum time between two warnings about failed snapshots, s, because a failure repeats every second.
SNAPSHOT_WARNING_INTERVAL_S = 60.0

# How long a disconnected EventSource waits before it reconnects, ms (sent as "retry").
EVENTS_RETRY_MS = 2000

# How long stopping waits for open requests. Event streams end as soon as stopping begins.
SHUTDOWN_TIMEOUT_S = 5.0

# The dashboard's static files, with their content types.
ASSETS = {
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
}

# The page loads only its own script and style, and images only from data: URLs
# (the feed's thumbnails), so injected markup cannot load or send anything.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class MonitoringServer(Service):
    """Serves one worker's metrics and dashboard on ``settings.web_host:settings.web_port``."""

    def __init__(
        self,
        settings: Settings,
        metrics: WorkerMetrics,
        feed: MatchFeed,
        is_ready: Callable[[], bool],
    ) -> None:
        super().__init__()
        self.settings = settings
        self.metrics = metrics
        self.feed = feed
        self.is_ready = is_ready
        self.window = ScrapeWindow(RATE_WINDOW_S)
        self.snapshot_json = b"null"
        self.url: str | None = None
        self._runner: web.AppRunner | None = None
        self._assets: dict[str, bytes] = {}
        self._new_snapshot = asyncio.Condition()
        self._warnings = RateLimitedLog(SNAPSHOT_WARNING_INTERVAL_S)
        self._stopping = asyncio.Event()

    async def on_start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the monitoring server is already running")
        self._assets = {name: _read_asset(name) for name in ("index.html", *ASSETS)}
        self._take_snapshot()
        runner = web.AppRunner(self._build_app(), handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        host, port = self.settings.web_host, self.settings.web_port
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            await runner.cleanup()
            raise _listen_error(host, port, exc) from exc
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        self.url = f"http://{_url_host(bound_host)}:{bound_port}"
        self.add_future(self._snapshot_periodically())
        logger.info("web server started url=%s host=%s port=%s", self.url, bound_host, bound_port)

    async def on_stop(self) -> None:
        self._stopping.set()
        async with self._new_snapshot:
            self._new_snapshot.notify_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            logger.info("web server stopped url=%s", self.url)

    def _build_app(self) -> web.Application:
        token = self.settings.web_token
        app = web.Application(middlewares=[token_middleware(token.get_secret_value())] if token else [])
        app.router.add_get("/", self._page)
        app.router.add_get("/static/{name}", self._asset)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/api/snapshot", self._snapshot)
        app.router.add_get("/events", self._events)
        app.router.add_get("/healthz", self._health)
        return app

    # Snapshots

    def _take_snapshot(self) -> None:
        self.window.add(Scrape.from_families(self.metrics.registry.collect()))
        self.snapshot_json = orjson.dumps(build_snapshot(self.window))

    async def _snapshot_periodically(self) -> None:
        while not self._stopping.is_set():
            await asyncio.sleep(SNAPSHOT_INTERVAL_S)
            try:
                self._take_snapshot()
            except Exception as exc:  # a bad snapshot must not stop /metrics or the worker
                suppressed = self._warnings.allow("snapshot")
                if suppressed is not None:
                    logger.warning(
                        "building the dashboard snapshot failed: %s: %s (%d more failures not logged)",
                        type(exc).__name__, exc, suppressed,
                    )
                continue
            async with self._new_snapshot:
                self._new_snapshot.notify_all()

    # Routes

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self._assets["index.html"],
            content_type="text/html",
            charset="utf-8",
            headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"},
        )

    async def _asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in ASSETS:
            raise web.HTTPNotFound(text=f"no dashboard file {name!r}")
        return web.Response(
            body=self._assets[name], content_type=ASSETS[name], charset="utf-8", headers={"Cache-Control": "no-cache"}
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        # The content type carries a version and maybe an escaping scheme, which
        # aiohttp's content_type argument rejects, so it goes in as a header.
        return web.Response(body=encoder(self.metrics.registry), headers={"Content-Type": content_type})

    async def _snapshot(self, request: web.Request) -> web.Response:
        body = b'{"snapshot":' + self.snapshot_json + b',"feed":' + orjson.dumps(self.feed.since(0)) + b"}"
        return web.Response(body=body, content_type="application/json")

    async def _health(self, request: web.Request) -> web.Response:
        ready = self.is_ready()
        return web.Response(
            body=orjson.dumps({"ready": ready}), status=200 if ready else 503, content_type="application/json"
        )

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        sequence = _resume_after(request.headers.get("Last-Event-ID"), self.feed.last_sequence)
        logger.debug("event stream opened peer=%s after_sequence=%d", request.remote, sequence)
        try:
            await response.write(f"retry: {EVENTS_RETRY_MS}\n\n".encode())
            while not self._stopping.is_set():
                await response.write(_event("snapshot", self.snapshot_json))
                for entry in self.feed.since(sequence):
                    await response.write(_event("match", orjson.dumps(entry), entry.sequence))
                    sequence = entry.sequence
                async with self._new_snapshot:
                    with suppress(TimeoutError):
                        # The timeout keeps the stream alive if a snapshot fails.
                        await asyncio.wait_for(self._new_snapshot.wait(), SNAPSHOT_INTERVAL_S * 2)
        except ConnectionResetError:
            logger.debug("event stream closed by the client peer=%s", request.remote)
        return response


def _event(name: str, data: bytes, event_id: int | None = None) -> bytes:
    """Return one server-sent event, whose data is one line because orjson escapes newlines."""
    head = f"event: {name}\n" if event_id is None else f"event: {name}\nid: {event_id}\n"
    return head.encode() + b"data: " + data + b"\n\n"


def _resume_after(last_event_id: str | None, last_sequence: int) -> int:
    """Return the feed sequence a new event stream starts after.

    A fresh stream gets every kept match. A reconnecting one sends the id of the
    last match it received. An id above the feed's last one comes from before a
    worker restart, so that stream starts over too.
    """
    if last_event_id is None or not last_event_id.isdigit():
        return 0
    sequence = int(last_event_id)
    return sequence if sequence <= last_sequence else 0


def _listen_error(host: str, port: int, exc: OSError) -> ConfigError:
    if exc.errno == errno.EADDRINUSE:
        return ConfigError(
            f"the web server cannot listen on {host}:{port}: port {port} is already in use; set "
            f"EMBEDSTREAM_WEB_PORT (web_port) to a free port, or EMBEDSTREAM_WEB_ENABLED=false to run "
            f"without the web server"
        )
    return ConfigError(
        f"the web server cannot listen on {host}:{port}: {exc.strerror or exc}; check "
        f"EMBEDSTREAM_WEB_HOST (web_host) and EMBEDSTREAM_WEB_PORT (web_port)"
    )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _read_asset(name: str) -> bytes:
    return importlib.resources.files("streams.dashboard").joinpath(name).read_bytes()
