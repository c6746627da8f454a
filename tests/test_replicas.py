"""Model replicas: several forward passes of one space at once, with batches still emitted in order."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis
import torch

from encoders.base import Encoder
from encoders.hashing import HashEncoder
from encoders.modality import Modality
from streams.deadletter import Rejection, RejectionLog
from streams.devstack import StackEndpoints
from streams.events import InputEvent, SourcePosition
from streams.feed import MatchFeed
from streams.index import FIELD_VECTOR, SpaceIndex
from streams.lane import Lane
from streams.metrics import WorkerMetrics
from streams.pending import PendingEvent
from streams.retry import Retrier
from streams.settings import SpaceSettings
from streams.sink import vector_bytes
from streams.space import Space

DIM = 16
# Seconds a barrier waits for the second forward pass; only a broken test takes this long.
BARRIER_TIMEOUT_S = 5.0


class BarrierEncoder(HashEncoder):
    """A hash encoder whose forward pass waits until another one is running as well."""

    def __init__(self, barrier: threading.Barrier) -> None:
        super().__init__(DIM)
        self.barrier = barrier

    def _embed(self, modality: Modality, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        self.barrier.wait()
        return super()._embed(modality, tensors)


@dataclass
class RecordedOutputs:
    """Outputs that keep what the lane sends to them."""

    matches: list[tuple[bytes, bytes]] = field(default_factory=list)
    deadletters: list[Rejection] = field(default_factory=list)

    async def send_matches(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        self.matches.extend(records)

    async def send_deadletter(self, rejection: Rejection, key: bytes | None, value: bytes | None) -> None:
        self.deadletters.append(rejection)


@pytest.fixture
async def index(stack: StackEndpoints) -> AsyncIterator[SpaceIndex]:
    client = aioredis.Redis.from_url(stack.redis_url)
    index = SpaceIndex(client, f"replicas{uuid.uuid4().hex[:8]}", "hashed", DIM, (), "hash:16")
    await index.ensure()
    try:
        yield index
    finally:
        await client.aclose()


def space_of(index: SpaceIndex, encoders: Sequence[Encoder]) -> Space:
    settings = SpaceSettings(name="hashed", model="hash:16", max_batch_size=1, max_wait_ms=0)
    return Space(settings, encoders, index, frozenset({Modality.TEXT}))


async def test_two_replicas_run_forwards_together(index: SpaceIndex) -> None:
    barrier = threading.Barrier(2, timeout=BARRIER_TIMEOUT_S)
    space = space_of(index, [BarrierEncoder(barrier), BarrierEncoder(barrier)])
    try:
        first, _ = await space.preprocess(Modality.TEXT, ["first"])
        second, _ = await space.preprocess(Modality.TEXT, ["second"])
        results = await asyncio.gather(space.forward(first), space.forward(second))
    finally:
        space.close()

    assert [vectors.shape for vectors, _ in results] == [(1, DIM), (1, DIM)]


async def test_one_replica_runs_one_forward_at_a_time(index: SpaceIndex) -> None:
    barrier = threading.Barrier(2, timeout=1.0)
    space = space_of(index, [BarrierEncoder(barrier)])
    try:
        prepared, _ = await space.preprocess(Modality.TEXT, ["alone"])
        with pytest.raises(threading.BrokenBarrierError):
            await space.forward(prepared)
    finally:
        space.close()


def pending_text(event_id: str, text: str, offset: int, finished: list[str], done: asyncio.Event) -> PendingEvent:
    def on_done() -> None:
        finished.append(text)
        done.set()

    event = InputEvent(event_id, Modality.TEXT, text, SourcePosition("embed.text", 0, offset), time.time())
    return PendingEvent(
        event, text, None, None, remaining=1, on_done=on_done, record_time=time.time(), admitted_at=time.monotonic()
    )


async def test_later_batch_waits_for_slower_replica(index: SpaceIndex) -> None:
    # The first batch takes the slow replica and the second the fast one, so the
    # second forward pass ends first. The lane must still store and finish in order.
    slow = HashEncoder.from_name(f"hash:{DIM}?delay_ms=500")
    fast = HashEncoder.from_name(f"hash:{DIM}")
    expected = vector_bytes(fast.encode(Modality.TEXT, ["second version"])[0])
    space = space_of(index, [slow, fast])
    outputs = RecordedOutputs()
    metrics = WorkerMetrics()
    lane = Lane(space, Modality.TEXT, outputs, RejectionLog(60.0), Retrier(1.0, metrics), metrics, MatchFeed())
    finished: list[str] = []
    second_done = asyncio.Event()
    running = asyncio.create_task(lane.run())
    try:
        await lane.put(pending_text("same-id", "first version", 0, finished, asyncio.Event()))
        await lane.put(pending_text("same-id", "second version", 1, finished, second_done))
        async with asyncio.timeout(10):
            await second_done.wait()
        stored = await index.client.hget(index.key(Modality.TEXT, "same-id"), FIELD_VECTOR)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        space.close()

    assert finished == ["first version", "second version"]
    assert outputs.deadletters == []
    assert stored == expected
