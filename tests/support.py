"""Helpers for tests that run workers on the embedded stack: processes, topics, waits."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from streams.devstack import StackEndpoints
from streams.settings import Settings, SpaceSettings


def unique_name(prefix: str) -> str:
    """Return ``prefix`` with a random suffix, for topics, groups and key prefixes."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def isolated_settings(stack: StackEndpoints, spaces: Sequence[SpaceSettings], **overrides: object) -> Settings:
    """Return settings with topics, consumer group and Redis keys no other test uses."""
    tag = uuid.uuid4().hex[:8]
    values: dict[str, object] = {
        "kafka_broker": stack.kafka_broker,
        "redis_url": stack.redis_url,
        "app_id": f"test-{tag}",
        "topic_text": f"text-{tag}",
        "topic_image": f"image-{tag}",
        "topic_audio": f"audio-{tag}",
        "topic_matches": f"matches-{tag}",
        "topic_deadletter": f"deadletter-{tag}",
        "topic_partitions": 2,
        "key_prefix": f"t{tag}",
        "web_enabled": False,
        "warning_interval_s": 0.0,
        "spaces": tuple(spaces),
        "data_dir": tempfile.mkdtemp(prefix=f"embedstream-{tag}-"),
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


class WorkerProcess:
    """An ``embedstream worker`` child process with its output in a log file."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = {name: value for name, value in os.environ.items() if not name.startswith("EMBEDSTREAM_")}
        env.update(self.settings.environment())
        env["HF_HUB_OFFLINE"] = "1"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    async def wait_for(self, condition: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
        """Wait for ``condition`` like wait_until, but fail at once if the worker exits."""

        async def holds() -> bool:
            if not self.running:
                raise AssertionError(f"the worker exited while waiting for {what}:\n{self.log_tail()}")
            return await condition()

        try:
            await wait_until(holds, timeout_s, what)
        except AssertionError as exc:
            if "the worker exited" in str(exc):
                raise
            raise AssertionError(f"{exc}; worker log tail:\n{self.log_tail()}") from None

    def wait_exit(self, timeout_s: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout_s)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """Stop with SIGTERM, then SIGKILL after ``timeout_s``; return the exit status."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def kill(self) -> None:
        """Kill with SIGKILL: no shutdown, no final commit."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()


async def wait_until(
    condition: Callable[[], Awaitable[bool]], timeout_s: float, what: str, interval_s: float = 0.2
) -> None:
    """Poll ``condition`` until it holds; raise AssertionError naming ``what`` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


async def send_records(
    settings: Settings, topic: str, records: Sequence[tuple[bytes | None, bytes | None]]
) -> None:
    """Produce (key, value) records and wait for every delivery."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_broker, acks="all", max_request_size=32 << 20)
    await producer.start()
    try:
        deliveries = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*deliveries)
    finally:
        await producer.stop()


async def read_records(settings: Settings, topic: str, count: int, timeout_s: float) -> list[ConsumerRecord]:
    """Read ``topic`` from the start until ``count`` records arrived or the timeout passed."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_broker, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for partition_records in batch.values():
                records.extend(partition_records)
    finally:
        await consumer.stop()
    return records


def redis_client(settings: Settings) -> aioredis.Redis:
    return aioredis.Redis.from_url(settings.redis_url, decode_responses=False)


async def stored_keys(settings: Settings, space: str) -> list[str]:
    """Return the Redis keys of every vector stored for ``space``."""
    client = redis_client(settings)
    try:
        keys = [key.decode() async for key in client.scan_iter(match=f"{settings.key_prefix}:{space}:*", count=1000)]
    finally:
        await client.aclose()
    return sorted(keys)
