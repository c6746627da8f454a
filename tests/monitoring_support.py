"""Helpers for the tests of the worker's web server, dashboard and ``embedstream top``."""

from __future__ import annotations

import asyncio
import functools
import importlib.resources
import os
import shutil
import socket
import urllib.request
import uuid
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from encoders.modality import Modality
from streams.devstack import StackEndpoints
from streams.settings import Settings, SpaceSettings
from tests.support import isolated_settings

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"

# Prefix of every event id these tests publish, so a test can spot ids in label values.
EVENT_ID_PREFIX = "evt-"

SENTENCES = (
    "A red fox jumps over the sleeping dog.",
    "Fresh bread cools on the kitchen table.",
    "The night train leaves the station at ten.",
    "Waves break on the rocks below the lighthouse.",
)

# Photos from scikit-image's bundled data, which the test extras install.
SKIMAGE_DATA = Path(str(importlib.resources.files("skimage") / "data"))
PHOTOS = ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png", "hubble_deep_field.jpg")

# Rate of the continuous publisher: one text every PUBLISH_INTERVAL_S, and one image
# every IMAGE_EVERY texts, slow enough for two cores that also run a browser.
PUBLISH_INTERVAL_S = 0.25
IMAGE_EVERY = 4


def free_port() -> int:
    """Return a loopback port that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def monitoring_settings(stack: StackEndpoints, web_port: int | None = None) -> Settings:
    """Return settings for a worker with the web server on a free port and the fast fake encoder.

    Every input after the first matches an earlier one (any similarity counts, same
    modality included), so the match feed fills from the second event on.
    """
    space = SpaceSettings(
        name="hashed", model="hash:16", min_similarity=-1.0, match_same_modality=True, match_k=2, max_wait_ms=20
    )
    return isolated_settings(
        stack,
        [space],
        kafka_session_timeout_s=2.0,
        kafka_heartbeat_interval_s=0.5,
        monitor_interval_s=0.5,
        web_enabled=True,
        web_host="127.0.0.1",
        web_port=free_port() if web_port is None else web_port,
    )


def base_url(settings: Settings) -> str:
    return f"http://{settings.web_host}:{settings.web_port}"


def require_tool(name: str, path: str | None = None) -> str:
    """Return the tool's path; skip the test without it, or fail it where CI is set."""
    if path is None:
        found = shutil.which(name)
    else:
        found = path if os.access(path, os.X_OK) else None
    if found:
        return found
    message = f"{path or name} is missing; install it with apt-get install chromium prometheus (.ci/run does)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run this test")
    pytest.skip(message)


def fetch(url: str, timeout_s: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        body: bytes = response.read()
        return body


def text_record(index: int) -> tuple[bytes, bytes]:
    event_id = f"{EVENT_ID_PREFIX}{uuid.uuid4().hex[:10]}"
    document = {"id": event_id, "text": f"{SENTENCES[index % len(SENTENCES)]} Number {index}."}
    return event_id.encode(), orjson.dumps(document)


@functools.cache
def photo(name: str) -> bytes:
    return (SKIMAGE_DATA / name).read_bytes()


def image_record(index: int) -> tuple[bytes, bytes]:
    """Return a raw image event (the file bytes as the value, the id in the key)."""
    event_id = f"{EVENT_ID_PREFIX}{uuid.uuid4().hex[:10]}"
    return event_id.encode(), photo(PHOTOS[index % len(PHOTOS)])


class Publisher:
    """Publishes text and image events at a steady rate until stopped; ``ids`` lists every id sent."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ids: list[str] = []
        self._images_sent = 0
        self._task: asyncio.Task[None] | None = None
        self._producer: AIOKafkaProducer | None = None

    async def send_batch(self, texts: int, images: int = 0) -> None:
        """Send ``texts`` text and ``images`` image events now and wait for their delivery."""
        producer = await self._started_producer()
        deliveries = []
        for _ in range(texts):
            key, value = text_record(len(self.ids))
            self.ids.append(key.decode())
            deliveries.append(await producer.send(self.settings.input_topic(Modality.TEXT), value, key=key))
        for _ in range(images):
            key, value = image_record(self._images_sent)
            self._images_sent += 1
            self.ids.append(key.decode())
            deliveries.append(await producer.send(self.settings.input_topic(Modality.IMAGE), value, key=key))
        await asyncio.gather(*deliveries)

    def start(self) -> None:
        self._task = asyncio.create_task(self._publish_steadily())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._producer is not None:
            await self._producer.stop()

    async def _started_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            self._producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_broker, acks="all")
            await self._producer.start()
        return self._producer

    async def _publish_steadily(self) -> None:
        sent = 0
        while True:
            await self.send_batch(1, 1 if sent % IMAGE_EVERY == 0 else 0)
            sent += 1
            await asyncio.sleep(PUBLISH_INTERVAL_S)
