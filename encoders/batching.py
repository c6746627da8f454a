"""Micro-batching: gather inputs into batches up to a size or a wait, whichever comes first."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

ItemT = TypeVar("ItemT")


class MicroBatcher(Generic[ItemT]):
    """A bounded first-in-first-out buffer that hands out batches.

    ``put`` waits while ``max_pending`` items are buffered, which pushes back on the
    producer of items (the Kafka stream) instead of buffering without bound.
    ``next_batch`` waits for a first item, then up to ``max_wait_s`` for the batch to
    fill to ``max_size``. One consumer is expected per batcher.
    """

    def __init__(self, max_size: int, max_wait_s: float, max_pending: int | None = None) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must not be negative, got {max_wait_s}")
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        # Two full batches: one being filled while the previous one is processed.
        self.max_pending = max_pending if max_pending is not None else 2 * max_size
        if self.max_pending < max_size:
            raise ValueError(
                f"max_pending ({self.max_pending}) must be at least max_size ({max_size})"
            )
        self._items: deque[ItemT] = deque()
        self._added = asyncio.Event()
        self._removed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: ItemT) -> None:
        """Append ``item``, waiting while the buffer is full."""
        while len(self._items) >= self.max_pending:
            self._removed.clear()
            await self._removed.wait()
        self._items.append(item)
        self._added.set()

    async def next_batch(self) -> list[ItemT]:
        """Return the oldest items, at most ``max_size``, once full or after ``max_wait_s``."""
        while not self._items:
            self._added.clear()
            await self._added.wait()
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        while len(self._items) < self.max_size:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            self._added.clear()
            try:
                await asyncio.wait_for(self._added.wait(), timeout=remaining)
            except TimeoutError:
                break
        count = min(self.max_size, len(self._items))
        batch = [self._items.popleft() for _ in range(count)]
        self._removed.set()
        return batch
