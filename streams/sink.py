"""Writing a batch of vectors into a space's Redis index in one pipeline."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import orjson

from streams.events import InputEvent
from streams.index import (
    FIELD_ID,
    FIELD_METADATA,
    FIELD_MODALITY,
    FIELD_PREVIEW,
    FIELD_TIMESTAMP,
    FIELD_VECTOR,
    METADATA_TAG_PREFIX,
    SpaceIndex,
)

logger = logging.getLogger(__name__)


def vector_bytes(vector: np.ndarray) -> bytes:
    """Return the FLOAT32 little-endian bytes RediSearch expects for a vector field."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def document_fields(
    index: SpaceIndex, event: InputEvent, vector: np.ndarray, preview: str = ""
) -> dict[str, str | bytes | float]:
    """Return the HASH fields stored for one event's vector."""
    fields: dict[str, str | bytes | float] = {
        FIELD_ID: event.id,
        FIELD_MODALITY: str(event.modality),
        FIELD_TIMESTAMP: event.event_time,
        FIELD_VECTOR: vector_bytes(vector),
        FIELD_METADATA: orjson.dumps(event.metadata),
    }
    if preview:
        fields[FIELD_PREVIEW] = preview
    for name in index.metadata_fields:
        value = event.metadata.get(name)
        if value is not None:
            fields[f"{METADATA_TAG_PREFIX}{name}"] = str(value)
    return fields


async def write_vectors(
    index: SpaceIndex, events: Sequence[InputEvent], vectors: np.ndarray, previews: Sequence[str] | None = None
) -> None:
    """Store one vector per event in one non-transactional pipeline.

    Each key is replaced whole (DEL, then HSET), so a replayed event leaves exactly
    the fields of its latest version, never a mix with metadata of an older one.
    """
    if len(events) != len(vectors):
        raise ValueError(f"{len(events)} events but {len(vectors)} vectors")
    if vectors.ndim != 2 or vectors.shape[1] != index.dim:
        raise ValueError(
            f"vectors of shape {vectors.shape} do not fit index {index.name} of dim {index.dim}"
        )
    previews = previews if previews is not None else [""] * len(events)
    async with index.client.pipeline(transaction=False) as pipe:
        for event, vector, preview in zip(events, vectors, previews, strict=True):
            key = index.key(event.modality, event.id)
            pipe.delete(key)
            pipe.hset(key, mapping=document_fields(index, event, vector, preview))  # type: ignore[arg-type]
        await pipe.execute()
    logger.debug("stored vectors index=%s count=%d", index.name, len(events))
