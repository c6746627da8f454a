"""Ad-hoc similarity search from the terminal: text in, nearest stored items out."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import numpy as np
import transformers

from encoders.loading import load_encoder
from encoders.modality import Modality
from streams.errors import ConfigError
from streams.index import SpaceIndex
from streams.matcher import Match, knn_arguments, knn_query, parse_hits
from streams.redis_client import connect_redis
from streams.settings import Settings
from streams.space import space_modalities


async def _query_index(
    settings: Settings, space_name: str, dim: int, query: str, vector: np.ndarray, k: int
) -> list[Match]:
    space = settings.space(space_name)
    client = connect_redis(settings)
    try:
        index = SpaceIndex(client, settings.key_prefix, space.name, dim, space.metadata_fields, space.model)
        stored = await index.stored_dim()
        if stored is None:
            raise ConfigError(
                f"space {space.name!r} has no index {index.name!r} in Redis yet; start a worker "
                "and publish some events first"
            )
        if stored != dim:
            raise ConfigError(f"index {index.name!r} stores {stored}-d vectors, the model makes {dim}-d")
        reply = await client.execute_command(*knn_arguments(index.name, query, vector, k))
    finally:
        await client.aclose()
    return parse_hits(reply, None, -1.0)


def search_text(
    settings: Settings,
    text: str,
    space_name: str,
    k: int,
    modalities: list[Modality] | None,
    tag_filters: Mapping[str, str],
) -> list[Match]:
    """Embed ``text`` with the space's model and return the ``k`` nearest stored items."""
    space = settings.space(space_name)
    unknown = sorted(set(tag_filters) - set(space.metadata_fields))
    if unknown:
        raise ConfigError(
            f"cannot filter on {unknown}: space {space.name!r} indexes only the metadata fields "
            f"{list(space.metadata_fields)}"
        )
    transformers.utils.logging.disable_progress_bar()
    encoder = load_encoder(space.model, family=space.family, device=space.device, dtype=space.dtype)
    try:
        embedded = space_modalities(space, encoder)
        if Modality.TEXT not in embedded:
            raise ConfigError(f"space {space.name!r} does not embed text, so it cannot take a text query")
        targets = frozenset(modalities) if modalities and frozenset(modalities) != embedded else None
        vector = encoder.encode(Modality.TEXT, [text])[0]
    finally:
        encoder.close()
    query = knn_query(targets, k, tag_filters)
    return asyncio.run(_query_index(settings, space.name, encoder.dim, query, vector, k))
