"""One of two workers in a consumer group is killed with SIGKILL, and the other takes over its partitions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from streams.devstack import StackEndpoints
from streams.topics import create_topics
from tests.faults.harness import (
    BATCH_DONE,
    WORKER_SETTINGS,
    Publisher,
    assigned_partitions,
    count_matches,
    event_ids,
    fault_space,
    stored_ids,
    text_record,
    wait_committed,
    wait_stored,
)
from tests.faults.outcome import check_invariant, wait_outcome
from tests.support import WorkerProcess, isolated_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

PARTITIONS = 4
EVENTS = 240
WAIT_S = 60.0


async def test_takeover_after_group_member_killed(
    stack: StackEndpoints, start_worker: Callable[..., WorkerProcess], fault_figures: Callable[..., None]
) -> None:
    space = fault_space("delay_ms=60")
    settings = isolated_settings(stack, [space], topic_partitions=PARTITIONS, **WORKER_SETTINGS)
    await create_topics(settings)
    ids = event_ids("group", EVENTS)
    seed = "group-seed"
    every_partition = set(range(PARTITIONS))

    victim = start_worker(settings, name="victim")
    survivor = start_worker(settings, name="survivor")

    async def split_between_both() -> bool:
        victim_share = assigned_partitions(victim.log_text(), settings.topic_text)
        survivor_share = assigned_partitions(survivor.log_text(), settings.topic_text)
        return bool(victim_share) and bool(survivor_share) and victim_share | survivor_share == every_partition

    await survivor.wait_for(split_between_both, WAIT_S, "both workers to share the partitions")
    victim_share = assigned_partitions(victim.log_text(), settings.topic_text)
    assert not victim_share & assigned_partitions(survivor.log_text(), settings.topic_text)

    async with Publisher(settings) as publisher:
        await publisher.publish([text_record(seed)])
        await wait_stored(survivor, settings, 1, WAIT_S)
        publishing = asyncio.create_task(publisher.publish_steadily(ids, chunk=12, pause_s=0.25))

        async def both_busy() -> bool:
            return count_matches(BATCH_DONE, victim.log_text()) >= 3 and len(await stored_ids(settings)) > EVENTS // 4

        await survivor.wait_for(both_busy, WAIT_S, "both workers to embed batches")
        victim.kill()
        killed_at = time.monotonic()
        stored_at_kill = len(await stored_ids(settings)) - 1
        await publishing

    async def survivor_owns_all() -> bool:
        return assigned_partitions(survivor.log_text(), settings.topic_text) == every_partition

    await survivor.wait_for(survivor_owns_all, WAIT_S, "the survivor to take over every partition")
    takeover_s = time.monotonic() - killed_at
    outcome = await wait_outcome(survivor, settings, ids, seed, WAIT_S)
    complete_s = time.monotonic() - killed_at
    await wait_committed(survivor, settings, publisher, WAIT_S)
    assert stored_at_kill < EVENTS, "every event was stored before the kill"

    counts = check_invariant(outcome, ids, seed)
    fault_figures(
        fault="one of two workers in a group killed with SIGKILL",
        **counts,
        victim_partitions=len(victim_share),
        stored_at_kill=stored_at_kill,
        takeover_s=round(takeover_s, 2),
        complete_s=round(complete_s, 2),
    )
