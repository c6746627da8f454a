"""A worker on the embedded stack under a stream of hostile records: nothing lost, nothing stalls, memory flat.

One worker runs two spaces: ``hash`` (the hash:16 fake encoder, all three modalities)
and ``clip`` (the tiny CLIP, text and image). Each round publishes the same few hundred
Hypothesis-generated records, each under a Kafka key of its own, then one good
sentinel record per topic. Every record must end up either stored in a space or
dead-lettered for it, never both and never neither.
"""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import pytest
import soundfile
from aiokafka import AIOKafkaConsumer
from PIL import Image

from encoders.modality import Modality
from streams.deadletter import parse_deadletter_headers
from streams.devstack import StackEndpoints
from streams.index import FIELD_ID, as_text
from streams.settings import Settings, SpaceSettings
from streams.topics import create_topics
from tests.fuzz.strategies import HostileRecord, collect_examples, hostile_records
from tests.support import WorkerProcess, isolated_settings, redis_client, send_records

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

# Hostile records per topic and round: a few hundred in all.
RECORDS_PER_TOPIC = {Modality.TEXT: 150, Modality.IMAGE: 80, Modality.AUDIO: 80}
# Seconds a round may take to be fully embedded or dead-lettered.
ROUND_WAIT_S = 60.0
# Maximum growth of the worker's resident memory from the first round to the second.
MAX_RSS_GROWTH = 0.10

SPACE_MODALITIES = {
    "hash": frozenset({Modality.TEXT, Modality.IMAGE, Modality.AUDIO}),
    "clip": frozenset({Modality.TEXT, Modality.IMAGE}),
}

# Each record's id and key start with "r<round>n<number><t|i|a>.", so that a stored id
# or a dead-letter key names the record it came from.
PREFIX = re.compile(r"^r\d+n\d+[tia]\.")


@dataclass
class Published:
    """The records of one round, by prefix, and their modalities."""

    modalities: dict[str, Modality] = field(default_factory=dict)
    sentinels: dict[Modality, str] = field(default_factory=dict)


@dataclass
class Outcome:
    """What became of the records: stored ids per space, dead-letter records per (prefix, space)."""

    stored: dict[str, set[str]]
    deadletters: Counter[tuple[str, str | None]]
    reasons: Counter[str]


def hostile_corpus() -> dict[Modality, list[HostileRecord]]:
    return {
        modality: [record for record in collect_examples(hostile_records(modality), count)
                   if isinstance(record, HostileRecord)]
        for modality, count in RECORDS_PER_TOPIC.items()
    }


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), (200, 30, 60)).save(buffer, "PNG")
    return buffer.getvalue()


def wav_bytes() -> bytes:
    buffer = io.BytesIO()
    times = np.arange(8_000) / 16_000
    soundfile.write(buffer, (0.3 * np.sin(2 * np.pi * 440 * times)).astype(np.float32), 16_000, format="WAV")
    return buffer.getvalue()


def sentinel(modality: Modality, event_id: str) -> tuple[bytes, bytes]:
    if modality is Modality.TEXT:
        return event_id.encode(), orjson.dumps({"id": event_id, "text": "A sentinel after the hostile records."})
    return event_id.encode(), png_bytes() if modality is Modality.IMAGE else wav_bytes()


async def publish_round(
    settings: Settings, corpus: dict[Modality, list[HostileRecord]], round_number: int
) -> Published:
    published = Published()
    for modality, records in corpus.items():
        batch: list[tuple[bytes | None, bytes | None]] = []
        for number, record in enumerate(records):
            prefix = f"r{round_number}n{number:04d}{modality.value[0]}."
            batch.append(record.render_keyed(prefix))
            published.modalities[prefix] = modality
        sentinel_id = f"r{round_number}n9999{modality.value[0]}.sentinel"
        batch.append(sentinel(modality, sentinel_id))
        published.modalities[f"r{round_number}n9999{modality.value[0]}."] = modality
        published.sentinels[modality] = sentinel_id
        await send_records(settings, settings.input_topic(modality), batch)
    return published


def record_prefix(text: str) -> str | None:
    match = PREFIX.match(text)
    return match.group(0) if match else None


async def stored_ids(settings: Settings) -> dict[str, set[str]]:
    """Return the ids stored per space, read from each hash's id field."""
    client = redis_client(settings)
    stored: dict[str, set[str]] = {}
    try:
        for space in SPACE_MODALITIES:
            keys = [key async for key in client.scan_iter(match=f"{settings.key_prefix}:{space}:*", count=1000)]
            async with client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hget(key, FIELD_ID)
                values = await pipe.execute()
            stored[space] = {as_text(value) for value in values if value is not None}
    finally:
        await client.aclose()
    return stored


class DeadLetterReader:
    """Reads the dead-letter topic from the start and keeps everything read so far."""

    def __init__(self, settings: Settings) -> None:
        self.consumer = AIOKafkaConsumer(
            settings.topic_deadletter, bootstrap_servers=settings.kafka_broker, group_id=None,
            auto_offset_reset="earliest",
        )
        self.records: list[tuple[bytes | None, dict[str, str]]] = []

    async def __aenter__(self) -> DeadLetterReader:
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.consumer.stop()

    async def poll(self) -> None:
        batches = await self.consumer.getmany(timeout_ms=200)
        for partition_records in batches.values():
            for record in partition_records:
                self.records.append((record.key, parse_deadletter_headers(list(record.headers))))


async def outcome(settings: Settings, reader: DeadLetterReader) -> Outcome:
    await reader.poll()
    deadletters: Counter[tuple[str, str | None]] = Counter()
    reasons: Counter[str] = Counter()
    for key, headers in reader.records:
        prefix = record_prefix(key.decode("utf-8", "replace")) if key else None
        assert prefix is not None, f"dead-letter record with a key no record was published with: {key!r}"
        deadletters[(prefix, headers.get("space"))] += 1
        reasons[headers["reason"]] += 1
    return Outcome(await stored_ids(settings), deadletters, reasons)


def unaccounted(published: Published, result: Outcome) -> dict[str, list[str]]:
    """Return, per space, the records of this round that are neither stored nor dead-lettered."""
    missing: dict[str, list[str]] = {}
    for space, modalities in SPACE_MODALITIES.items():
        stored_prefixes = {record_prefix(event_id) for event_id in result.stored[space]}
        for prefix, modality in published.modalities.items():
            if modality not in modalities or prefix in stored_prefixes:
                continue
            if result.deadletters[(prefix, None)] + result.deadletters[(prefix, space)] == 0:
                missing.setdefault(space, []).append(prefix)
    return missing


def check_accounting(published: Published, result: Outcome) -> None:
    """Assert that each record of the round was stored or dead-lettered exactly once per space."""
    for space, modalities in SPACE_MODALITIES.items():
        expected = {prefix for prefix, modality in published.modalities.items() if modality in modalities}
        stored = Counter(record_prefix(event_id) for event_id in result.stored[space])
        stored_here = {prefix: count for prefix, count in stored.items() if prefix in expected}
        twice = [prefix for prefix, count in stored_here.items() if count > 1]
        assert not twice, f"space {space}: records stored under two ids: {twice[:10]}"
        lettered = {
            prefix: result.deadletters[(prefix, None)] + result.deadletters[(prefix, space)] for prefix in expected
        }
        both = sorted(prefix for prefix in stored_here if lettered[prefix])
        assert not both, f"space {space}: records both stored and dead-lettered: {both[:10]}"
        repeated = sorted(prefix for prefix, count in lettered.items() if count > 1)
        assert not repeated, f"space {space}: records dead-lettered more than once: {repeated[:10]}"
        total = len(stored_here) + sum(lettered.values())
        assert total == len(expected), f"space {space}: {total} records accounted for, {len(expected)} published"


def resident_kib(worker: WorkerProcess) -> int:
    assert worker.process is not None
    status = Path(f"/proc/{worker.process.pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match, f"no VmRSS in /proc/{worker.process.pid}/status"
    return int(match.group(1))


async def run_round(
    worker: WorkerProcess, settings: Settings, reader: DeadLetterReader,
    corpus: dict[Modality, list[HostileRecord]], round_number: int,
) -> Outcome:
    published = await publish_round(settings, corpus, round_number)
    result: Outcome | None = None

    async def settled() -> bool:
        nonlocal result
        result = await outcome(settings, reader)
        return not unaccounted(published, result)

    try:
        await worker.wait_for(settled, ROUND_WAIT_S, f"round {round_number} to be stored or dead-lettered")
    except AssertionError:
        missing = unaccounted(published, result) if result else {}
        raise AssertionError(f"round {round_number}: unaccounted records per space: "
                             f"{ {space: prefixes[:10] for space, prefixes in missing.items()} }") from None
    assert result is not None
    check_accounting(published, result)
    for modality, sentinel_id in published.sentinels.items():
        for space, modalities in SPACE_MODALITIES.items():
            if modality in modalities:
                assert sentinel_id in result.stored[space], f"sentinel {sentinel_id} not stored in space {space}"
    return result


@pytest.fixture
def settings(stack: StackEndpoints, tiny_clip_dir: Path) -> Settings:
    spaces = (
        SpaceSettings(name="hash", model="hash:16", family="hash", max_wait_ms=20),
        SpaceSettings(name="clip", model=str(tiny_clip_dir), max_wait_ms=20),
    )
    return isolated_settings(
        stack, spaces,
        kafka_session_timeout_s=2.0,
        kafka_heartbeat_interval_s=0.5,
        max_record_bytes=256 * 1024,
        warning_interval_s=5.0,
        log_level="DEBUG",
    )


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    asyncio.run(create_topics(settings))
    process = WorkerProcess(settings, tmp_path / "worker.log").start()
    yield process
    process.stop()


def test_worker_survives_hostile_stream(worker: WorkerProcess, settings: Settings) -> None:
    corpus = hostile_corpus()
    assert sum(len(records) for records in corpus.values()) >= 200

    async def rounds() -> tuple[int, Outcome, int]:
        async with DeadLetterReader(settings) as reader:
            started = time.monotonic()
            await run_round(worker, settings, reader, corpus, 1)
            after_first = resident_kib(worker)
            second = await run_round(worker, settings, reader, corpus, 2)
            after_second = resident_kib(worker)
            print(f"two rounds took {time.monotonic() - started:.1f} s; VmRSS {after_first} -> {after_second} kB")
            return after_first, second, after_second

    after_first, second, after_second = asyncio.run(rounds())

    assert worker.running, f"the worker exited:\n{worker.log_tail()}"
    print(f"dead-letter reasons after two rounds: {dict(second.reasons)}")
    assert len(second.reasons) >= 10, f"the corpus reached only these reasons: {dict(second.reasons)}"
    assert after_second <= after_first * (1 + MAX_RSS_GROWTH), (
        f"VmRSS grew from {after_first} kB after the first round to {after_second} kB after the second"
    )
    log = worker.log_text()
    assert "Traceback" not in log, worker.log_tail(80)
    # Texts of up to 3,000 words pass the tiny CLIP's 64-token window; the hash encoder has none.
    assert "text truncated to the token window" in log
    assert "space=hash tokens" not in log


def test_hostile_corpus_is_deterministic() -> None:
    assert hostile_corpus() == hostile_corpus()
