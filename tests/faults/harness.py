"""What the fault tests share: the fault space, a publisher that records positions, waits, logs."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from encoders.modality import Modality
from streams.settings import Settings, SpaceSettings
from tests.support import WorkerProcess, stored_keys

SPACE_NAME = "faults"

# Settings every fault test's worker uses: quick group joins (see streams.devstack),
# frequent commits so that a fault lands between stored and committed records, and
# DEBUG logs, whose per-batch lines the tests read.
WORKER_SETTINGS: dict[str, object] = {
    "kafka_session_timeout_s": 2.0,
    "kafka_heartbeat_interval_s": 0.5,
    "commit_interval_s": 0.5,
    "log_level": "DEBUG",
    "store_previews": False,
}

# Interval of the polls that watch Redis and the worker log, s. Short, because the
# kill test must notice a new batch within a fraction of its forward pass.
POLL_INTERVAL_S = 0.02

# Log lines of one batch: the hash encoder with fault options logs the start and the
# end of each forward pass, and the lane logs the end of the whole batch.
FORWARD_STARTED = re.compile(r"hash forward started model=\S+ batch=(\d+)")
FORWARD_FINISHED = re.compile(r"hash forward finished model=\S+ batch=(\d+)")
BATCH_DONE = re.compile(r"batch done lane=\S+ size=(\d+)")
RETRY = re.compile(
    r"streams\.retry: (?P<what>.+?) failed \(attempt (?P<attempt>\d+)\), retrying in (?P<backoff>[\d.]+) s"
)


def fault_space(options: str, **overrides: object) -> SpaceSettings:
    """Return a text-only hash space with fault ``options`` that matches every pair of items.

    A space of one modality searches that modality, and a min_similarity of -1 accepts
    any neighbour, so every item stored after another one gets a match event.
    """
    values: dict[str, object] = {
        "name": SPACE_NAME,
        "model": f"hash:16?{options}" if options else "hash:16",
        "modalities": (Modality.TEXT,),
        "min_similarity": -1.0,
        "max_batch_size": 8,
        "max_wait_ms": 20.0,
    }
    values.update(overrides)
    return SpaceSettings(**values)  # type: ignore[arg-type]


def event_ids(label: str, count: int) -> list[str]:
    return [f"{label}-{number:04d}" for number in range(count)]


def text_record(event_id: str) -> tuple[bytes, bytes]:
    return event_id.encode(), orjson.dumps({"id": event_id, "text": f"fault test event {event_id}"})


@dataclass
class Publisher:
    """Publishes text events and records the (partition, offset) of each."""

    settings: Settings
    positions: dict[tuple[int, int], str] = field(default_factory=dict)
    _producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> Publisher:
        self._producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_broker, acks="all")
        await self._producer.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def publish(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Send records to the text topic and wait until the broker has them all."""
        assert self._producer is not None, "use Publisher as an async context manager"
        deliveries = [
            await self._producer.send(self.settings.topic_text, value, key=key) for key, value in records
        ]
        for (key, _), delivery in zip(records, deliveries, strict=True):
            metadata = await delivery
            self.positions[(metadata.partition, metadata.offset)] = key.decode()

    async def publish_steadily(self, ids: Sequence[str], chunk: int, pause_s: float) -> None:
        """Publish ``ids`` in chunks of ``chunk``, pausing ``pause_s`` after each."""
        for start in range(0, len(ids), chunk):
            await self.publish([text_record(event_id) for event_id in ids[start : start + chunk]])
            await asyncio.sleep(pause_s)

    def end_offsets(self) -> dict[int, int]:
        """Return the next offset of each partition published to, by this publisher's records."""
        ends: dict[int, int] = {}
        for partition, offset in self.positions:
            ends[partition] = max(ends.get(partition, 0), offset + 1)
        return ends


async def stored_ids(settings: Settings) -> set[str]:
    """Return the ids of every vector stored in the fault space."""
    return {key.split(":", 3)[3] for key in await stored_keys(settings, SPACE_NAME)}


async def committed_offsets(settings: Settings) -> dict[int, int]:
    """Return the worker group's committed offset of each text-topic partition that has one."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_broker, client_id="fault-test-admin")
    await admin.start()
    # The partitions are listed because aiokafka 0.14 fails to decode Tansu 0.6's
    # response to an OffsetFetch for all of a group's partitions (a null list).
    partitions = [TopicPartition(settings.topic_text, number) for number in range(settings.topic_partitions)]
    try:
        offsets = await admin.list_consumer_group_offsets(settings.app_id, partitions=partitions)
    finally:
        await admin.close()
    return {
        tp.partition: meta.offset
        for tp, meta in offsets.items()
        if isinstance(tp, TopicPartition) and tp.topic == settings.topic_text and meta.offset >= 0
    }


async def wait_stored(worker: WorkerProcess, settings: Settings, count: int, timeout_s: float) -> float:
    """Wait until at least ``count`` vectors are stored; return the seconds it took."""
    started = time.monotonic()

    async def enough() -> bool:
        return len(await stored_ids(settings)) >= count

    await worker.wait_for(enough, timeout_s, f"{count} stored vectors")
    return time.monotonic() - started


async def wait_progress(worker: WorkerProcess, settings: Settings, timeout_s: float) -> float:
    """Wait until one more vector is stored than now; return the seconds it took."""
    before = len(await stored_ids(settings))
    return await wait_stored(worker, settings, before + 1, timeout_s)


def count_matches(pattern: re.Pattern[str], text: str) -> int:
    return sum(1 for _ in pattern.finditer(text))


def assigned_partitions(log_text: str, topic: str) -> set[int]:
    """Return the partitions of ``topic`` in the last rebalance assignment a worker logged."""
    assignments = re.findall(r"rebalance: partitions assigned group=\S+ partitions=(\S+)", log_text)
    if not assignments:
        return set()
    return {int(number) for number in re.findall(rf"{re.escape(topic)}\[(\d+)\]", assignments[-1])}


def ids_below(positions: dict[tuple[int, int], str], offsets: dict[int, int]) -> set[str]:
    """Return the ids published at offsets below ``offsets`` (partition -> committed offset)."""
    return {event_id for (partition, offset), event_id in positions.items() if offset < offsets.get(partition, 0)}


async def wait_committed(worker: WorkerProcess, settings: Settings, publisher: Publisher, timeout_s: float) -> None:
    """Wait until the worker's group has committed every record the publisher sent."""
    expected = publisher.end_offsets()

    async def caught_up() -> bool:
        return await committed_offsets(settings) == expected

    await worker.wait_for(caught_up, timeout_s, f"committed offsets {expected}")
