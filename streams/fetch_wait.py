"""A Faust app whose worker consumer takes its fetch wait from the settings.

Faust 0.15 builds its aiokafka consumer with ``fetch_max_wait_ms=1500`` and no
setting to change it. Apache Kafka responds to a fetch as soon as one byte is ready,
so there the value only paces idle polls. A broker that keeps a fetch over several
partitions waiting until the time runs out (the embedded Tansu does) adds the whole
wait to every record's latency. :class:`FetchWaitApp` builds the same
consumer and then sets the wait from ``kafka_fetch_max_wait_ms``.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

logger = logging.getLogger(__name__)

# The AIOKafkaConsumer attribute its fetcher reads the wait from when it starts.
CONSUMER_WAIT_ATTRIBUTE = "_fetch_max_wait_ms"


class FetchWaitConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread with the app's fetch wait."""

    def _create_worker_consumer(self, transport: faust_aiokafka.Transport) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        wait_ms = cast(FetchWaitApp, self.app).fetch_max_wait_ms
        set_fetch_max_wait(consumer, wait_ms)
        logger.info("kafka consumer created group=%s fetch_max_wait_ms=%d", self.app.conf.id, wait_ms)
        return consumer


class FetchWaitConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, running :class:`FetchWaitConsumerThread`."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return FetchWaitConsumerThread(self, loop=self.loop, beacon=self.beacon)


class FetchWaitTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with :class:`FetchWaitConsumer`."""

    Consumer = FetchWaitConsumer


class FetchWaitApp(faust.App):
    """A faust.App whose worker consumer waits at most ``fetch_max_wait_ms`` per fetch."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int, **kwargs: Any) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> faust_aiokafka.Transport:
        return FetchWaitTransport(self.conf.broker_consumer, self)


def set_fetch_max_wait(consumer: aiokafka.AIOKafkaConsumer, wait_ms: int) -> None:
    """Set the fetch wait of a consumer that has not started yet."""
    if not hasattr(consumer, CONSUMER_WAIT_ATTRIBUTE):
        raise RuntimeError(
            f"aiokafka {aiokafka.__version__} has no AIOKafkaConsumer.{CONSUMER_WAIT_ATTRIBUTE}; "
            "streams.fetch_wait supports aiokafka 0.14"
        )
    setattr(consumer, CONSUMER_WAIT_ATTRIBUTE, wait_ms)
