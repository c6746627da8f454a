"""End-to-end pipeline figures: closed-loop throughput and open-loop latency through a worker."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.settings import Settings

# Seconds a worker may take to load its models and join its group.
WORKER_START_S = 120.0


class Worker:
    """An ``embedstream worker`` process for one benchmark run."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        env = {name: value for name, value in os.environ.items() if not name.startswith("EMBEDSTREAM_")}
        env.update(settings.environment())
        env["HF_HUB_OFFLINE"] = "1"
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def check_running(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"the worker exited with status {self.process.returncode}; see {self.log_path}")


@dataclass(frozen=True)
class Throughput:
    events: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.events / self.seconds


@dataclass(frozen=True)
class Latency:
    rate_per_s: float
    events: int
    received: int
    repeated: int
    p50_s: float
    p95_s: float
    p99_s: float


def text_event(text: str, sent_at: float) -> tuple[bytes, bytes]:
    event_id = uuid.uuid4().hex
    return event_id.encode(), orjson.dumps({"id": event_id, "text": text, "ts": sent_at})


def image_event(data: bytes, sent_at: float) -> tuple[bytes, bytes]:
    event_id = uuid.uuid4().hex
    encoded = base64.b64encode(data).decode("ascii")
    return event_id.encode(), orjson.dumps({"id": event_id, "data": encoded, "ts": sent_at})


def make_events(payloads: Sequence[str] | Sequence[bytes]) -> Callable[[int], tuple[bytes, bytes]]:
    """Return a function that builds the i-th event from ``payloads``: texts or image files' bytes."""

    def event(i: int) -> tuple[bytes, bytes]:
        payload = payloads[i % len(payloads)]
        if isinstance(payload, bytes):
            return image_event(payload, time.time())
        return text_event(payload, time.time())

    return event


async def _match_consumer(settings: Settings) -> AIOKafkaConsumer:
    """Return a consumer of the match topic positioned at its end."""
    consumer = AIOKafkaConsumer(
        settings.topic_matches,
        bootstrap_servers=settings.kafka_broker,
        group_id=None,
        auto_offset_reset="latest",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
    )
    await consumer.start()
    deadline = time.monotonic() + 30
    # aiokafka offers no event for the first assignment of a group-less subscription.
    while not consumer.assignment():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no partitions of {settings.topic_matches} were assigned within 30 s")
        await asyncio.sleep(0.05)
    await consumer.seek_to_end()
    for partition in consumer.assignment():
        await consumer.position(partition)
    return consumer


@dataclass
class Arrivals:
    """Match events consumed for the events a run sent: the arrival of each one's first, and the count of repeats.

    Match events for other events (a previous run's stragglers) are left out.
    """

    sent: set[str] = field(default_factory=set)
    first: dict[str, tuple[float, float]] = field(default_factory=dict)
    repeated: int = 0

    def add(self, at: float, value: bytes) -> None:
        match = orjson.loads(value)
        source = match["source"]["id"]
        if source not in self.sent:
            return
        if source in self.first:
            self.repeated += 1
        else:
            self.first[source] = (at, float(match["event_time"]))

    def __len__(self) -> int:
        return len(self.first)


async def _receive(
    consumer: AIOKafkaConsumer, arrivals: Arrivals, count: int, deadline: float, worker: Worker
) -> Arrivals:
    """Consume match events until ``count`` sent events have one, or until ``deadline``."""
    while len(arrivals) < count and time.monotonic() < deadline:
        worker.check_running()
        batch = await consumer.getmany(timeout_ms=200)
        now = time.time()
        for records in batch.values():
            for record in records:
                arrivals.add(now, record.value)
    return arrivals


async def warm_up(
    settings: Settings, worker: Worker, texts: Sequence[str] | Sequence[bytes], count: int = 64, topic: str = ""
) -> None:
    """Send events until the worker emits match events, which shows its models are loaded and its group joined."""
    consumer = await _match_consumer(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_broker, linger_ms=5, max_request_size=8 << 20)
    await producer.start()
    try:
        event = make_events(texts)
        arrivals = Arrivals()
        for i in range(count):
            key, value = event(i)
            arrivals.sent.add(key.decode())
            await producer.send(topic or settings.topic_text, value, key=key)
        await producer.flush()
        # The first event stored in an empty index has nothing to match, so it may have no match event.
        expected = count - 1
        received = await _receive(consumer, arrivals, expected, time.monotonic() + WORKER_START_S, worker)
        if len(received) < expected:
            raise RuntimeError(
                f"the worker emitted match events for {len(received)} of {count} warm-up events; "
                f"see {worker.log_path}"
            )
    finally:
        await producer.stop()
        await consumer.stop()


async def measure_throughput(
    settings: Settings, worker: Worker, texts: Sequence[str] | Sequence[bytes], count: int, topic: str = ""
) -> Throughput:
    """Publish ``count`` events at once and time until every match event is consumed."""
    consumer = await _match_consumer(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_broker, linger_ms=5, max_request_size=8 << 20)
    await producer.start()
    try:
        started = time.time()
        deliveries = []
        event = make_events(texts)
        arrivals = Arrivals()
        for i in range(count):
            key, value = event(i)
            arrivals.sent.add(key.decode())
            deliveries.append(await producer.send(topic or settings.topic_text, value, key=key))
        await asyncio.gather(*deliveries)
        received = await _receive(consumer, arrivals, count, time.monotonic() + 600, worker)
    finally:
        await producer.stop()
        await consumer.stop()
    if len(received) < count:
        raise RuntimeError(f"only {len(received)} of {count} match events arrived; see {worker.log_path}")
    return Throughput(count, max(at for at, _ in received.first.values()) - started)


async def measure_latency(
    settings: Settings, worker: Worker, texts: Sequence[str], rate_per_s: float, seconds: float
) -> Latency:
    """Publish at a fixed rate (open loop: sends never wait for the pipeline) and time each event."""
    consumer = await _match_consumer(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_broker, linger_ms=0)
    await producer.start()
    count = int(rate_per_s * seconds)
    try:
        arrivals = Arrivals()
        receiving = asyncio.create_task(
            _receive(consumer, arrivals, count, time.monotonic() + seconds + 120, worker)
        )
        started = time.monotonic()
        for i in range(count):
            delay = started + i / rate_per_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            key, value = text_event(texts[i % len(texts)], time.time())
            arrivals.sent.add(key.decode())
            await producer.send(settings.topic_text, value, key=key)
        received = await receiving
    finally:
        await producer.stop()
        await consumer.stop()
    latencies = sorted(at - event_time for at, event_time in received.first.values())
    if not latencies:
        raise RuntimeError(f"no match event arrived at {rate_per_s}/s; see {worker.log_path}")

    def percentile(fraction: float) -> float:
        return latencies[min(len(latencies) - 1, int(fraction * len(latencies)))]

    return Latency(
        rate_per_s, count, len(latencies), received.repeated,
        percentile(0.50), percentile(0.95), percentile(0.99),
    )
