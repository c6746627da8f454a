"""The worker's Kafka consumer takes its fetch wait from the settings, not Faust's 1,500 ms."""

from __future__ import annotations

from typing import cast

import aiokafka
import pytest

from streams.fetch_wait import FetchWaitApp, FetchWaitConsumer, FetchWaitTransport, set_fetch_max_wait


async def test_consumer_uses_configured_fetch_wait() -> None:
    app = FetchWaitApp("fetch-wait-check", env={}, broker="kafka://127.0.0.1:1", fetch_max_wait_ms=37)
    consumer = app.consumer
    assert isinstance(consumer, FetchWaitConsumer)

    thread = consumer._new_consumer_thread()
    kafka_consumer = thread._create_worker_consumer(cast(FetchWaitTransport, app.transport))
    try:
        assert kafka_consumer._fetch_max_wait_ms == 37
        assert kafka_consumer._group_id == "fetch-wait-check"
    finally:
        await kafka_consumer.stop()


def test_fetch_wait_needs_aiokafka_attribute() -> None:
    class OtherConsumer:
        pass

    with pytest.raises(RuntimeError, match=aiokafka.__version__):
        set_fetch_max_wait(cast(aiokafka.AIOKafkaConsumer, OtherConsumer()), 50)
