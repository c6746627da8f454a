"""Forward passes that raise: for every batch over a size, and for one poisoned input."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import orjson
import pytest

from streams.devstack import StackEndpoints
from streams.topics import create_topics
from tests.faults.harness import (
    BATCH_DONE,
    WORKER_SETTINGS,
    Publisher,
    event_ids,
    fault_space,
    text_record,
    wait_stored,
)
from tests.faults.outcome import check_invariant, wait_outcome
from tests.support import WorkerProcess, isolated_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

EVENTS = 64
# Batches of up to 32 fail as out of memory above 8, so each full batch is split twice
# before its halves embed.
MAX_BATCH_SIZE = 32
FAIL_BATCH_OVER = 8
MARKER = "POISON"
WAIT_S = 60.0


async def test_split_batch_on_forward_failure(
    stack: StackEndpoints, start_worker: Callable[..., WorkerProcess], fault_figures: Callable[..., None]
) -> None:
    # A long max_wait_ms lets batches fill to MAX_BATCH_SIZE, over the failure limit.
    space = fault_space(
        f"fail_batch_over={FAIL_BATCH_OVER}&fail_on={MARKER}", max_batch_size=MAX_BATCH_SIZE, max_wait_ms=500
    )
    settings = isolated_settings(stack, [space], **WORKER_SETTINGS)
    await create_topics(settings)
    ids = event_ids("split", EVENTS)
    poisoned = {ids[13], ids[50]}
    records = [
        (event_id.encode(), orjson.dumps({"id": event_id, "text": f"this input carries {MARKER}"}))
        if event_id in poisoned
        else text_record(event_id)
        for event_id in ids
    ]
    seed = "split-seed"

    worker = start_worker(settings)
    async with Publisher(settings) as publisher:
        await publisher.publish([text_record(seed)])
        await wait_stored(worker, settings, 1, WAIT_S)
        published_at = time.monotonic()
        await publisher.publish(records)
    outcome = await wait_outcome(worker, settings, ids, seed, WAIT_S)
    complete_s = time.monotonic() - published_at

    counts = check_invariant(outcome, ids, seed)
    assert set(outcome.deadlettered) == poisoned
    for event_id in poisoned:
        reason, detail = outcome.deadlettered[event_id]
        assert reason == "encoder_failed", (event_id, reason, detail)
        assert f"contain {MARKER!r}" in detail, detail
    assert counts["duplicate_match_events"] == 0, "a match event was sent twice without any replay"
    assert counts["duplicate_dead_letters"] == 0, "a poisoned input was dead-lettered twice"

    log = worker.log_text()
    out_of_memory_splits = re.findall(r"splitting the batch: RuntimeError: CUDA out of memory \(simulated\)", log)
    poison_splits = re.findall(r"splitting the batch: RuntimeError: simulated forward failure", log)
    batch_sizes = [int(size) for size in BATCH_DONE.findall(log)]
    assert out_of_memory_splits, f"no batch over {FAIL_BATCH_OVER} was split:\n{worker.log_tail()}"
    assert poison_splits, "no batch was split around a poisoned input"
    assert max(batch_sizes) > FAIL_BATCH_OVER, f"no batch over the failure limit finished: {batch_sizes}"

    fault_figures(
        fault=f"forward pass raises above {FAIL_BATCH_OVER} inputs and on {len(poisoned)} poisoned inputs",
        **counts,
        out_of_memory_splits=len(out_of_memory_splits),
        poison_splits=len(poison_splits),
        largest_batch=max(batch_sizes),
        complete_s=round(complete_s, 2),
    )
