"""Ids and metadata values with characters that Redis and RediSearch treat specially, on the embedded Redis."""

from __future__ import annotations

import asyncio
import string
import sys
import uuid

import numpy as np
import pytest
import redis.asyncio as aioredis

from encoders.modality import Modality
from streams.devstack import StackEndpoints
from streams.events import InputEvent, SourcePosition
from streams.index import FIELD_ID, SpaceIndex, as_text
from streams.matcher import SearchRequest, knn_arguments, knn_query, parse_hits, search_hits, search_matches
from streams.sink import write_vectors
from tests.fuzz.strategies import collect_examples, hostile_ids

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

DIM = 8

# Characters a filter value may contain, one per stored value. The comma is left out
# because RediSearch splits stored values at it (see test_filter_value_with_comma_matches_nothing).
FILTER_CHARACTERS = [character for character in string.punctuation + " \t\n\r\x0b\x0c" if character != ","]


def event(event_id: str, metadata: dict[str, str | int | float] | None = None, event_time: float = 1.0) -> InputEvent:
    return InputEvent(event_id, Modality.TEXT, "text", SourcePosition("fuzz", 0, 0), event_time, metadata or {})


def vectors(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, DIM)).astype(np.float32)


async def store(stack: StackEndpoints, events: list[InputEvent]) -> tuple[aioredis.Redis, SpaceIndex, np.ndarray]:
    client = aioredis.Redis.from_url(stack.redis_url)
    index = SpaceIndex(client, f"fz{uuid.uuid4().hex[:8]}", "names", DIM, ("source",), f"hash:{DIM}")
    await index.ensure()
    stored = vectors(len(events))
    await write_vectors(index, events, stored)
    return client, index, stored


async def filter_hits(client: aioredis.Redis, index: SpaceIndex, value: str, vector: np.ndarray, k: int) -> list[str]:
    query = knn_query(frozenset({Modality.TEXT}), k, {"source": value})
    reply = await client.execute_command(*knn_arguments(index.name, query, vector, k))
    return sorted(match.id for match in parse_hits(reply, None, -1.0))


async def indexing_failures(client: aioredis.Redis, index: SpaceIndex) -> int:
    info = await client.execute_command("FT.INFO", index.name)
    pairs = dict(zip(info[::2], info[1::2], strict=True)) if isinstance(info, list) else info
    fields = {as_text(name): value for name, value in pairs.items()}
    return int(as_text(fields.get("hash_indexing_failures", 0)))


def test_tag_filter_matches_value_with_each_special_character(stack: StackEndpoints) -> None:
    values = [f"a{character}b" for character in FILTER_CHARACTERS]
    values += [" padded ", "\ttabbed\t", "a\u00a0b", "\u65e5 \u672c"]
    events = [event(f"v{i}", {"source": value}) for i, value in enumerate(values)]

    async def check() -> dict[str, list[str]]:
        client, index, stored = await store(stack, events)
        try:
            return {
                value: await filter_hits(client, index, value, stored[i], len(values))
                for i, value in enumerate(values)
            }
        finally:
            await client.aclose()

    hits = asyncio.run(check())

    wrong = {value: found for i, (value, found) in enumerate(hits.items()) if found != [f"v{i}"]}
    assert not wrong, f"filters that did not match exactly their own value: {wrong}"


def test_filter_value_with_comma_matches_nothing(stack: StackEndpoints) -> None:
    events = [event("both", {"source": "news,sport"}), event("news", {"source": "news"})]

    async def check() -> tuple[list[str], list[str]]:
        client, index, stored = await store(stack, events)
        try:
            return (
                await filter_hits(client, index, "news,sport", stored[0], 10),
                await filter_hits(client, index, "sport", stored[0], 10),
            )
        finally:
            await client.aclose()

    whole, part = asyncio.run(check())

    assert whole == []
    assert part == ["both"]


def test_special_ids_stored_and_never_own_match(stack: StackEndpoints) -> None:
    # parse_record rejects blank ids and ids with NUL, so those never reach Redis.
    examples = {str(example) for example in collect_examples(hostile_ids(), 300)}
    ids = sorted(event_id for event_id in examples if event_id.strip() and "\x00" not in event_id)
    events = [event(event_id) for event_id in ids]

    async def check() -> tuple[list[str], list[list[str]], int]:
        client, index, stored = await store(stack, events)
        try:
            async with client.pipeline(transaction=False) as pipe:
                for item in events:
                    pipe.hget(index.key(item.modality, item.id), FIELD_ID)
                read_back = [as_text(raw) if raw is not None else "<missing>" for raw in await pipe.execute()]
            targets = frozenset({Modality.TEXT})
            requests = [SearchRequest(item, vector, targets) for item, vector in zip(events, stored, strict=True)]
            found = await search_matches(index, requests, 5, -1.0)
            return read_back, [[match.id for match in matches] for matches in found], await index.count()
        finally:
            await client.aclose()

    read_back, matched, count = asyncio.run(check())

    assert read_back == ids
    assert count == len(ids)
    own = [event_id for event_id, matches in zip(ids, matched, strict=True) if event_id in matches]
    assert not own, f"ids matched themselves: {own[:10]}"
    assert all(len(matches) == 5 for matches in matched)


def test_nul_in_key_hides_hit_fields(stack: StackEndpoints) -> None:
    # The reason parse_record rejects ids with NUL: RediSearch returns such a hit without
    # its fields, so parse_hits could not read its distance.
    events = [event("nul\x00id"), event("plain")]

    async def check() -> dict[str, dict[str, object]]:
        client, index, stored = await store(stack, events)
        try:
            query = knn_query(frozenset({Modality.TEXT}), 2)
            reply = await client.execute_command(*knn_arguments(index.name, query, stored[1], 2))
        finally:
            await client.aclose()
        return {key.rsplit(":", 1)[-1]: fields for key, fields in search_hits(reply)}

    hits = asyncio.run(check())

    assert set(hits) == {"nul\x00id", "plain"}
    assert hits["plain"]
    assert hits["nul\x00id"] == {}


@pytest.mark.parametrize("event_time", [0.0, -0.0, 1e11, 1.7976931348623157e305, sys.float_info.max, 5e-324])
def test_extreme_event_time_indexed(stack: StackEndpoints, event_time: float) -> None:
    async def check() -> tuple[int, int]:
        client, index, _ = await store(stack, [event("t", event_time=event_time)])
        try:
            return await index.count(), await indexing_failures(client, index)
        finally:
            await client.aclose()

    count, failures = asyncio.run(check())

    assert failures == 0
    assert count == 1
