"""A lane: the batches of one modality through one space, from encoder to match events."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from encoders.batching import MicroBatcher
from encoders.errors import InputRejected
from encoders.modality import Modality
from streams.deadletter import Rejection, RejectionLog
from streams.matcher import SearchRequest, match_event, match_event_key, search_matches
from streams.outputs import Outputs
from streams.pending import PendingEvent
from streams.retry import retry_until_done
from streams.sink import write_vectors
from streams.space import Space

logger = logging.getLogger(__name__)


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
        max_backoff_s: float,
    ) -> None:
        self.space = space
        self.modality = modality
        self.outputs = outputs
        self.rejections = rejections
        self.max_backoff_s = max_backoff_s
        self.targets = space.settings.target_modalities(modality, space.modalities)
        self.batcher: MicroBatcher[PendingEvent] = MicroBatcher(
            space.settings.max_batch_size, space.settings.max_wait_ms / 1000.0
        )
        self.name = f"{space.name}/{modality}"

    async def put(self, pending: PendingEvent) -> None:
        """Queue an event, waiting while the lane's buffer is full."""
        await self.batcher.put(pending)

    async def run(self) -> None:
        """Process batches until cancelled."""
        logger.info(
            "lane started lane=%s max_batch_size=%d max_wait_ms=%s match_targets=%s",
            self.name, self.batcher.max_size, self.space.settings.max_wait_ms,
            ",".join(sorted(self.targets)) or "none",
        )
        try:
            while True:
                batch = await self.batcher.next_batch()
                await self.process(batch)
        finally:
            logger.info("lane stopped lane=%s", self.name)

    async def process(self, batch: Sequence[PendingEvent]) -> None:
        """Embed, store, match and emit one batch, then finish its events."""
        started = time.perf_counter()
        embedded, rejected = await self._embed(list(batch))
        for pending, rejection in rejected:
            await self._deadletter(pending, rejection)
        if not embedded:
            return
        events = [pending.event for pending, _ in embedded]
        vectors = np.stack([vector for _, vector in embedded])
        encoded = time.perf_counter()

        index = self.space.index
        await retry_until_done(
            lambda: write_vectors(index, events, vectors),
            f"storing {len(events)} vectors in index {index.name}",
            self.max_backoff_s,
        )
        stored = time.perf_counter()

        requests = [SearchRequest(event, vector, self.targets) for event, vector in zip(events, vectors, strict=True)]
        settings = self.space.settings
        found = await retry_until_done(
            lambda: search_matches(index, requests, settings.match_k, settings.min_similarity),
            f"searching matches of {len(events)} vectors in index {index.name}",
            self.max_backoff_s,
        )
        records = [
            (match_event_key(self.space.name, event), match_event(self.space.name, event, matches))
            for event, matches in zip(events, found, strict=True)
            if matches
        ]
        if records:
            await retry_until_done(
                lambda: self.outputs.send_matches(records),
                f"sending {len(records)} match events",
                self.max_backoff_s,
            )
        finished = time.perf_counter()
        for pending, _ in embedded:
            pending.finish()
        logger.debug(
            "batch done lane=%s size=%d rejected=%d matches=%d encode_s=%.4f store_s=%.4f "
            "match_s=%.4f",
            self.name, len(batch), len(rejected), len(records), encoded - started,
            stored - encoded, finished - stored,
        )

    async def _embed(
        self, batch: list[PendingEvent]
    ) -> tuple[list[tuple[PendingEvent, np.ndarray]], list[tuple[PendingEvent, Rejection]]]:
        """Embed a batch; on failure split it in halves until the failing inputs stand alone.

        A forward pass can fail for the whole batch (out of memory on a large one) or
        because of one input; splitting keeps the good inputs of the batch and sends
        only an input that fails on its own to the dead-letter topic.
        """
        try:
            vectors = await self.space.encode(self.modality, [pending.content for pending in batch])
        except InputRejected as exc:
            if len(batch) == 1:
                return [], [(batch[0], self._rejection(batch[0], exc.reason, exc.detail))]
            logger.warning("batch rejected lane=%s size=%d, splitting it: %s", self.name, len(batch), exc)
        except Exception as exc:
            if len(batch) == 1:
                logger.exception("encoder failed lane=%s id=%s", self.name, batch[0].event.id)
                detail = f"{type(exc).__name__}: {exc}"
                return [], [(batch[0], self._rejection(batch[0], "encoder_failed", detail))]
            logger.warning(
                "encoder failed lane=%s size=%d, splitting the batch: %s: %s",
                self.name, len(batch), type(exc).__name__, exc,
            )
        else:
            return list(zip(batch, vectors, strict=True)), []
        middle = len(batch) // 2
        left_embedded, left_rejected = await self._embed(batch[:middle])
        right_embedded, right_rejected = await self._embed(batch[middle:])
        return left_embedded + right_embedded, left_rejected + right_rejected

    def _rejection(self, pending: PendingEvent, reason: str, detail: str) -> Rejection:
        return Rejection(reason, detail, pending.event.position, pending.event.id, self.space.name)

    async def _deadletter(self, pending: PendingEvent, rejection: Rejection) -> None:
        self.rejections.warn(rejection)
        await retry_until_done(
            lambda: self.outputs.send_deadletter(rejection, pending.raw_key, pending.raw_value),
            f"sending a dead-letter record for id {pending.event.id!r}",
            self.max_backoff_s,
        )
        pending.finish()
