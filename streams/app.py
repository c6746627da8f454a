"""The Faust app: input topics, one agent per modality, and the output topics."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import faust

from encoders.modality import Modality
from streams.events import SourcePosition
from streams.fetch_wait import FetchWaitApp
from streams.kafka_security import faust_credentials
from streams.outputs import FaustOutputs
from streams.pipeline import Pipeline
from streams.settings import Settings

logger = logging.getLogger(__name__)

# Records waiting in one agent's stream buffer before Faust pauses fetching; the
# lanes' own bounded buffers hold the rest, so a small value keeps memory flat.
STREAM_BUFFER_MAXSIZE = 256


# Bytes beyond a dead-letter value that its request needs for the key, the headers
# (details are cut to 2,000 characters) and the record batch framing.
PRODUCER_REQUEST_HEADROOM_BYTES = 64 * 1024


def faust_broker_url(kafka_broker: str) -> str:
    """Return Faust's broker URL list for comma-separated host:port servers."""
    servers = [server.strip() for server in kafka_broker.split(",") if server.strip()]
    return ";".join(f"kafka://{server}" for server in servers)


def app_settings(settings: Settings) -> dict[str, Any]:
    """Return the faust.App keyword arguments for ``settings``."""
    return {
        "broker": faust_broker_url(settings.kafka_broker),
        "broker_credentials": faust_credentials(settings),
        "store": "memory://",
        "key_serializer": "raw",
        "value_serializer": "raw",
        "topic_partitions": settings.topic_partitions,
        "topic_replication_factor": settings.topic_replication_factor,
        "broker_commit_interval": settings.commit_interval_s,
        "consumer_auto_offset_reset": "earliest",
        "stream_buffer_maxsize": STREAM_BUFFER_MAXSIZE,
        # Every produced record waits for all in-sync replicas: a match event or
        # dead-letter record counts as sent, and its input committable, only then.
        "producer_acks": -1,
        # Room for a dead-letter copy of max_deadletter_bytes plus its key and headers.
        "producer_max_request_size": max(settings.max_deadletter_bytes + PRODUCER_REQUEST_HEADROOM_BYTES, 1 << 20),
        # The worker serves /metrics and its dashboard itself (streams.web), so Faust's
        # own web server stays off.
        "web_enabled": False,
        # A broker may hold a new member's JoinGroup for up to half the session
        # timeout (Tansu 0.6 does), so the session timeout bounds start-up time.
        "broker_session_timeout": settings.kafka_session_timeout_s,
        "broker_heartbeat_interval": settings.kafka_heartbeat_interval_s,
        "datadir": str(Path(settings.data_dir) / "faust"),
    }


def build_app(settings: Settings, pipeline: Pipeline) -> faust.App:
    """Return a Faust app whose agents feed ``pipeline`` and whose topics it sends to."""
    # env={} stops Faust from reading unprefixed variables such as WEB_PORT, which
    # would override these keyword arguments; Settings is the one place env is read.
    app = FetchWaitApp(
        settings.app_id, env={}, fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms, **app_settings(settings)
    )
    matches = app.topic(settings.topic_matches, key_serializer="raw", value_serializer="raw")
    deadletter = app.topic(settings.topic_deadletter, key_serializer="raw", value_serializer="raw")
    pipeline.outputs = FaustOutputs(matches, deadletter, settings.max_deadletter_bytes)

    async def highwaters() -> dict[tuple[str, int], int]:
        assigned = app.consumer.assignment()
        if not assigned:
            return {}
        return {(tp.topic, tp.partition): offset for tp, offset in (await app.consumer.highwaters(*assigned)).items()}

    pipeline.highwaters = highwaters

    # Faust sends the TP set as the second positional argument; its Signal type
    # declares receivers as (sender, *args), which mypy cannot match to these.
    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def log_revoked(app: faust.App, revoked: set[Any], **kwargs: Any) -> None:
        logger.info("rebalance: partitions revoked group=%s partitions=%s", settings.app_id, _partitions(revoked))

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def log_assigned(app: faust.App, assigned: set[Any], **kwargs: Any) -> None:
        logger.info("rebalance: partitions assigned group=%s partitions=%s", settings.app_id, _partitions(assigned))

    for modality in sorted(pipeline.modalities):
        topic = app.topic(settings.input_topic(modality), key_serializer="raw", value_serializer="raw")
        app.agent(topic, name=f"embed-{modality}")(_consumer(pipeline, modality))
        logger.info("subscribing modality=%s topic=%s", modality, topic.get_topic_name())

    async def declare_outputs() -> None:
        await matches.maybe_declare()
        await deadletter.maybe_declare()

    app.task(declare_outputs)
    return app


def _partitions(partitions: set[Any]) -> str:
    """Return topic[partition] names of Faust TPs, sorted, for a log line."""
    return ",".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions)) or "none"


def _consumer(pipeline: Pipeline, modality: Modality) -> Any:
    """Return the agent function of one input topic."""

    async def consume(stream: Any) -> None:  # faust.Stream; its StreamT protocol lacks noack()
        await pipeline.ready.wait()
        admission = pipeline.admission
        # Acks are manual: a record is acknowledged, and so its offset committable,
        # only when every space has stored its vector and sent its match event.
        async for event in stream.noack().events():
            message = event.message
            await admission.admit(
                modality,
                message.key,
                message.value,
                SourcePosition(message.topic, message.partition, message.offset),
                message.timestamp,
                event.ack,
            )

    consume.__name__ = f"embed_{modality}"
    return consume
