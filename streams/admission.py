"""Admission: validate and decode each input record, then hand it to the lanes of its modality."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor

from encoders.decoding import decode_audio, decode_image, decode_text
from encoders.errors import InputRejected
from encoders.modality import Modality
from encoders.text_decoding import over_window_rejection
from encoders.tokenizing import TokenCount, TokenCounter
from streams.deadletter import Rejection, RejectionLog
from streams.events import EventLimits, InputEvent, InvalidEvent, SourcePosition, parse_record
from streams.lane import Lane
from streams.metrics import WorkerMetrics
from streams.outputs import Outputs
from streams.pending import PendingEvent
from streams.previews import preview_of, text_preview
from streams.retry import Retrier

logger = logging.getLogger(__name__)

# Texts up to this many characters are counted on the event loop, with a tokenizer
# copy per space (a sentence takes about 40 us), and longer ones on the decode threads.
INLINE_COUNT_MAX_CHARS = 1_000


class Admission:
    """Turns input records into pending events, or into dead-letter records with a reason.

    Media decoding runs on ``decode_executor`` so that the event loop never waits on it.
    """

    def __init__(
        self,
        lanes: Mapping[Modality, Sequence[Lane]],
        outputs: Outputs,
        rejections: RejectionLog,
        limits: EventLimits,
        max_image_pixels: int,
        max_audio_seconds: float,
        decode_executor: Executor,
        retrier: Retrier,
        metrics: WorkerMetrics,
        store_previews: bool,
    ) -> None:
        self.lanes = lanes
        self.outputs = outputs
        self.rejections = rejections
        self.limits = limits
        self.max_image_pixels = max_image_pixels
        self.max_audio_seconds = max_audio_seconds
        self.decode_executor = decode_executor
        self.retrier = retrier
        self.metrics = metrics
        self.store_previews = store_previews
        # Highest offset finished per (topic, partition), for the consumer lag gauge.
        self.finished_offsets: dict[tuple[str, int], int] = {}
        self.token_counters: dict[str, TokenCounter | None] = {
            lane.space.name: lane.space.encoder.token_counter() for lane in lanes.get(Modality.TEXT, ())
        }

    async def admit(
        self,
        modality: Modality,
        key: bytes | None,
        value: bytes | None,
        position: SourcePosition,
        record_timestamp_s: float | None,
        on_done: Callable[[], None],
    ) -> None:
        """Validate, decode and queue one record; ``on_done`` runs once it is fully handled."""
        self.metrics.events_consumed.labels(position.topic).inc()

        def done() -> None:
            partition = (position.topic, position.partition)
            self.finished_offsets[partition] = max(position.offset, self.finished_offsets.get(partition, -1))
            on_done()

        try:
            event = parse_record(modality, key, value, position, record_timestamp_s, self.limits)
        except InvalidEvent as exc:
            await self._reject(Rejection(exc.reason, exc.detail, position, exc.event_id), key, value)
            done()
            return
        try:
            content, preview = await self._decode(event)
        except InputRejected as exc:
            await self._reject(Rejection(exc.reason, exc.detail, position, event.id), key, value)
            done()
            return

        lanes = self.lanes.get(modality, ())
        if not lanes:
            # The worker subscribes only to topics of modalities that some space embeds.
            raise RuntimeError(f"no space embeds {modality} records, but one arrived at {position}")
        if isinstance(content, str):
            lanes = await self._fit_token_windows(event, content, lanes, key, value)
            if not lanes:
                done()
                return
        record_time = record_timestamp_s if record_timestamp_s is not None else time.time()
        pending = PendingEvent(
            event, content, key, value, len(lanes), done, record_time, time.monotonic(), preview
        )
        for lane in lanes:
            await lane.put(pending)

    async def _decode(self, event: InputEvent) -> tuple[object, str]:
        """Return the decoded content and its preview (empty when previews are off)."""
        if event.modality is Modality.TEXT:
            text = decode_text(str(event.payload), self.limits.max_text_chars)
            return text, text_preview(text) if self.store_previews else ""
        data = bytes(event.payload) if isinstance(event.payload, bytes) else event.payload.encode()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.decode_executor, self._decode_media, event.modality, data)

    async def _fit_token_windows(
        self, event: InputEvent, text: str, lanes: Sequence[Lane], key: bytes | None, value: bytes | None
    ) -> list[Lane]:
        """Return the lanes that embed ``text``, applying ``text_over_window`` to each space's window.

        A space rejects a text over its window only under "reject", and then the record
        goes to the dead-letter topic once for that space.
        """
        counts: list[TokenCount | None]
        if len(text) <= INLINE_COUNT_MAX_CHARS:
            counts = [self._count_in_place(lane, text) for lane in lanes]
        else:
            loop = asyncio.get_running_loop()
            counts = await loop.run_in_executor(self.decode_executor, _count_tokens, text, lanes)
        accepted: list[Lane] = []
        for lane, count in zip(lanes, counts, strict=True):
            if count is None or not count.over_window:
                accepted.append(lane)
                continue
            space = lane.space.name
            if self.limits.text_over_window == "reject":
                error = over_window_rejection(count)
                await self._reject(Rejection(error.reason, error.detail, event.position, event.id, space), key, value)
                continue
            self.metrics.texts_truncated.labels(space).inc()
            logger.debug(
                "text truncated to the token window id=%s space=%s tokens=%d window=%d",
                event.id, space, count.tokens, count.window,
            )
            accepted.append(lane)
        return accepted

    def _decode_media(self, modality: Modality, data: bytes) -> tuple[object, str]:
        content: object
        if modality is Modality.IMAGE:
            content = decode_image(data, self.max_image_pixels)
        else:
            content = decode_audio(data, self.max_audio_seconds)
        return content, preview_of(content) if self.store_previews else ""

    def _count_in_place(self, lane: Lane, text: str) -> TokenCount | None:
        counter = self.token_counters[lane.space.name]
        return counter.count(text) if counter is not None else None

    async def _reject(self, rejection: Rejection, key: bytes | None, value: bytes | None) -> None:
        self.rejections.warn(rejection)
        await self.retrier.run(
            lambda: self.outputs.send_deadletter(rejection, key, value),
            "produce", f"sending a dead-letter record for {rejection.position}",
        )
        self.metrics.events_deadlettered.labels(rejection.reason).inc()


def _count_tokens(text: str, lanes: Sequence[Lane]) -> list[TokenCount | None]:
    return [lane.space.encoder.count_text_tokens(text) for lane in lanes]
