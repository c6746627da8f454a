"""``embedstream top``: a worker's figures in the terminal, read from its /metrics endpoint."""

from __future__ import annotations

import sys
import time
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit, urlunsplit
from urllib.request import Request, urlopen

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.live import Live

from streams.scrapes import Scrape, ScrapeWindow
from streams.snapshot import RATE_WINDOW_S, build_snapshot
from streams.top_view import render_view

EXIT_UNREACHABLE = 1

# Maximum wait for one /metrics response, s. A worker responds within milliseconds.
FETCH_TIMEOUT_S = 5.0

# Every worker metric starts with this, so a page without it is not a worker's.
METRIC_PREFIX = "embedstream_"


def metrics_url(url: str) -> str:
    """Return the /metrics URL of a worker given by its base URL or its metrics URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"invalid --url {url!r}: expected http://HOST:PORT, such as http://127.0.0.1:6066")
    path = parts.path.rstrip("/")
    if not path.endswith("/metrics"):
        path += "/metrics"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def read_metrics(url: str, timeout_s: float = FETCH_TIMEOUT_S, token: str | None = None) -> Scrape:
    """Fetch and parse a worker's metrics. Raise OSError or ValueError when that fails."""
    # The classic text format, which every prometheus_client version serves and parses.
    headers = {"Accept": "text/plain;version=0.0.4"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = Request(url, headers=headers)
    with urlopen(request, timeout=timeout_s) as response:
        text = response.read().decode("utf-8")
    families = list(text_string_to_metric_families(text))
    if not any(family.name.startswith(METRIC_PREFIX) for family in families):
        raise ValueError(f"the response has no {METRIC_PREFIX}* metrics; is this an embedstream worker?")
    return Scrape.from_families(families)


def failure_reason(exc: Exception) -> str:
    """Return why a read failed, in one line."""
    if isinstance(exc, HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


def run_top(url: str, interval_s: float, console: Console | None = None, token: str | None = None) -> int:
    """Show a worker's figures, refreshed every ``interval_s``, until interrupted, and return the exit status.

    An unreachable endpoint at start is an error. Once running, a failed read is
    shown on screen and retried at the next refresh, so a restarting worker does
    not end the display.
    """
    if interval_s <= 0:
        raise ValueError(f"invalid --interval {interval_s}: it must be positive")
    target = metrics_url(url)
    window = ScrapeWindow(RATE_WINDOW_S)
    try:
        window.add(read_metrics(target, token=token))
    except (OSError, ValueError) as exc:
        print(f"embedstream top: cannot read metrics from {target}: {failure_reason(exc)}", file=sys.stderr)
        return EXIT_UNREACHABLE

    error: str | None = None
    view = render_view(build_snapshot(window), target, interval_s, error)
    try:
        with Live(view, console=console or Console(), auto_refresh=False) as live:
            while True:
                time.sleep(interval_s)
                try:
                    window.add(read_metrics(target, token=token))
                    error = None
                except (OSError, ValueError) as exc:
                    error = failure_reason(exc)
                live.update(render_view(build_snapshot(window), target, interval_s, error), refresh=True)
    except KeyboardInterrupt:
        return 0
