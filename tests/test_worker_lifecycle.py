"""Worker start-up checks and recovery: a dimension mismatch, and a kill in mid-stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import orjson
import pytest
import redis.asyncio as aioredis

from streams.devstack import StackEndpoints
from streams.index import SpaceIndex
from streams.settings import Settings, SpaceSettings
from streams.topics import create_topics
from tests.support import WorkerProcess, isolated_settings, send_records, stored_keys

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

FAST_JOIN = {"kafka_session_timeout_s": 2.0, "kafka_heartbeat_interval_s": 0.5}


def hash_space(dim: int = 16, **overrides: object) -> SpaceSettings:
    return SpaceSettings(name="hashed", model=f"hash:{dim}", min_similarity=0.99, **overrides)  # type: ignore[arg-type]


async def create_index(settings: Settings, space: SpaceSettings, dim: int) -> str:
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        index = SpaceIndex(client, settings.key_prefix, space.name, dim, space.metadata_fields, "another-model")
        await index.ensure()
    finally:
        await client.aclose()
    return index.name


def test_dimension_mismatch_stops_worker(
    stack: StackEndpoints, start_worker: Callable[..., WorkerProcess]
) -> None:
    space = hash_space(dim=16)
    settings = isolated_settings(stack, [space], **FAST_JOIN)
    index_name = asyncio.run(create_index(settings, space, dim=8))

    worker = start_worker(settings)
    status = worker.wait_exit(timeout_s=90)

    output = worker.log_text()
    assert status != 0, "the worker started on an index of another dimension"
    assert index_name in output
    assert "8-dimensional" in output
    assert "16-dimensional" in output
    assert "Traceback" not in output, "the error reached the user as a traceback"


def event_ids_in(keys: list[str]) -> set[str]:
    return {key.rsplit(":", 1)[1] for key in keys}


def test_worker_killed_mid_stream_loses_nothing(
    stack: StackEndpoints, start_worker: Callable[..., WorkerProcess]
) -> None:
    # Small batches make many commits, so the kill lands between stored and committed data.
    space = hash_space(max_batch_size=4, max_wait_ms=5)
    settings = isolated_settings(stack, [space], commit_interval_s=0.5, **FAST_JOIN)
    asyncio.run(create_topics(settings))
    total = 400
    ids = [f"event-{number:04d}" for number in range(total)]

    async def publish_steadily() -> None:
        for start in range(0, total, 20):
            chunk = [
                (event_id.encode(), orjson.dumps({"id": event_id, "text": f"message number {event_id}"}))
                for event_id in ids[start : start + 20]
            ]
            await send_records(settings, settings.topic_text, chunk)
            await asyncio.sleep(0.1)

    first = start_worker(settings, name="first")

    async def publish_and_kill() -> int:
        publishing = asyncio.create_task(publish_steadily())
        deadline = time.monotonic() + 90
        stored = 0
        while time.monotonic() < deadline:
            stored = len(await stored_keys(settings, space.name))
            if stored >= 40:
                break
            await asyncio.sleep(0.05)
        first.kill()
        await publishing
        return stored

    stored_at_kill = asyncio.run(publish_and_kill())
    assert stored_at_kill >= 40, f"the first worker stored only {stored_at_kill} vectors:\n{first.log_tail()}"
    assert stored_at_kill < total, "the kill came after every event was stored, so it proves nothing"

    second = start_worker(settings, name="second")

    async def all_stored() -> bool:
        return event_ids_in(await stored_keys(settings, space.name)) == set(ids)

    asyncio.run(second.wait_for(all_stored, 120, f"all {total} events after the restart"))
    assert len(asyncio.run(stored_keys(settings, space.name))) == total


def test_lost_index_created_again(stack: StackEndpoints, start_worker: Callable[..., WorkerProcess]) -> None:
    space = SpaceSettings(name="hashed", model="hash:16", modalities=("text",), min_similarity=-1.0)
    settings = isolated_settings(stack, [space], **FAST_JOIN)
    asyncio.run(create_topics(settings))
    worker = start_worker(settings)

    def events(prefix: str) -> list[tuple[bytes, bytes]]:
        return [
            (f"{prefix}{n}".encode(), orjson.dumps({"id": f"{prefix}{n}", "text": f"{prefix} {n}"})) for n in range(5)
        ]

    async def stored(count: int) -> bool:
        return len(await stored_keys(settings, space.name)) == count

    asyncio.run(send_records(settings, settings.topic_text, events("before")))
    asyncio.run(worker.wait_for(lambda: stored(5), 60, "the first events stored"))

    async def drop_index_and_documents() -> None:
        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            await client.execute_command("FT.DROPINDEX", f"{settings.key_prefix}:idx:{space.name}", "DD")
        finally:
            await client.aclose()

    # As after a restart of a Redis without persistence: no index and no documents.
    asyncio.run(drop_index_and_documents())
    asyncio.run(send_records(settings, settings.topic_text, events("after")))
    asyncio.run(worker.wait_for(lambda: stored(5), 60, "the later events stored after the index was lost"))
    assert "creating it again" in worker.log_text()
    assert worker.running
