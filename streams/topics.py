"""Creating the worker's topics ahead of time, for the demo, the tests and operators."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from encoders.modality import Modality
from streams.kafka_security import aiokafka_security
from streams.settings import Settings

logger = logging.getLogger(__name__)


def topic_names(settings: Settings) -> list[str]:
    """Return the input topics of every modality and the two output topics."""
    return [settings.input_topic(modality) for modality in Modality] + [
        settings.topic_matches,
        settings.topic_deadletter,
    ]


async def create_topics(settings: Settings) -> list[str]:
    """Create the missing topics with the configured partitions; return those created."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_broker, client_id="embedstream-admin", **aiokafka_security(settings)
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in topic_names(settings) if name not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(name, settings.topic_partitions, settings.topic_replication_factor)
                    for name in missing
                ]
            )
            logger.info("created topics %s partitions=%d", missing, settings.topic_partitions)
    finally:
        await admin.close()
    return missing
