"""Two workers in one consumer group split the partitions; nothing is lost or stored twice."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable

import orjson
import pytest

from streams.devstack import StackEndpoints
from streams.settings import SpaceSettings
from streams.topics import create_topics
from tests.support import WorkerProcess, isolated_settings, read_records, send_records, stored_keys, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

EVENTS = 400


def assigned_partitions(worker: WorkerProcess, topic: str) -> set[str]:
    """Return the partitions of ``topic`` named in the worker's latest assignment log line."""
    lines = re.findall(r"rebalance: partitions assigned group=\S+ partitions=(\S+)", worker.log_text())
    return {name for name in lines[-1].split(",") if name.startswith(f"{topic}[")} if lines else set()


def test_two_workers_split_partitions(stack: StackEndpoints, start_worker: Callable[..., WorkerProcess]) -> None:
    space = SpaceSettings(
        name="hashed", model="hash:16", modalities=("text",), min_similarity=-1.0, match_k=1, max_batch_size=8
    )
    settings = isolated_settings(
        stack, [space], topic_partitions=4, kafka_session_timeout_s=2.0, kafka_heartbeat_interval_s=0.5,
        log_level="DEBUG",
    )
    asyncio.run(create_topics(settings))
    first = start_worker(settings, name="first")
    second = start_worker(settings, name="second")

    async def split() -> bool:
        mine, theirs = assigned_partitions(first, settings.topic_text), assigned_partitions(second, settings.topic_text)
        return len(mine) == 2 and len(theirs) == 2 and not mine & theirs

    asyncio.run(wait_until(split, 90, "both workers holding two text partitions each"))

    ids = [f"scale-{number:04d}" for number in range(EVENTS)]
    records = [(event_id.encode(), orjson.dumps({"id": event_id, "text": f"text {event_id}"})) for event_id in ids]
    asyncio.run(send_records(settings, settings.topic_text, records))

    async def all_stored() -> bool:
        return len(await stored_keys(settings, space.name)) == EVENTS

    asyncio.run(first.wait_for(all_stored, 90, f"all {EVENTS} events stored"))
    keys = asyncio.run(stored_keys(settings, space.name))
    assert sorted(key.rsplit(":", 1)[1] for key in keys) == ids

    matches = asyncio.run(read_records(settings, settings.topic_matches, EVENTS, 30))
    sources = Counter(orjson.loads(record.value)["source"]["id"] for record in matches)
    assert len(sources) >= EVENTS - 1, "an event got no match search"
    repeated = {event_id: count for event_id, count in sources.items() if count > 1}
    assert not repeated, f"events processed twice without any failure: {repeated}"
    for worker in (first, second):
        assert "batch done lane=hashed/text" in worker.log_text(), "a worker embedded nothing"
        assert worker.running
