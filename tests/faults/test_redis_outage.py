"""Redis stopped for 20 s while a worker embeds a stream, then started again with its data."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from streams.devstack import EmbeddedStack
from streams.topics import create_topics
from tests.faults.harness import (
    FORWARD_STARTED,
    RETRY,
    WORKER_SETTINGS,
    Publisher,
    committed_offsets,
    count_matches,
    event_ids,
    fault_space,
    ids_below,
    stored_ids,
    text_record,
    wait_committed,
    wait_progress,
    wait_stored,
)
from tests.faults.outcome import check_invariant, wait_outcome
from tests.support import WorkerProcess, isolated_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

OUTAGE_S = 20.0
# Cap of the worker's retry backoff, lower than the default 10 s so that the worker
# reaches Redis again within seconds of its return.
BACKOFF_CAP_S = 2.0
# First pause of streams.retry.Retrier.
FIRST_BACKOFF_S = 0.1
# Events published before, during and after the outage.
EVENTS_PER_PHASE = 80
# Seconds into the outage at which the worker's progress is read, and read again.
EARLY_CHECK_S = 3.0
LATE_CHECK_S = 18.0
WAIT_S = 60.0


async def sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


async def test_resume_after_redis_stopped(
    persistent_stack: EmbeddedStack,
    start_worker: Callable[..., WorkerProcess],
    fault_figures: Callable[..., None],
) -> None:
    space = fault_space("delay_ms=100")
    settings = isolated_settings(
        persistent_stack.endpoints, [space], retry_backoff_max_s=BACKOFF_CAP_S, **WORKER_SETTINGS
    )
    await create_topics(settings)
    ids = event_ids("redis", 3 * EVENTS_PER_PHASE)
    before, during, after = (ids[i : i + EVENTS_PER_PHASE] for i in range(0, len(ids), EVENTS_PER_PHASE))
    seed = "redis-seed"

    worker = start_worker(settings)
    async with Publisher(settings) as publisher:
        await publisher.publish([text_record(seed)])
        await wait_stored(worker, settings, 1, WAIT_S)
        await publisher.publish([text_record(event_id) for event_id in before])
        await wait_stored(worker, settings, 1 + EVENTS_PER_PHASE // 2, WAIT_S)

        await asyncio.to_thread(persistent_stack.stop_redis)
        stopped_at = time.monotonic()
        publishing = asyncio.create_task(publisher.publish_steadily(during, chunk=10, pause_s=1.5))

        await sleep_until(stopped_at + EARLY_CHECK_S)
        committed_early = await committed_offsets(settings)
        passes_early = count_matches(FORWARD_STARTED, worker.log_text())
        await sleep_until(stopped_at + LATE_CHECK_S)
        committed_late = await committed_offsets(settings)
        passes_late = count_matches(FORWARD_STARTED, worker.log_text())
        await publishing
        published_late = publisher.end_offsets()

        await sleep_until(stopped_at + OUTAGE_S)
        assert worker.running, f"the worker exited during the Redis outage:\n{worker.log_tail()}"
        await asyncio.to_thread(persistent_stack.start_redis)
        restored_at = time.monotonic()
        # Read before the worker's next retry (at most BACKOFF_CAP_S away) can store more,
        # so this is close to what Redis held when it stopped.
        stored_at_restart = await stored_ids(settings)
        recovery_s = await wait_progress(worker, settings, WAIT_S)

        await publisher.publish_steadily(after, chunk=20, pause_s=0.2)
        outcome = await wait_outcome(worker, settings, ids, seed, WAIT_S)
        complete_s = time.monotonic() - restored_at
        await wait_committed(worker, settings, publisher, WAIT_S)

    # The worker took no new batch and committed nothing during the outage, while the
    # topic kept growing, and its committed offsets never passed the stored vectors.
    assert passes_late == passes_early, f"{passes_late - passes_early} forward passes ran without Redis"
    assert committed_late == committed_early, f"offsets moved without Redis: {committed_early} -> {committed_late}"
    backlog = sum(published_late.values()) - sum(committed_late.values())
    assert backlog >= EVENTS_PER_PHASE, f"only {backlog} records waited, so the stall shows nothing"
    below_commit = ids_below(publisher.positions, committed_late)
    assert below_commit <= stored_at_restart, (
        f"offsets committed past records never stored: {sorted(below_commit - stored_at_restart)[:10]}"
    )

    # Each failed attempt was logged, with a pause doubling from FIRST_BACKOFF_S up to the cap.
    retries = [match.groupdict() for match in RETRY.finditer(worker.log_text())]
    assert len(retries) >= 5, f"only {len(retries)} retries logged:\n{worker.log_tail()}"
    for retry in retries:
        expected = min(FIRST_BACKOFF_S * 2 ** (int(retry["attempt"]) - 1), BACKOFF_CAP_S)
        assert float(retry["backoff"]) == pytest.approx(expected, abs=0.05), retry
    backoffs = [float(retry["backoff"]) for retry in retries]
    assert max(backoffs) == BACKOFF_CAP_S
    stalled_on = {retry["what"].split(" ", 1)[0] for retry in retries}
    assert stalled_on & {"storing", "searching"}, f"no Redis operation was retried: {stalled_on}"

    counts = check_invariant(outcome, ids, seed)
    fault_figures(
        fault=f"Redis stopped for {OUTAGE_S:.0f} s (append-only file on), then started",
        **counts,
        retries_logged=len(retries),
        max_backoff_s=max(backoffs),
        backlog_during_outage=backlog,
        down_s=round(restored_at - stopped_at, 2),
        recovery_s=round(recovery_s, 2),
        complete_s=round(complete_s, 2),
    )
