"""aiokafka producers and consumers for the CLI tools (the worker uses Faust's)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.kafka_security import aiokafka_security
from streams.settings import Settings

# Largest record the CLI producer sends, bytes; a photo as base64 JSON can reach
# a few MB. Brokers accept 1 MiB by default (message.max.bytes), so larger files
# need that raised on the broker and topic as well.
MAX_REQUEST_BYTES = 32 * 1024 * 1024


def producer(settings: Settings) -> AIOKafkaProducer:
    """Return an idempotent producer that waits for all in-sync replicas."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_broker,
        acks="all",
        max_request_size=MAX_REQUEST_BYTES,
        client_id="embedstream-cli",
        **aiokafka_security(settings),
    )


def consumer(settings: Settings, *topics: str, from_beginning: bool) -> AIOKafkaConsumer:
    """Return a consumer outside any group, which reads ``topics`` without committing."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka_broker,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        client_id="embedstream-cli",
        **aiokafka_security(settings),
    )
