"""Retrying an operation that must not be skipped, with capped exponential backoff."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka.errors import KafkaError
from faust.exceptions import ProducerSendError
from redis.exceptions import RedisError

from streams.metrics import WorkerMetrics

logger = logging.getLogger(__name__)

ResultT = TypeVar("ResultT")

# Failures of a server or the network, which pass. Anything else is a bug that a
# retry would repeat forever, so it propagates and stops the worker (see Pipeline).
RETRIED_ERRORS: tuple[type[BaseException], ...] = (
    RedisError, KafkaError, ProducerSendError, OSError, TimeoutError
)

# First pause after a failure; each further failure doubles it up to the cap.
INITIAL_BACKOFF_S = 0.1


class Retrier:
    """Runs operations until they succeed, pausing between failures and logging each retry.

    Stored data and offsets depend on these operations, so giving up would lose
    input: the caller stalls instead, which stops new batches and, through the
    bounded batch buffers, stops the stream from taking more records.
    Cancellation (worker shutdown) ends the retries.
    """

    def __init__(self, max_backoff_s: float, metrics: WorkerMetrics) -> None:
        self.max_backoff_s = max_backoff_s
        self.metrics = metrics

    async def run(self, operation: Callable[[], Awaitable[ResultT]], name: str, what: str) -> ResultT:
        """Run ``operation`` until it succeeds; ``name`` labels the retry metric, ``what`` the log."""
        backoff = INITIAL_BACKOFF_S
        attempt = 1
        while True:
            try:
                return await operation()
            except asyncio.CancelledError:
                raise
            except RETRIED_ERRORS as exc:
                self.metrics.retries.labels(name).inc()
                logger.warning(
                    "%s failed (attempt %d), retrying in %.1f s: %s: %s",
                    what, attempt, backoff, type(exc).__name__, exc,
                )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)
            attempt += 1
