"""The output topics for match events and dead-letter records."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from streams.deadletter import Rejection, deadletter_headers, deadletter_value


class Outputs(Protocol):
    """The two output topics; each send returns once the broker has the records."""

    async def send_matches(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Send (key, value) match events and wait until all are delivered."""

    async def send_deadletter(
        self, rejection: Rejection, key: bytes | None, value: bytes | None
    ) -> None:
        """Send a rejected record's original key and value with the reason in headers."""


class FaustOutputs:
    """Outputs sent through a Faust app's producer."""

    def __init__(self, matches_topic: object, deadletter_topic: object, max_deadletter_bytes: int) -> None:
        # faust.TopicT; typed loosely because faust ships no type stubs for its topics.
        self._matches = matches_topic
        self._deadletter = deadletter_topic
        self._max_deadletter_bytes = max_deadletter_bytes

    async def send_matches(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        # Queue every record first and then wait for all deliveries, so a batch's
        # events share the producer's batches instead of one round trip each.
        pending = [
            await self._matches.send(key=key, value=value)  # type: ignore[attr-defined]
            for key, value in records
        ]
        await asyncio.gather(*pending)

    async def send_deadletter(
        self, rejection: Rejection, key: bytes | None, value: bytes | None
    ) -> None:
        kept, size_headers = deadletter_value(value, self._max_deadletter_bytes)
        delivery = await self._deadletter.send(  # type: ignore[attr-defined]
            key=key, value=kept, headers=deadletter_headers(rejection) + size_headers
        )
        await delivery
