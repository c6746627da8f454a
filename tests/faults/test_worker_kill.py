"""A worker killed with SIGKILL while a batch is in its forward pass, then started again."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from streams.devstack import StackEndpoints
from streams.topics import create_topics
from tests.faults.harness import (
    FORWARD_FINISHED,
    FORWARD_STARTED,
    POLL_INTERVAL_S,
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
from tests.support import WorkerProcess, isolated_settings, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

EVENTS = 120
# Long enough that a log poll every POLL_INTERVAL_S detects the start of a pass and
# kills the worker before the pass ends. The 15 batches of 8 take about 5 s.
FORWARD_DELAY_MS = 300
# Batches stored before the kill, so the restart has committed offsets to resume from.
BATCHES_BEFORE_KILL = 3
WAIT_S = 60.0


async def test_replay_after_worker_killed_mid_batch(
    stack: StackEndpoints, start_worker: Callable[..., WorkerProcess], fault_figures: Callable[..., None]
) -> None:
    space = fault_space(f"delay_ms={FORWARD_DELAY_MS}")
    settings = isolated_settings(stack, [space], **WORKER_SETTINGS)
    await create_topics(settings)
    ids = event_ids("kill", EVENTS)
    seed = "kill-seed"

    first = start_worker(settings, name="first")
    async with Publisher(settings) as publisher:
        await publisher.publish([text_record(seed)])
        await wait_stored(first, settings, 1, WAIT_S)
        await publisher.publish([text_record(event_id) for event_id in ids])

    # Kill on the first forward pass that starts after a few batches are stored.
    await wait_stored(first, settings, 1 + BATCHES_BEFORE_KILL * space.max_batch_size, WAIT_S)
    passes_before = count_matches(FORWARD_STARTED, first.log_text())

    async def new_pass_started() -> bool:
        return count_matches(FORWARD_STARTED, first.log_text()) > passes_before

    await wait_until(new_pass_started, FORWARD_DELAY_MS / 1000 * 10, "a new forward pass", POLL_INTERVAL_S)
    first.kill()
    killed_at = time.monotonic()

    log = first.log_text()
    assert count_matches(FORWARD_STARTED, log) > count_matches(FORWARD_FINISHED, log), (
        "the kill landed between forward passes, not during one"
    )
    stored_at_kill = await stored_ids(settings)
    committed_at_kill = await committed_offsets(settings)
    assert len(stored_at_kill - {seed}) < EVENTS, "every event was stored before the kill"
    below_commit = ids_below(publisher.positions, committed_at_kill)
    assert below_commit <= stored_at_kill, (
        f"offsets committed past records never stored: {sorted(below_commit - stored_at_kill)[:10]}"
    )

    second = start_worker(settings, name="second")
    restarted_at = time.monotonic()
    recovery_s = await wait_progress(second, settings, WAIT_S)
    outcome = await wait_outcome(second, settings, ids, seed, WAIT_S)
    complete_s = time.monotonic() - restarted_at
    await wait_committed(second, settings, publisher, WAIT_S)

    counts = check_invariant(outcome, ids, seed)
    fault_figures(
        fault="worker SIGKILL during a forward pass, then restarted",
        **counts,
        stored_at_kill=len(stored_at_kill - {seed}),
        committed_at_kill=len(below_commit - {seed}),
        down_s=round(restarted_at - killed_at, 2),
        recovery_s=round(recovery_s, 2),
        complete_s=round(complete_s, 2),
    )
