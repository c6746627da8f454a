"""Admission: validate and decode each input record, then hand it to the lanes of its modality."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor

from encoders.decoding import decode_audio, decode_image, decode_text
from encoders.errors import InputRejected
from encoders.modality import Modality
from streams.deadletter import Rejection, RejectionLog
from streams.events import EventLimits, InputEvent, InvalidEvent, SourcePosition, parse_record
from streams.lane import Lane
from streams.outputs import Outputs
from streams.pending import PendingEvent
from streams.retry import retry_until_done

logger = logging.getLogger(__name__)


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
        max_backoff_s: float,
    ) -> None:
        self.lanes = lanes
        self.outputs = outputs
        self.rejections = rejections
        self.limits = limits
        self.max_image_pixels = max_image_pixels
        self.max_audio_seconds = max_audio_seconds
        self.decode_executor = decode_executor
        self.max_backoff_s = max_backoff_s

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
        lanes = self.lanes.get(modality, ())
        try:
            event = parse_record(modality, key, value, position, record_timestamp_s, self.limits)
            content = await self._decode(event)
        except InvalidEvent as exc:
            await self._reject(Rejection(exc.reason, exc.detail, position, exc.event_id), key, value)
            on_done()
            return
        except InputRejected as exc:
            await self._reject(Rejection(exc.reason, exc.detail, position, event.id), key, value)
            on_done()
            return
        if not lanes:
            # The worker subscribes only to topics of modalities that some space embeds.
            raise RuntimeError(f"no space embeds {modality} records, but one arrived at {position}")
        pending = PendingEvent(event, content, key, value, len(lanes), on_done)
        for lane in lanes:
            await lane.put(pending)

    async def _decode(self, event: InputEvent) -> object:
        if event.modality is Modality.TEXT:
            return decode_text(str(event.payload), self.limits.max_text_chars)
        loop = asyncio.get_running_loop()
        data = bytes(event.payload) if isinstance(event.payload, bytes) else event.payload.encode()
        if event.modality is Modality.IMAGE:
            return await loop.run_in_executor(
                self.decode_executor, decode_image, data, self.max_image_pixels
            )
        return await loop.run_in_executor(
            self.decode_executor, decode_audio, data, self.max_audio_seconds
        )

    async def _reject(self, rejection: Rejection, key: bytes | None, value: bytes | None) -> None:
        self.rejections.warn(rejection)
        await retry_until_done(
            lambda: self.outputs.send_deadletter(rejection, key, value),
            f"sending a dead-letter record for {rejection.position}",
            self.max_backoff_s,
        )
