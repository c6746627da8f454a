"""Retrying an operation that must not be skipped, with capped exponential backoff."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

logger = logging.getLogger(__name__)

ResultT = TypeVar("ResultT")

# First pause after a failure; each further failure doubles it up to the cap.
INITIAL_BACKOFF_S = 0.1


async def retry_until_done(
    operation: Callable[[], Awaitable[ResultT]],
    what: str,
    max_backoff_s: float,
) -> ResultT:
    """Run ``operation`` until it succeeds, pausing between failures; log each retry.

    Stored data and offsets depend on the operation, so giving up would lose
    input: the caller stalls instead, which stops new batches and, through the
    bounded batch buffers, stops the stream from taking more records.
    Cancellation (worker shutdown) ends the retries.
    """
    backoff = INITIAL_BACKOFF_S
    attempt = 1
    while True:
        try:
            return await operation()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning(
                "%s failed (attempt %d), retrying in %.1f s: %s: %s",
                what, attempt, backoff, type(exc).__name__, exc,
            )
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, max_backoff_s)
        attempt += 1
