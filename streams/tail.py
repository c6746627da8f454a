"""Following the output topics from a terminal: match events and dead-letter records."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

import orjson
from aiokafka.structs import ConsumerRecord

from streams.deadletter import parse_deadletter_headers
from streams.kafka_clients import consumer
from streams.settings import Settings

OutputT = TypeVar("OutputT")

# Characters of a dead-letter record's original value shown in its summary line.
PREVIEW_CHARS = 80


def format_match(record: ConsumerRecord) -> str:
    """Return one readable line per match event, then one indented line per match."""
    try:
        event = orjson.loads(record.value)
        source = event["source"]
        lines = [f"[{event['space']}] {source['modality']} {source['id']!r} matches:"]
        for match in event["matches"]:
            lines.append(
                f"    {match['similarity']:.3f}  {match['modality']:<5} {match['id']!r}"
                f"  {orjson.dumps(match['metadata']).decode() if match['metadata'] else ''}"
            )
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        return f"unreadable match event at offset {record.offset}: {exc}"
    return "\n".join(lines)


def format_deadletter(record: ConsumerRecord) -> str:
    """Return a one-line summary of a dead-letter record."""
    headers = parse_deadletter_headers(list(record.headers or []))
    value = record.value or b""
    preview = value[:PREVIEW_CHARS].decode("utf-8", "replace").replace("\n", " ")
    return (
        f"{headers.get('reason', '?')}: id={headers.get('id')!r} "
        f"from {headers.get('source.topic')}[{headers.get('source.partition')}]"
        f"@{headers.get('source.offset')} - {headers.get('detail', '')} "
        f"| {len(value)} bytes: {preview!r}"
    )


async def tail(
    settings: Settings,
    topic: str,
    formatter: Callable[[ConsumerRecord], OutputT],
    *,
    from_beginning: bool,
    max_records: int | None,
    timeout_s: float | None,
    emit: Callable[[OutputT], None] = print,
) -> int:
    """Emit each record of ``topic`` as it arrives; stop after ``max_records`` or ``timeout_s``."""
    client = consumer(settings, topic, from_beginning=from_beginning)
    try:
        await client.start()
    except BaseException:
        await client.stop()
        raise
    count = 0
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        while max_records is None or count < max_records:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            batch = await client.getmany(timeout_ms=int(min(remaining or 1.0, 1.0) * 1000))
            for records in batch.values():
                for record in records:
                    emit(formatter(record))
                    count += 1
            await asyncio.sleep(0)
    finally:
        await client.stop()
    return count
