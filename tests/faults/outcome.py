"""The outcome of a fault test, and the invariant every fault test checks on it.

For N published events, the distinct ids stored in Redis plus the distinct ids sent to
the dead-letter topic make N, with no id in both, and every stored id appears as the
source of a match event. Each test first stores a seed event on its own, so that each
later event has a neighbour, and with min_similarity -1 its search always returns a
match: a stored id without a match event means its search never ran or its event was
lost. Replays may repeat match events, but each copy must carry the record key
``space/modality/id`` of its own source id.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from streams.deadletter import parse_deadletter_headers
from streams.settings import Settings
from tests.faults.harness import SPACE_NAME, stored_ids
from tests.support import WorkerProcess

# How long one poll of the output topics waits for records, ms.
POLL_TIMEOUT_MS = 500


@dataclass
class Outcome:
    """What the worker produced: stored ids, dead-letter records and match events."""

    stored: set[str] = field(default_factory=set)
    # Dead-lettered id -> (reason, detail), and the count of records, copies included.
    deadlettered: dict[str, tuple[str, str]] = field(default_factory=dict)
    deadletter_records: int = 0
    # (record key, decoded event) of every match event, in topic order per partition.
    match_events: list[tuple[bytes, dict[str, Any]]] = field(default_factory=list)

    def match_sources(self) -> Counter[str]:
        return Counter(event["source"]["id"] for _, event in self.match_events)


class OutputReader:
    """Reads the match and dead-letter topics from the start, keeping what it has read."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.outcome = Outcome()
        self._consumer = AIOKafkaConsumer(
            settings.topic_matches,
            settings.topic_deadletter,
            bootstrap_servers=settings.kafka_broker,
            group_id=None,
            auto_offset_reset="earliest",
        )

    async def __aenter__(self) -> OutputReader:
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._consumer.stop()

    async def poll(self) -> Outcome:
        """Add the records that arrived since the last poll, and the stored ids, to the outcome."""
        batches = await self._consumer.getmany(timeout_ms=POLL_TIMEOUT_MS)
        for records in batches.values():
            for record in records:
                if record.topic == self.settings.topic_matches:
                    self.outcome.match_events.append((bytes(record.key or b""), orjson.loads(record.value)))
                else:
                    headers = parse_deadletter_headers(list(record.headers or []))
                    self.outcome.deadlettered[headers.get("id", "")] = (headers["reason"], headers["detail"])
                    self.outcome.deadletter_records += 1
        self.outcome.stored = await stored_ids(self.settings)
        return self.outcome


async def wait_outcome(
    worker: WorkerProcess, settings: Settings, ids: list[str], seed_id: str, timeout_s: float
) -> Outcome:
    """Poll the outputs until every id is stored or dead-lettered and every stored id matched.

    Raises AssertionError naming what is still missing at the timeout, or at once if the
    worker exits.
    """
    expected = set(ids)
    async with OutputReader(settings) as reader:
        deadline = time.monotonic() + timeout_s
        outcome = await reader.poll()
        while time.monotonic() < deadline:
            if not worker.running:
                raise AssertionError(f"the worker exited before the outcome was complete:\n{worker.log_tail()}")
            accounted = (outcome.stored | set(outcome.deadlettered)) & expected
            unmatched = (outcome.stored & expected) - set(outcome.match_sources())
            if accounted == expected and not unmatched:
                return outcome
            outcome = await reader.poll()
        missing = sorted(expected - outcome.stored - set(outcome.deadlettered))
        unmatched_ids = sorted((outcome.stored & expected) - set(outcome.match_sources()))
        raise AssertionError(
            f"timed out after {timeout_s} s: {len(missing)} ids neither stored nor dead-lettered "
            f"{missing[:10]}, {len(unmatched_ids)} stored ids without a match event {unmatched_ids[:10]}; "
            f"seed {seed_id}; worker log tail:\n{worker.log_tail()}"
        )


def check_invariant(outcome: Outcome, ids: list[str], seed_id: str) -> dict[str, int]:
    """Assert the invariant of the module docstring; return the counts for the figures."""
    expected = set(ids)
    assert len(expected) == len(ids), "the test published an id twice"
    stored = outcome.stored - {seed_id}
    deadlettered = set(outcome.deadlettered)
    sources = outcome.match_sources()

    assert stored <= expected, f"ids stored that were never published: {sorted(stored - expected)[:10]}"
    assert deadlettered <= expected, f"unknown ids dead-lettered: {sorted(deadlettered - expected)[:10]}"
    assert not stored & deadlettered, f"ids both stored and dead-lettered: {sorted(stored & deadlettered)[:10]}"
    assert len(stored) + len(deadlettered) == len(ids), (
        f"{len(stored)} stored + {len(deadlettered)} dead-lettered != {len(ids)} published"
    )
    assert not stored - set(sources), f"stored ids whose search never ran: {sorted(stored - set(sources))[:10]}"
    assert not deadlettered & set(sources), "a dead-lettered id has a match event"

    for key, event in outcome.match_events:
        source = event["source"]["id"]
        assert event["space"] == SPACE_NAME, event
        assert key == f"{SPACE_NAME}/text/{source}".encode(), f"match event of {source} has the key {key!r}"
        matched = {match["id"] for match in event["matches"]}
        assert matched, f"match event of {source} lists no match"
        assert source not in matched, f"{source} matched itself"

    return {
        "published": len(ids),
        "stored": len(stored),
        "dead_lettered": len(deadlettered),
        "match_events": len(outcome.match_events),
        "duplicate_match_events": sum(count - 1 for count in sources.values()),
        "duplicate_dead_letters": outcome.deadletter_records - len(deadlettered),
    }
