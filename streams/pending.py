"""An admitted input event on its way through one or more embedding spaces."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from streams.events import InputEvent


@dataclass(eq=False, slots=True)
class PendingEvent:
    """An event, its decoded content, its original record and the spaces still processing it.

    ``on_done`` runs once, when the last space has stored its vector and sent its
    match event (or dead-lettered it): only then may the record's offset be committed.
    """

    event: InputEvent
    content: object
    raw_key: bytes | None
    raw_value: bytes | None
    remaining: int
    on_done: Callable[[], None]
    # Kafka record timestamp, seconds since the epoch: the start of end-to-end latency.
    record_time: float
    # time.monotonic() when the event entered the lanes: the start of batch fill wait.
    admitted_at: float
    # Text snippet, image thumbnail data URL or audio summary; empty if previews are off.
    preview: str = ""

    def finish(self) -> None:
        """Record that one space is done with the event."""
        if self.remaining <= 0:
            raise RuntimeError(f"event {self.event.id!r} at {self.event.position} finished twice")
        self.remaining -= 1
        if self.remaining == 0:
            self.on_done()
