"""The RediSearch vector index of an embedding space: its name, keys and schema."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from encoders.modality import Modality
from streams.errors import IndexDimensionMismatch

logger = logging.getLogger(__name__)

# Hash fields of every stored vector. Metadata keys listed in the space settings are
# stored a second time as ``meta_<key>`` so that they can be TAG-indexed.
FIELD_ID = "id"
FIELD_MODALITY = "modality"
FIELD_TIMESTAMP = "ts"
FIELD_VECTOR = "vector"
FIELD_METADATA = "metadata"
FIELD_PREVIEW = "preview"
METADATA_TAG_PREFIX = "meta_"

# Characters that RediSearch's query syntax gives a meaning inside a TAG value
# (RediSearch docs, "Query syntax: tag fields"), each escaped with a backslash.
# The backtick and ASCII whitespace are escaped too, because they end a tag value.
# Non-ASCII whitespace stays unescaped, because escaping it stops a match.
# tests/fuzz/test_redis_names.py checks every ASCII punctuation and whitespace character.
_TAG_SPECIAL = re.compile(r"([,.<>{}\[\]\"':;!@#$%^&*()\-+=~|/\\?` \t\n\r\x0b\x0c])")

# RediSearch trims ASCII whitespace from both ends of a tag when it indexes one.
_TAG_TRIMMED = " \t\n\r\x0b\x0c"


def escape_tag(value: str) -> str:
    """Escape ``value`` for use inside a TAG query ``@field:{...}``, trimmed as stored tags are.

    NOTE: RediSearch splits a stored value into several tags at the field's
    separator, a comma by default, so a filter value that contains a comma matches
    nothing. Control characters other than whitespace cannot be matched either.
    """
    return _TAG_SPECIAL.sub(r"\\\1", value.strip(_TAG_TRIMMED))


class SpaceIndex:
    """Names and creates the index of one space; one HASH key per (modality, id)."""

    def __init__(
        self,
        client: aioredis.Redis,
        key_prefix: str,
        space: str,
        dim: int,
        metadata_fields: Sequence[str],
        model: str,
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 200,
    ) -> None:
        self.client = client
        self.space = space
        self.dim = dim
        self.metadata_fields = tuple(metadata_fields)
        self.model = model
        self.name = f"{key_prefix}:idx:{space}"
        self.key_prefix = f"{key_prefix}:{space}:"
        self.hnsw_m = hnsw_m
        self.hnsw_ef_construction = hnsw_ef_construction

    def key(self, modality: Modality, event_id: str) -> str:
        """Return the HASH key of an event's vector; the same id always maps to one key."""
        return f"{self.key_prefix}{modality}:{event_id}"

    def schema_arguments(self) -> list[str | int]:
        """Return the FT.CREATE arguments after the index name."""
        arguments: list[str | int] = [
            "ON", "HASH", "PREFIX", 1, self.key_prefix, "SCHEMA",
            FIELD_MODALITY, "TAG",
            FIELD_TIMESTAMP, "NUMERIC", "SORTABLE",
        ]
        for field in self.metadata_fields:
            arguments += [f"{METADATA_TAG_PREFIX}{field}", "AS", field, "TAG"]
        arguments += [
            FIELD_VECTOR, "VECTOR", "HNSW", 10,
            "TYPE", "FLOAT32",
            "DIM", self.dim,
            "DISTANCE_METRIC", "COSINE",
            "M", self.hnsw_m,
            "EF_CONSTRUCTION", self.hnsw_ef_construction,
        ]
        return arguments

    async def ensure(self) -> None:
        """Create the index if missing; raise IndexDimensionMismatch if it has another DIM."""
        existing = await self.stored_dim()
        if existing is None:
            try:
                await self.client.execute_command("FT.CREATE", self.name, *self.schema_arguments())
            except ResponseError as exc:
                # Another worker may have created it between the check and the create.
                if "already exists" not in str(exc).lower():
                    raise
                existing = await self.stored_dim()
            else:
                logger.info(
                    "created vector index index=%s dim=%d prefix=%s", self.name, self.dim,
                    self.key_prefix,
                )
                return
        if existing is not None and existing != self.dim:
            raise IndexDimensionMismatch(self.name, existing, self.dim, self.model)
        logger.info("using existing vector index index=%s dim=%d", self.name, self.dim)

    async def stored_dim(self) -> int | None:
        """Return the DIM of the existing index's vector field, or None if there is no index."""
        try:
            info = await self.client.execute_command("FT.INFO", self.name)
        except ResponseError as exc:
            message = str(exc).lower()
            if "unknown index" in message or "no such index" in message:
                return None
            raise
        return _vector_dim(_pairs(info).get("attributes", []), self.name)

    async def count(self) -> int:
        """Return the number of documents in the index."""
        info = _pairs(await self.client.execute_command("FT.INFO", self.name))
        return int(as_text(info.get("num_docs", 0)))


def as_text(value: object) -> str:
    """Return a Redis reply value as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(reply: object) -> dict[str, object]:
    """Turn a flat RESP2 [name, value, name, value, ...] reply (or a RESP3 map) into a dict."""
    if isinstance(reply, dict):
        return {as_text(name): value for name, value in reply.items()}
    if not isinstance(reply, list | tuple):
        return {}
    return {as_text(reply[i]): reply[i + 1] for i in range(0, len(reply) - 1, 2)}


def _vector_dim(attributes: object, index: str) -> int:
    if isinstance(attributes, list | tuple):
        for attribute in attributes:
            fields = _pairs(attribute)
            if as_text(fields.get("type", "")).upper() == "VECTOR":
                # RediSearch 2.10 reports "dim" as an attribute pair; RediSearch 8 nests
                # the vector parameters under "algorithm" or names it "dimension".
                for name in ("dim", "dimension"):
                    if name in fields:
                        return int(as_text(fields[name]))
                for nested in fields.values():
                    inner = _pairs(nested)
                    for name in ("dim", "dimension"):
                        if name in inner:
                            return int(as_text(inner[name]))
    raise RuntimeError(f"FT.INFO {index} lists no vector field with a dimension: {attributes!r}")
