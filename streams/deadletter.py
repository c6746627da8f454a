"""Dead-letter records: a rejected input's original bytes, where it came from, and why.

The record value and key are the original ones, unchanged, so a fixed producer or
an operator can republish them as they are. The context travels in headers, in the
manner of Kafka Connect's dead-letter queues.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from streams.events import SourcePosition
from streams.logs import RateLimitedLog

logger = logging.getLogger(__name__)

HEADER_REASON = "embedstream.reason"
HEADER_DETAIL = "embedstream.detail"
HEADER_ID = "embedstream.id"
HEADER_SPACE = "embedstream.space"
HEADER_TOPIC = "embedstream.source.topic"
HEADER_PARTITION = "embedstream.source.partition"
HEADER_OFFSET = "embedstream.source.offset"
HEADER_REJECTED_AT = "embedstream.rejected_at"
HEADER_ORIGINAL_SIZE = "embedstream.original_size"

# Maximum detail text kept in a header, characters, because details quote input values, which can be large.
MAX_DETAIL_CHARS = 2000


@dataclass(frozen=True, slots=True)
class Rejection:
    """The reason for an input record's rejection and the record's position."""

    reason: str
    detail: str
    position: SourcePosition
    event_id: str | None = None
    space: str | None = None


def deadletter_headers(rejection: Rejection) -> list[tuple[str, bytes]]:
    """Return the Kafka headers that describe a rejection."""
    headers = [
        (HEADER_REASON, rejection.reason.encode()),
        (HEADER_DETAIL, rejection.detail[:MAX_DETAIL_CHARS].encode("utf-8", "replace")),
        (HEADER_TOPIC, rejection.position.topic.encode()),
        (HEADER_PARTITION, str(rejection.position.partition).encode()),
        (HEADER_OFFSET, str(rejection.position.offset).encode()),
        (HEADER_REJECTED_AT, f"{time.time():.3f}".encode()),
    ]
    if rejection.event_id is not None:
        headers.append((HEADER_ID, rejection.event_id.encode("utf-8", "replace")))
    if rejection.space is not None:
        headers.append((HEADER_SPACE, rejection.space.encode()))
    return headers


def deadletter_value(value: bytes | None, max_bytes: int) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """Return the value to send for a rejected record, cut to ``max_bytes``, and headers saying so.

    A record rejected for its size may be larger than the broker takes
    (message.max.bytes, 1 MiB by default in Apache Kafka); retrying it would stall
    the stream, so its dead-letter copy keeps only the first ``max_bytes`` bytes and
    states the original size.
    """
    if value is None or len(value) <= max_bytes:
        return value, []
    return value[:max_bytes], [(HEADER_ORIGINAL_SIZE, str(len(value)).encode())]


def parse_deadletter_headers(headers: list[tuple[str, bytes]] | None) -> dict[str, str]:
    """Return the embedstream headers of a dead-letter record as text, without the prefix."""
    prefix = "embedstream."
    return {
        name[len(prefix):]: value.decode("utf-8", "replace")
        for name, value in headers or []
        if name.startswith(prefix)
    }


class RejectionLog:
    """Logs one WARNING per rejection reason per interval, with the id and the position."""

    def __init__(self, interval_s: float) -> None:
        self._limiter = RateLimitedLog(interval_s)

    def warn(self, rejection: Rejection) -> None:
        suppressed = self._limiter.allow(rejection.reason)
        if suppressed is None:
            return
        logger.warning(
            "rejected input to the dead-letter topic: reason=%s id=%s position=%s space=%s "
            "detail=%s (%d more with this reason since the last warning)",
            rejection.reason, rejection.event_id, rejection.position, rejection.space,
            rejection.detail, suppressed,
        )
