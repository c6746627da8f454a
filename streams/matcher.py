"""Similarity search of newly stored vectors, and the match events built from it."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import orjson

from encoders.modality import Modality
from streams.events import InputEvent, MetadataValue
from streams.index import FIELD_ID, FIELD_METADATA, FIELD_MODALITY, FIELD_PREVIEW, SpaceIndex, as_text, escape_tag
from streams.sink import vector_bytes

# Name of the distance that the KNN clause yields for each hit.
_DISTANCE = "__distance"


@dataclass(frozen=True, slots=True)
class Match:
    """A stored item similar to a new one."""

    id: str
    modality: Modality
    similarity: float
    metadata: dict[str, MetadataValue]
    # Snippet or thumbnail stored beside the vector; shown on the dashboard, not in events.
    preview: str = ""


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """One KNN search: a new item's vector against the stored vectors of some modalities.

    ``all_modalities`` is true when ``targets`` covers every modality in the index, so
    the search needs no modality filter.
    """

    event: InputEvent
    vector: np.ndarray
    targets: frozenset[Modality]
    all_modalities: bool = False


def knn_query(
    targets: frozenset[Modality] | None, k: int, tag_filters: Mapping[str, str] | None = None
) -> str:
    """Return the RediSearch query for the ``k`` nearest vectors of the target modalities.

    ``targets`` None searches every modality without a filter. With a TAG pre-filter
    RediSearch checks the filter per candidate or falls back to brute force; at 100,000
    vectors a half-matching filter ran at 82-92% of the unfiltered rate
    (benchmarks/redis_index.py, docs/benchmarks.md). ``tag_filters`` maps TAG attribute
    names (indexed metadata fields) to the value a hit must have.
    """
    clauses = []
    if targets is not None:
        modalities = "|".join(sorted(str(modality) for modality in targets))
        clauses.append(f"@{FIELD_MODALITY}:{{{modalities}}}")
    for name, value in (tag_filters or {}).items():
        clauses.append(f"@{name}:{{{escape_tag(value)}}}")
    prefilter = f"({' '.join(clauses)})" if clauses else "*"
    return f"{prefilter}=>[KNN {k} @vector $vec AS {_DISTANCE}]"


def knn_arguments(index_name: str, query: str, vector: np.ndarray, limit: int) -> list[object]:
    """Return the FT.SEARCH arguments of a KNN query, nearest first."""
    return [
        "FT.SEARCH", index_name, query,
        "PARAMS", 2, "vec", vector_bytes(vector),
        "SORTBY", _DISTANCE, "ASC",
        "RETURN", 5, FIELD_ID, FIELD_MODALITY, FIELD_METADATA, FIELD_PREVIEW, _DISTANCE,
        "LIMIT", 0, limit,
        "DIALECT", 2,
    ]


async def search_matches(
    index: SpaceIndex, requests: Sequence[SearchRequest], k: int, min_similarity: float
) -> list[list[Match]]:
    """Run one KNN search per request in a single pipeline; return matches per request.

    Each search requests one neighbour more than ``k`` because the new item itself
    is stored already and is the nearest to itself; it is dropped by key, and so
    never reported as its own match.
    """
    results: list[list[Match]] = [[] for _ in requests]
    searched = [i for i, request in enumerate(requests) if request.targets]
    if not searched:
        return results
    async with index.client.pipeline(transaction=False) as pipe:
        for i in searched:
            request = requests[i]
            query = knn_query(None if request.all_modalities else request.targets, k + 1)
            pipe.execute_command(*knn_arguments(index.name, query, request.vector, k + 1))
        replies = await pipe.execute()
    for i, reply in zip(searched, replies, strict=True):
        request = requests[i]
        own_key = index.key(request.event.modality, request.event.id)
        results[i] = parse_hits(reply, own_key, min_similarity)[:k]
    return results


def parse_hits(reply: object, own_key: str | None, min_similarity: float) -> list[Match]:
    """Parse an FT.SEARCH reply into matches, nearest first.

    Hits under ``min_similarity`` and the hit stored under ``own_key`` are left out.
    """
    matches: list[Match] = []
    for key, fields in search_hits(reply):
        if key == own_key:
            continue
        # COSINE distance in RediSearch is 1 - cosine similarity.
        similarity = 1.0 - float(as_text(fields[_DISTANCE]))
        if similarity < min_similarity:
            continue
        metadata_raw = fields.get(FIELD_METADATA)
        matches.append(
            Match(
                id=as_text(fields.get(FIELD_ID, b"")),
                modality=Modality(as_text(fields.get(FIELD_MODALITY, b""))),
                similarity=round(similarity, 6),
                metadata=orjson.loads(as_text(metadata_raw)) if metadata_raw else {},
                preview=as_text(fields.get(FIELD_PREVIEW, b"")),
            )
        )
    return matches


def search_hits(reply: object) -> list[tuple[str, dict[str, object]]]:
    """Return (key, fields) per hit of an FT.SEARCH reply in RESP2 or RESP3 form.

    RESP2: [total, key, [field, value, ...], key, [...], ...]. RESP3 (redis-py 8's
    default protocol): {"results": [{"id": key, "extra_attributes": {field: value}}]}.
    """
    if isinstance(reply, dict):
        results = reply.get(b"results", reply.get("results", []))
        hits = []
        for result in results or []:
            key = as_text(result.get(b"id", result.get("id", b"")))
            raw = result.get(b"extra_attributes", result.get("extra_attributes", {})) or {}
            hits.append((key, {as_text(name): value for name, value in raw.items()}))
        return hits
    if not isinstance(reply, list) or not reply:
        return []
    hits = []
    for position in range(1, len(reply) - 1, 2):
        raw = reply[position + 1]
        fields = {as_text(raw[j]): raw[j + 1] for j in range(0, len(raw) - 1, 2)}
        hits.append((as_text(reply[position]), fields))
    return hits


def match_event_key(space: str, event: InputEvent) -> bytes:
    """Return the Kafka key of a match event: stable across replays of the same input."""
    return f"{space}/{event.modality}/{event.id}".encode()


def match_event(space: str, event: InputEvent, matches: Sequence[Match]) -> bytes:
    """Return the JSON match event for one source item."""
    return orjson.dumps(
        {
            "space": space,
            "source": {
                "id": event.id,
                "modality": str(event.modality),
                "metadata": event.metadata,
            },
            "matches": [
                {
                    "id": match.id,
                    "modality": str(match.modality),
                    "similarity": match.similarity,
                    "metadata": match.metadata,
                }
                for match in matches
            ],
            "event_time": event.event_time,
            "processed_at": time.time(),
        }
    )
