"""Micro-batching: gather inputs into batches up to a size, a cost or a wait, whichever comes first."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

ItemT = TypeVar("ItemT")


class MicroBatcher(Generic[ItemT]):
    """A bounded first-in-first-out buffer that hands out batches.

    ``put`` waits while ``max_pending`` items are buffered, which pushes back on the
    producer of items (the Kafka stream) instead of buffering without bound.
    ``next_batch`` waits for a first item, then up to ``max_wait_s`` for the batch to
    fill to ``max_size`` items or ``max_cost`` (tokens, pixels or seconds, as ``cost``
    measures them), so one huge input cannot blow a batch's memory or latency.

    With ``sort_key``, a batch is cut from the oldest ``sort_window`` items sorted by
    that key (text length), which cuts padding. The oldest item is always in the
    batch, so nothing waits longer than the window takes to drain. One consumer is
    expected per batcher.
    """

    def __init__(
        self,
        max_size: int,
        max_wait_s: float,
        max_pending: int | None = None,
        *,
        cost: Callable[[ItemT], float] | None = None,
        max_cost: float | None = None,
        sort_key: Callable[[ItemT], float] | None = None,
        sort_window: int | None = None,
    ) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must not be negative, got {max_wait_s}")
        if max_cost is not None and max_cost <= 0:
            raise ValueError(f"max_cost must be positive, got {max_cost}")
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        # Two full batches: one being filled while the previous one is processed.
        self.max_pending = max_pending if max_pending is not None else 2 * max_size
        if self.max_pending < max_size:
            raise ValueError(f"max_pending ({self.max_pending}) must be at least max_size ({max_size})")
        self.cost = cost if cost is not None else (lambda item: 1.0)
        self.max_cost = max_cost
        self.sort_key = sort_key
        # Four batches' worth: enough to group by length, and the oldest item is always in the next batch.
        self.sort_window = sort_window if sort_window is not None else 4 * max_size
        self._items: deque[tuple[ItemT, float]] = deque()
        self._pending_cost = 0.0
        self._added = asyncio.Event()
        self._removed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: ItemT) -> None:
        """Append ``item``, waiting while the buffer is full."""
        while len(self._items) >= self.max_pending:
            self._removed.clear()
            await self._removed.wait()
        item_cost = self.cost(item)
        self._items.append((item, item_cost))
        self._pending_cost += item_cost
        self._added.set()

    def _full(self) -> bool:
        if len(self._items) >= self.max_size:
            return True
        return self.max_cost is not None and self._pending_cost >= self.max_cost

    async def next_batch(self) -> list[ItemT]:
        """Return the next batch once it is full or ``max_wait_s`` after its first item arrived."""
        while not self._items:
            self._added.clear()
            await self._added.wait()
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        while not self._full():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            self._added.clear()
            try:
                await asyncio.wait_for(self._added.wait(), timeout=remaining)
            except TimeoutError:
                break
        chosen = self._choose()
        batch = [self._items[position][0] for position in chosen]
        for position in sorted(chosen, reverse=True):
            self._pending_cost -= self._items[position][1]
            del self._items[position]
        if not self._items:
            self._pending_cost = 0.0  # Drop float rounding left over from the sums.
        self._removed.set()
        return batch

    def _choose(self) -> list[int]:
        """Return the buffer positions of the next batch, the oldest item always first."""
        window = min(len(self._items), self.sort_window if self.sort_key is not None else self.max_size)
        candidates = list(range(window))
        if self.sort_key is not None and window > self.max_size:
            key = self.sort_key
            keys = {position: key(self._items[position][0]) for position in candidates}
            by_key = sorted(candidates, key=keys.__getitem__)
            # The batch is the run of max_size neighbours in key order that contains the oldest
            # item and spans the narrowest range of keys.
            oldest_rank = by_key.index(0)
            starts = range(max(0, oldest_rank - self.max_size + 1), min(oldest_rank, window - self.max_size) + 1)
            start = min(starts, key=lambda first: keys[by_key[first + self.max_size - 1]] - keys[by_key[first]])
            candidates = [0] + [p for p in by_key[start : start + self.max_size] if p != 0]
        chosen: list[int] = []
        total = 0.0
        for position in candidates[: self.max_size]:
            item_cost = self._items[position][1]
            if chosen and self.max_cost is not None and total + item_cost > self.max_cost:
                break
            chosen.append(position)
            total += item_cost
        return chosen
