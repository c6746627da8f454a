"""The broker unreachable for 20 s while a worker embeds a stream, through a proxy that is cut.

A Tansu restart would lose every topic and offset (its only storage is memory), so
the broker keeps running and the worker's connections to it are cut instead.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streams.devstack import EmbeddedStack, StackEndpoints
from streams.topics import create_topics
from tests.faults.harness import (
    WORKER_SETTINGS,
    Publisher,
    event_ids,
    fault_space,
    stored_ids,
    text_record,
    wait_committed,
    wait_progress,
    wait_stored,
)
from tests.faults.outcome import check_invariant, wait_outcome
from tests.faults.proxy import LOOPBACK_HOST, TcpProxy
from tests.support import WorkerProcess, isolated_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

OUTAGE_S = 20.0
EVENTS = 200
EVENTS_AFTER = 40
# Seconds into the outage at which the stored vectors are counted, and counted again.
EARLY_CHECK_S = 3.0
LATE_CHECK_S = 18.0
WAIT_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def proxied_stack(tmp_path: Path) -> Iterator[tuple[StackEndpoints, TcpProxy]]:
    """A stack of this test alone whose broker every client reaches through a proxy."""
    kafka_port = free_port()
    with TcpProxy(kafka_port) as proxy:
        embedded = EmbeddedStack(tmp_path / "stack", kafka_port=kafka_port, advertised_kafka_port=proxy.port)
        with embedded:
            yield embedded.endpoints, proxy


async def sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


async def test_reconnect_after_broker_unreachable(
    proxied_stack: tuple[StackEndpoints, TcpProxy],
    start_worker: Callable[..., WorkerProcess],
    fault_figures: Callable[..., None],
) -> None:
    endpoints, proxy = proxied_stack
    space = fault_space("delay_ms=100")
    settings = isolated_settings(endpoints, [space], **WORKER_SETTINGS)
    await create_topics(settings)
    ids = event_ids("broker", EVENTS)
    seed = "broker-seed"

    # Most events are published before the cut and the rest after it, so the worker
    # needs new fetches, match deliveries and commits once the broker is back.
    before, after = ids[: EVENTS - EVENTS_AFTER], ids[EVENTS - EVENTS_AFTER :]
    publisher = Publisher(settings)

    worker = start_worker(settings)
    async with publisher:
        await publisher.publish([text_record(seed)])
        await wait_stored(worker, settings, 1, WAIT_S)
        await publisher.publish([text_record(event_id) for event_id in before])
    await wait_stored(worker, settings, 1 + EVENTS // 5, WAIT_S)

    await asyncio.to_thread(proxy.cut)
    cut_at = time.monotonic()
    await sleep_until(cut_at + EARLY_CHECK_S)
    stored_early = len(await stored_ids(settings))
    await sleep_until(cut_at + LATE_CHECK_S)
    stored_late = len(await stored_ids(settings))
    await sleep_until(cut_at + OUTAGE_S)
    assert worker.running, f"the worker exited during the broker outage:\n{worker.log_tail()}"
    await asyncio.to_thread(proxy.restore)
    restored_at = time.monotonic()

    recovery_s = await wait_progress(worker, settings, WAIT_S)
    async with publisher:
        await publisher.publish([text_record(event_id) for event_id in after])
    outcome = await wait_outcome(worker, settings, ids, seed, WAIT_S)
    complete_s = time.monotonic() - restored_at
    await wait_committed(worker, settings, publisher, WAIT_S)

    # Without the broker, no match event is delivered, so the lane stalls and stores nothing more.
    assert stored_late == stored_early, f"{stored_late - stored_early} vectors stored while the broker was away"
    assert stored_late - 1 < EVENTS, "every event was stored before the outage"
    rebalances = len(re.findall(r"rebalance: partitions assigned", worker.log_text()))

    counts = check_invariant(outcome, ids, seed)
    fault_figures(
        fault=f"broker unreachable for {OUTAGE_S:.0f} s (every connection cut and refused)",
        **counts,
        stored_at_restore=stored_late - 1,
        rebalances=rebalances,
        down_s=round(restored_at - cut_at, 2),
        recovery_s=round(recovery_s, 2),
        complete_s=round(complete_s, 2),
    )
