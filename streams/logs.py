"""Logging set-up for the entry points, and a rate limiter for repeated warnings."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

import orjson

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats each record as one JSON object: time, level, logger, message, extras, error."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRIBUTES and not name.startswith("_"):
                document[name] = value
        if record.exc_info:
            document["error"] = self.formatException(record.exc_info)
        return orjson.dumps(document, default=str).decode()


JsonFormatter.converter = time.gmtime


class RepeatFilter(logging.Filter):
    """Passes one record per logger and message template per interval, counting the rest.

    aiokafka logs a connection failure at ERROR on every reconnect attempt, over a
    thousand lines in a 20 s broker outage; this keeps one line per interval with
    the number held back.
    """

    def __init__(self, interval_s: float) -> None:
        super().__init__()
        self._limiter = RateLimitedLog(interval_s)

    def filter(self, record: logging.LogRecord) -> bool:
        suppressed = self._limiter.allow(f"{record.name}:{record.msg}")
        if suppressed is None:
            return False
        if suppressed:
            record.msg = f"{record.msg} ({suppressed} more like this held back)"
        return True


# Minimum seconds between two records of one template from the Kafka client library.
CLIENT_REPEAT_INTERVAL_S = 10.0


def configure_logging(level: str, log_format: Literal["text", "json"] = "text") -> None:
    """Send log records to standard error; called by entry points only, never on import."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(LOG_FORMAT))
    repeats = RepeatFilter(CLIENT_REPEAT_INTERVAL_S)
    handler.addFilter(lambda record: not record.name.startswith("aiokafka") or repeats.filter(record))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    for name in ("streams", "encoders"):
        logging.getLogger(name).setLevel(level)


class RateLimitedLog:
    """Lets a message of one kind through at most once per interval, and counts the rest.

    The count of suppressed messages is reported with the next one that passes, so
    a flood of bad input shows up in the log as one line per interval with a total.
    """

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, kind: str) -> int | None:
        """Return the number suppressed since the last one if ``kind`` may be logged, else None."""
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval_s:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return None
        self._last[kind] = now
        return self._suppressed.pop(kind, 0)
