"""Starting a worker: load the models, check the indexes, then run the Faust worker."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import faust
import torch
import transformers
from mode import Service

from encoders.base import Encoder
from encoders.loading import load_encoder
from streams.app import build_app
from streams.index import SpaceIndex
from streams.pipeline import Pipeline
from streams.redis_client import connect_redis
from streams.settings import Settings, SpaceSettings
from streams.space import space_modalities
from streams.web import MonitoringServer

logger = logging.getLogger(__name__)


def threads_per_replica(replicas: int) -> int:
    """Return torch's CPU threads for each of ``replicas`` copies that share the current thread count."""
    return max(1, torch.get_num_threads() // replicas)


def share_cpu_threads(settings: Settings) -> None:
    """Divide torch's CPU threads among the replicas of the space with the most, so they do not contend."""
    replicas = max((space.replicas for space in settings.spaces), default=1)
    if replicas == 1:
        return
    threads = threads_per_replica(replicas)
    logger.info("dividing CPU threads replicas=%d torch_threads_per_replica=%d", replicas, threads)
    torch.set_num_threads(threads)


def load_space_encoders(settings: Settings) -> list[tuple[SpaceSettings, list[Encoder]]]:
    """Load every space's model replicas and check its modalities; raise on the first failure."""
    loaded: list[tuple[SpaceSettings, list[Encoder]]] = []
    for space in settings.spaces:
        started = time.perf_counter()
        replicas = [
            load_encoder(space.model, family=space.family, device=space.device, dtype=space.dtype)
            for _ in range(space.replicas)
        ]
        encoder = replicas[0]
        modalities = space_modalities(space, encoder)
        logger.info(
            "space ready space=%s model=%s family=%s dim=%d modalities=%s device=%s replicas=%d seconds=%.1f",
            space.name, space.model, encoder.family, encoder.dim, ",".join(sorted(modalities)),
            encoder.device, len(replicas), time.perf_counter() - started,
        )
        loaded.append((space, replicas))
    return loaded


async def check_indexes(settings: Settings, encoders: list[tuple[SpaceSettings, list[Encoder]]]) -> None:
    """Create missing indexes and stop on a dimension mismatch, before joining the group."""
    client = connect_redis(settings)
    try:
        for space, replicas in encoders:
            encoder = replicas[0]
            index = SpaceIndex(
                client, settings.key_prefix, space.name, encoder.dim, space.metadata_fields,
                space.model, settings.hnsw_m, settings.hnsw_ef_construction,
            )
            await index.ensure()
    finally:
        await client.aclose()


def run_worker(settings: Settings) -> int:
    """Run a worker until it is stopped by a signal; return the exit status."""
    logger.info("worker starting settings=%s", settings.masked())
    # Loading bars are for terminals; a worker's output goes to logs.
    transformers.utils.logging.disable_progress_bar()
    share_cpu_threads(settings)
    encoders = load_space_encoders(settings)
    asyncio.run(check_indexes(settings, encoders))
    (Path(settings.data_dir) / "faust").mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline(settings, encoders)
    app = build_app(settings, pipeline)
    services: list[Service] = [pipeline]
    if settings.web_enabled:
        services.append(MonitoringServer(settings, pipeline.metrics, pipeline.feed, pipeline.ready.is_set))
    worker = faust.Worker(
        app,
        *services,
        loglevel=settings.log_level,
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
    )
    # Faust's Worker installs its own event loop and signal handlers, and exits the
    # process with the worker's status when it stops.
    worker.execute_from_commandline()
    return 0
