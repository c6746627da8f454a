"""The embedding pipeline as a service: Redis connection, lanes and admission of records."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import redis.asyncio as aioredis
import torch
from mode import Service

from encoders.base import Encoder
from encoders.modality import Modality
from streams.admission import Admission
from streams.deadletter import RejectionLog
from streams.events import EventLimits
from streams.feed import MatchFeed
from streams.index import SpaceIndex
from streams.lane import Lane
from streams.metrics import WorkerMetrics
from streams.outputs import Outputs
from streams.redis_client import connect_redis
from streams.retry import Retrier
from streams.settings import Settings, SpaceSettings
from streams.space import Space, space_modalities

logger = logging.getLogger(__name__)

# Threads that decode images and audio; decoding is short and mostly inside
# Pillow or libsndfile, which release the GIL, so two keep one worker busy.
DECODE_THREADS = 2


class Pipeline(Service):
    """Owns the lanes of every (space, modality) pair and the Redis client they share.

    Agents wait on ``ready`` before they hand records to ``admission``; the lanes
    start when this service starts and are cancelled when it stops.
    """

    def __init__(
        self,
        settings: Settings,
        encoders: Sequence[tuple[SpaceSettings, Sequence[Encoder]]],
        metrics: WorkerMetrics | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.encoders = list(encoders)
        self.spaces: list[Space] = []
        # Set by the app that owns the output topics, before the service starts.
        self.outputs: Outputs | None = None
        # Set by the app: returns the high watermark of each assigned (topic, partition).
        self.highwaters: Callable[[], Awaitable[dict[tuple[str, int], int]]] | None = None
        self.metrics = metrics if metrics is not None else WorkerMetrics()
        self.feed = MatchFeed()
        self.ready = asyncio.Event()
        self.client: aioredis.Redis | None = None
        self.lanes: dict[Modality, list[Lane]] = {}
        self.decode_executor = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="decode")
        self._admission: Admission | None = None

    @property
    def modalities(self) -> frozenset[Modality]:
        """Modalities that at least one space embeds."""
        return frozenset(
            modality
            for space_settings, replicas in self.encoders
            for modality in space_modalities(space_settings, replicas[0])
        )

    @property
    def admission(self) -> Admission:
        if self._admission is None:
            raise RuntimeError("the pipeline has not started; wait for Pipeline.ready")
        return self._admission

    async def on_start(self) -> None:
        if self.outputs is None:
            raise RuntimeError("Pipeline.outputs must be set before the pipeline starts")
        outputs = self.outputs
        settings = self.settings
        self.client = connect_redis(settings)
        rejections = RejectionLog(settings.warning_interval_s)
        retrier = Retrier(settings.retry_backoff_max_s, self.metrics)
        for space_settings, replicas in self.encoders:
            encoder = replicas[0]
            index = SpaceIndex(
                self.client, settings.key_prefix, space_settings.name, encoder.dim,
                space_settings.metadata_fields, space_settings.model,
                settings.hnsw_m, settings.hnsw_ef_construction,
            )
            await index.ensure()
            space = Space(space_settings, replicas, index, space_modalities(space_settings, encoder))
            self.spaces.append(space)
            for modality in sorted(space.modalities):
                lane = Lane(space, modality, outputs, rejections, retrier, self.metrics, self.feed)
                self.lanes.setdefault(modality, []).append(lane)
                self.add_future(self._run_lane(lane))
        limits = EventLimits.from_settings(settings)
        self._admission = Admission(
            self.lanes, outputs, rejections, limits, settings.max_image_pixels,
            settings.max_audio_seconds, self.decode_executor, retrier, self.metrics, settings.store_previews,
        )
        self.add_future(self._observe_periodically())
        self.ready.set()
        logger.info(
            "pipeline started spaces=%s lanes=%s",
            ",".join(space.name for space in self.spaces),
            ",".join(lane.name for lanes in self.lanes.values() for lane in lanes),
        )

    async def _run_lane(self, lane: Lane) -> None:
        """Run a lane; if it fails, stop the worker rather than leave its topic unread.

        A lane retries Redis and Kafka failures itself, so what ends one is a bug or a
        broken environment. Crashing makes the worker exit, so that its supervisor can
        restart it, while the stored offsets make the restart replay what was in flight.
        """
        try:
            await lane.run()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            logger.exception("lane failed lane=%s; stopping the worker", lane.name)
            await self.crash(exc)

    async def _observe_periodically(self) -> None:
        """Refresh the gauges that no event updates: consumer lag, index sizes, device memory."""
        while True:
            await asyncio.sleep(self.settings.monitor_interval_s)
            try:
                await self.observe()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("refreshing the monitoring gauges failed: %s: %s", type(exc).__name__, exc)

    async def observe(self) -> None:
        """Set the consumer lag, index size and CUDA memory gauges once."""
        metrics = self.metrics
        if self.highwaters is not None and self._admission is not None:
            finished = self._admission.finished_offsets
            for (topic, partition), highwater in (await self.highwaters()).items():
                done = finished.get((topic, partition))
                if done is not None:
                    metrics.consumer_lag.labels(topic, str(partition)).set(max(0, highwater - done - 1))
        for space in self.spaces:
            metrics.index_documents.labels(space.name).set(await space.index.count())
        if torch.cuda.is_available():
            for device in range(torch.cuda.device_count()):
                metrics.cuda_memory_allocated.labels(f"cuda:{device}").set(torch.cuda.memory_allocated(device))

    async def on_stop(self) -> None:
        self.ready.clear()
        self.decode_executor.shutdown(wait=False, cancel_futures=True)
        for space in self.spaces:
            space.close()
        if self.client is not None:
            await self.client.aclose()
        logger.info("pipeline stopped")
