"""A lane: the batches of one modality through one space, from encoder to match events."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from redis.exceptions import ResponseError

from encoders.base import Prepared
from encoders.batching import MicroBatcher
from encoders.errors import InputRejected
from encoders.modality import Modality
from streams.deadletter import Rejection, RejectionLog
from streams.feed import FeedItem, MatchFeed
from streams.matcher import Match, SearchRequest, match_event, match_event_key, search_matches
from streams.metrics import WorkerMetrics
from streams.outputs import Outputs
from streams.pending import PendingEvent
from streams.retry import Retrier
from streams.settings import SpaceSettings
from streams.sink import write_vectors
from streams.space import Replica, Space

logger = logging.getLogger(__name__)

ResultT = TypeVar("ResultT")


# English text averages about four characters per WordPiece or BPE token; an
# estimate is enough for a budget, and it costs nothing before tokenising.
CHARACTERS_PER_TOKEN = 4


def input_cost(modality: Modality, content: object) -> float:
    """Return an input's cost against its batch budget: tokens, pixels or seconds."""
    if modality is Modality.TEXT:
        return len(str(content)) / CHARACTERS_PER_TOKEN + 2
    if modality is Modality.IMAGE:
        width, height = content.size  # type: ignore[attr-defined]
        return float(width * height)
    return float(content.duration_s)  # type: ignore[attr-defined]


def batcher_for(settings: SpaceSettings, modality: Modality) -> MicroBatcher[PendingEvent]:
    """Return the batcher of one lane: size, wait and cost bounds, and length grouping for text."""
    budgets = {
        Modality.TEXT: float(settings.max_batch_tokens),
        Modality.IMAGE: float(settings.max_batch_pixels),
        Modality.AUDIO: settings.max_batch_audio_seconds,
    }
    return MicroBatcher(
        settings.max_batch_size,
        settings.max_wait_ms / 1000.0,
        cost=lambda pending: input_cost(modality, pending.content),
        max_cost=budgets[modality],
        # Texts of similar length share a batch, so less of it is padding.
        sort_key=(lambda pending: len(str(pending.content))) if modality is Modality.TEXT else None,
    )


@dataclass(frozen=True, slots=True)
class _PreparedBatch:
    """A batch after preprocessing: its tensors, or the error that preprocessing raised."""

    batch: Sequence[PendingEvent]
    prepared: Prepared | None
    error: BaseException | None


@dataclass(frozen=True, slots=True)
class _EmbeddedBatch:
    """A batch after the forward pass: the embedded inputs and the rejected ones."""

    batch: Sequence[PendingEvent]
    embedded: list[tuple[PendingEvent, np.ndarray]]
    rejected: list[tuple[PendingEvent, Rejection]]


class Lane:
    """Embeds, stores and matches batches of one modality in one space, in order.

    A batch's events are finished (and so become committable) only after their
    vectors are in Redis and their match events are delivered. Redis and Kafka
    failures are retried without end: the lane stalls, its bounded buffer fills,
    and the stream stops taking records until the outage is over.
    """

    def __init__(
        self,
        space: Space,
        modality: Modality,
        outputs: Outputs,
        rejections: RejectionLog,
        retrier: Retrier,
        metrics: WorkerMetrics,
        feed: MatchFeed,
    ) -> None:
        self.space = space
        self.modality = modality
        self.outputs = outputs
        self.rejections = rejections
        self.retrier = retrier
        self.metrics = metrics
        self.feed = feed
        self.targets = space.settings.target_modalities(modality, space.modalities)
        self.searches_all_modalities = self.targets == space.modalities
        self.batcher: MicroBatcher[PendingEvent] = batcher_for(space.settings, modality)
        self.name = f"{space.name}/{modality}"

    async def put(self, pending: PendingEvent) -> None:
        """Queue an event, waiting while the lane's buffer is full."""
        await self.batcher.put(pending)

    async def run(self) -> None:
        """Process batches until cancelled, in three overlapping stages.

        While the model runs batch N, the preprocessing thread prepares batch N+1 and
        the event loop stores, searches and emits batch N-1. With several replicas,
        several batches run through the model at once. One prepared batch waits for a
        replica at most, and the emitting stage handles batches in the order they were
        formed, so a replayed id is still written in the order it was read.
        """
        logger.info(
            "lane started lane=%s max_batch_size=%d max_wait_ms=%s replicas=%d match_targets=%s",
            self.name, self.batcher.max_size, self.space.settings.max_wait_ms, len(self.space.replicas),
            ",".join(sorted(self.targets)) or "none",
        )
        prepared: asyncio.Queue[_PreparedBatch] = asyncio.Queue(maxsize=1)
        embedded: asyncio.Queue[asyncio.Task[_EmbeddedBatch]] = asyncio.Queue(maxsize=len(self.space.replicas))
        try:
            async with asyncio.TaskGroup() as stages:
                stages.create_task(self._prepare_batches(prepared))
                stages.create_task(self._embed_batches(prepared, embedded, stages))
                stages.create_task(self._emit_batches(embedded))
        finally:
            logger.info("lane stopped lane=%s", self.name)

    async def process(self, batch: Sequence[PendingEvent]) -> None:
        """Embed, store, match and emit one batch, then finish its events (one stage after another)."""
        self._observe_batch(batch)
        embedded, rejected = await self._embed(list(batch))
        await self._emit(_EmbeddedBatch(batch, embedded, rejected))

    def _observe_batch(self, batch: Sequence[PendingEvent]) -> None:
        space, modality = self.space.name, str(self.modality)
        self.metrics.batch_size.labels(space, modality).observe(len(batch))
        oldest = min(pending.admitted_at for pending in batch)
        self.metrics.batch_fill_wait.labels(space, modality).observe(time.monotonic() - oldest)

    async def _prepare_batches(self, output: asyncio.Queue[_PreparedBatch]) -> None:
        while True:
            # Close the next batch only once the forward stage has taken the previous one:
            # a batch formed earlier would close small under a trickle of input, and small
            # batches are what make a CPU encoder fall behind.
            await output.join()
            batch = await self.batcher.next_batch()
            self._observe_batch(batch)
            try:
                prepared, seconds = await self.space.preprocess(self.modality, [pending.content for pending in batch])
            except Exception as exc:
                # The embedding stage splits the batch to find the inputs that fail.
                await output.put(_PreparedBatch(batch, None, exc))
                continue
            self._observe_stage("preprocess", seconds)
            await output.put(_PreparedBatch(batch, prepared, None))

    async def _embed_batches(
        self,
        source: asyncio.Queue[_PreparedBatch],
        output: asyncio.Queue[asyncio.Task[_EmbeddedBatch]],
        stages: asyncio.TaskGroup,
    ) -> None:
        while True:
            item = await source.get()
            # Take the batch off the queue only once a replica is free: until then the
            # batcher goes on filling the next batch.
            replica = await self.space.reserve() if item.prepared is not None else None
            source.task_done()
            await output.put(stages.create_task(self._embed_batch(item, replica)))

    async def _embed_batch(self, item: _PreparedBatch, replica: Replica | None) -> _EmbeddedBatch:
        """Run a prepared batch on ``replica`` and give it back; split the batch if it fails."""
        batch = list(item.batch)
        error = item.error
        if replica is not None and item.prepared is not None:
            try:
                vectors, seconds = await replica.forward(item.prepared)
            except Exception as exc:
                error = exc
            else:
                self._observe_stage("forward", seconds)
                return _EmbeddedBatch(batch, list(zip(batch, vectors, strict=True)), [])
            finally:
                # Given back before any split, whose smaller forward passes take a replica again.
                self.space.release(replica)
        embedded, rejected = await self._split_and_embed(batch, error)
        return _EmbeddedBatch(batch, embedded, rejected)

    async def _emit_batches(self, source: asyncio.Queue[asyncio.Task[_EmbeddedBatch]]) -> None:
        while True:
            embedding = await source.get()
            await self._emit(await embedding)

    async def _emit(self, item: _EmbeddedBatch) -> None:
        """Dead-letter the rejected inputs, then store, search and emit the embedded ones."""
        for pending, rejection in item.rejected:
            await self._deadletter(pending, rejection)
        if not item.embedded:
            return
        space, modality = self.space.name, str(self.modality)
        pendings = [pending for pending, _ in item.embedded]
        events = [pending.event for pending in pendings]
        vectors = np.stack([vector for _, vector in item.embedded])
        previews = [pending.preview for pending in pendings]

        index = self.space.index
        with self._timed("redis_write"):
            await self.retrier.run(
                lambda: self._on_index(write_vectors(index, events, vectors, previews)),
                "redis_write", f"storing {len(events)} vectors in index {index.name}",
            )
        self.metrics.events_embedded.labels(space, modality).inc(len(events))

        requests = [
            SearchRequest(event, vector, self.targets, self.searches_all_modalities)
            for event, vector in zip(events, vectors, strict=True)
        ]
        settings = self.space.settings
        with self._timed("redis_search"):
            found = await self.retrier.run(
                lambda: self._on_index(search_matches(index, requests, settings.match_k, settings.min_similarity)),
                "redis_search", f"searching matches of {len(events)} vectors in index {index.name}",
            )
        records = [
            (match_event_key(space, event), match_event(space, event, matches))
            for event, matches in zip(events, found, strict=True)
            if matches
        ]
        if records:
            with self._timed("produce"):
                await self.retrier.run(
                    lambda: self.outputs.send_matches(records), "produce", f"sending {len(records)} match events"
                )
            self.metrics.match_events.labels(space, modality).inc(len(records))
            self._add_to_feed(pendings, found)

        now = time.time()
        latency = self.metrics.end_to_end_latency.labels(space, modality)
        for pending in pendings:
            latency.observe(max(0.0, now - pending.record_time))
            pending.finish()
        logger.debug(
            "batch done lane=%s size=%d rejected=%d match_events=%d",
            self.name, len(item.batch), len(item.rejected), len(records),
        )

    async def _on_index(self, operation: Awaitable[ResultT]) -> ResultT:
        """Await a Redis operation; if the index is gone, create it again before the retry.

        A Redis server restarted without its data (no persistence, or a failover to
        an empty replica) has no index, so every search fails until one exists.
        FT.CREATE also indexes the keys already stored under the prefix.
        """
        try:
            return await operation
        except ResponseError as exc:
            if "unknown index" in str(exc).lower() or "no such index" in str(exc).lower():
                logger.warning("index %s is missing in Redis; creating it again", self.space.index.name)
                await self.space.index.ensure()
            raise

    def _observe_stage(self, stage: str, seconds: float) -> None:
        self.metrics.stage_duration.labels(self.space.name, str(self.modality), stage).observe(seconds)

    @contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        """Record the time a block takes as the lane's ``stage`` duration, failures included."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self._observe_stage(stage, time.perf_counter() - started)

    def _add_to_feed(self, pendings: Sequence[PendingEvent], found: Sequence[Sequence[Match]]) -> None:
        for pending, matches in zip(pendings, found, strict=True):
            if not matches:
                continue
            source = FeedItem(pending.event.id, str(pending.event.modality), pending.preview)
            items = tuple(
                FeedItem(match.id, str(match.modality), match.preview, match.similarity) for match in matches
            )
            self.feed.add(self.space.name, source, items)

    async def _embed(
        self, batch: list[PendingEvent]
    ) -> tuple[list[tuple[PendingEvent, np.ndarray]], list[tuple[PendingEvent, Rejection]]]:
        """Embed a batch; on failure split it in halves until the failing inputs stand alone.

        A forward pass can fail for the whole batch (out of memory on a large one) or
        because of one input; splitting keeps the good inputs of the batch and sends
        only an input that fails on its own to the dead-letter topic.
        """
        try:
            result = await self.space.encode(self.modality, [pending.content for pending in batch])
        except Exception as exc:
            return await self._split_and_embed(batch, exc)
        self._observe_stage("preprocess", result.preprocess_s)
        self._observe_stage("forward", result.forward_s)
        return list(zip(batch, result.vectors, strict=True)), []

    async def _split_and_embed(
        self, batch: list[PendingEvent], error: BaseException | None
    ) -> tuple[list[tuple[PendingEvent, np.ndarray]], list[tuple[PendingEvent, Rejection]]]:
        """Handle a batch whose preprocessing or forward pass raised ``error``."""
        if len(batch) == 1:
            pending = batch[0]
            if isinstance(error, InputRejected):
                return [], [(pending, self._rejection(pending, error.reason, error.detail))]
            logger.error(
                "encoder failed on a single input lane=%s id=%s position=%s: %s: %s",
                self.name, pending.event.id, pending.event.position, type(error).__name__, error,
            )
            detail = f"{type(error).__name__}: {error}"
            return [], [(pending, self._rejection(pending, "encoder_failed", detail))]
        logger.warning(
            "encoder failed lane=%s size=%d, splitting the batch: %s: %s",
            self.name, len(batch), type(error).__name__, error,
        )
        middle = len(batch) // 2
        left_embedded, left_rejected = await self._embed(batch[:middle])
        right_embedded, right_rejected = await self._embed(batch[middle:])
        return left_embedded + right_embedded, left_rejected + right_rejected

    def _rejection(self, pending: PendingEvent, reason: str, detail: str) -> Rejection:
        return Rejection(reason, detail, pending.event.position, pending.event.id, self.space.name)

    async def _deadletter(self, pending: PendingEvent, rejection: Rejection) -> None:
        self.rejections.warn(rejection)
        await self.retrier.run(
            lambda: self.outputs.send_deadletter(rejection, pending.raw_key, pending.raw_value),
            "produce", f"sending a dead-letter record for id {pending.event.id!r}",
        )
        self.metrics.events_deadlettered.labels(rejection.reason).inc()
        pending.finish()
