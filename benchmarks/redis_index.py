"""Redis vector index figures: pipelined HNSW inserts and KNN searches at a given index size."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import redis.asyncio as aioredis

from encoders.modality import Modality
from streams.events import InputEvent, SourcePosition
from streams.index import SpaceIndex
from streams.matcher import SearchRequest, search_matches
from streams.sink import write_vectors

# Vectors per write pipeline and searches per search pipeline, as a worker sends them.
PIPELINE_SIZE = 32


@dataclass(frozen=True)
class RedisFigures:
    vectors: int
    inserts_per_s: float
    searches_per_s: float
    filtered_searches_per_s: float


def _unit_vectors(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((count, dim)).astype(np.float32)
    normalised: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normalised


async def measure_redis(redis_url: str, vectors: int = 100_000, dim: int = 384, searches: int = 2_000) -> RedisFigures:
    """Fill a fresh index with ``vectors`` random vectors, then time KNN searches against it.

    Half the documents are text and half image, so that a search filtered to one
    modality shows what a TAG pre-filter costs next to an unfiltered one.
    """
    client = aioredis.Redis.from_url(redis_url)
    index = SpaceIndex(client, "bench", f"space{int(time.time())}", dim, (), "random")
    await index.ensure()
    rng = np.random.default_rng(0)
    position = SourcePosition("bench", 0, 0)
    try:
        started = time.perf_counter()
        for start in range(0, vectors, PIPELINE_SIZE):
            batch = _unit_vectors(rng, min(PIPELINE_SIZE, vectors - start), dim)
            events = [
                InputEvent(f"v{start + i}", Modality.TEXT if (start + i) % 2 else Modality.IMAGE, "", position, 0.0)
                for i in range(len(batch))
            ]
            await write_vectors(index, events, batch)
        inserts_per_s = vectors / (time.perf_counter() - started)

        queries = _unit_vectors(rng, searches, dim)
        both = frozenset({Modality.TEXT, Modality.IMAGE})
        searches_per_s = await _time_searches(index, queries, both, all_modalities=True)
        filtered_per_s = await _time_searches(index, queries, frozenset({Modality.IMAGE}), all_modalities=False)
    finally:
        await client.execute_command("FT.DROPINDEX", index.name, "DD")
        await client.aclose()
    return RedisFigures(vectors, inserts_per_s, searches_per_s, filtered_per_s)


async def _time_searches(
    index: SpaceIndex, queries: np.ndarray, targets: frozenset[Modality], *, all_modalities: bool
) -> float:
    position = SourcePosition("bench", 0, 0)
    started = time.perf_counter()
    for start in range(0, len(queries), PIPELINE_SIZE):
        requests = [
            SearchRequest(
                InputEvent(f"q{start + i}", Modality.TEXT, "", position, 0.0), vector, targets, all_modalities
            )
            for i, vector in enumerate(queries[start : start + PIPELINE_SIZE])
        ]
        await search_matches(index, requests, 5, -1.0)
    return len(queries) / (time.perf_counter() - started)


async def server_versions(redis_url: str) -> str:
    """Return the Redis server's version and its search module's, such as "Redis 8.2.3 + RediSearch 2.10.5"."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        server = (await client.info("server"))["redis_version"]
        modules = await client.execute_command("MODULE", "LIST")
    finally:
        await client.aclose()
    for module in modules:
        # redis-py gives each module as a dict, or as a flat [name, value, ...] list under RESP2.
        fields = module if isinstance(module, dict) else dict(zip(module[::2], module[1::2], strict=True))
        fields = {_text(key): value for key, value in fields.items()}
        if _text(fields.get("name", b"")) == "search":
            version = int(fields["ver"])
            return f"Redis {server} + RediSearch {version // 10000}.{version // 100 % 100}.{version % 100}"
    return f"Redis {server}, no search module"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
