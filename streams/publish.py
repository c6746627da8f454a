"""Publishing files as input events: the producer side of the CLI."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson

from encoders.modality import Modality
from streams.kafka_clients import producer
from streams.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """An input record ready to send: key, value, and the event id it carries."""

    event_id: str
    key: bytes
    value: bytes


def text_events(path: Path, metadata: Mapping[str, str | int | float]) -> Iterator[OutgoingRecord]:
    """Yield one text event per non-empty line of ``path``; ids are FILE-STEM:LINE."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            text = line.strip()
            if not text:
                continue
            event_id = f"{path.stem}:{number}"
            yield json_record(event_id, {"text": text}, metadata)


def media_event(
    path: Path, metadata: Mapping[str, str | int | float], *, raw: bool
) -> OutgoingRecord:
    """Return one image or audio event for a file; its id is the file name."""
    data = path.read_bytes()
    event_id = path.name
    if raw:
        return OutgoingRecord(event_id, event_id.encode(), data)
    return json_record(event_id, {"data": base64.b64encode(data).decode("ascii")}, metadata)


def json_record(
    event_id: str, payload: Mapping[str, str], metadata: Mapping[str, str | int | float]
) -> OutgoingRecord:
    """Return a JSON input event with the current time as its event time."""
    document = {"id": event_id, **payload, "ts": time.time()}
    if metadata:
        document["metadata"] = dict(metadata)
    return OutgoingRecord(event_id, event_id.encode(), orjson.dumps(document))


def records_for_files(
    modality: Modality, paths: list[Path], metadata: Mapping[str, str | int | float], *, raw: bool
) -> list[OutgoingRecord]:
    """Return the records for ``paths``; raise FileNotFoundError naming a missing one."""
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
    if modality is Modality.TEXT:
        return [record for path in paths for record in text_events(path, metadata)]
    return [media_event(path, metadata, raw=raw) for path in paths]


async def publish(settings: Settings, modality: Modality, records: list[OutgoingRecord]) -> int:
    """Send records to the modality's input topic and wait for every delivery."""
    topic = settings.input_topic(modality)
    client = producer(settings)
    try:
        await client.start()
    except BaseException:
        await client.stop()
        raise
    try:
        deliveries = [await client.send(topic, record.value, key=record.key) for record in records]
        for delivery in deliveries:
            await delivery
    finally:
        await client.stop()
    logger.info("published topic=%s count=%d", topic, len(records))
    return len(records)
