"""MicroBatcher: size and wait bounds, order, and back-pressure."""

import asyncio

import pytest

from encoders.batching import MicroBatcher


async def test_batch_closes_when_full():
    batcher: MicroBatcher[int] = MicroBatcher(max_size=3, max_wait_s=60)
    for item in range(5):
        await batcher.put(item)
    assert await asyncio.wait_for(batcher.next_batch(), timeout=1) == [0, 1, 2]
    assert len(batcher) == 2


async def test_batch_closes_after_max_wait():
    batcher: MicroBatcher[int] = MicroBatcher(max_size=100, max_wait_s=0.05)
    await batcher.put(1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await asyncio.wait_for(batcher.next_batch(), timeout=2) == [1]
    assert loop.time() - started >= 0.04


async def test_batch_gathers_items_arriving_during_wait():
    batcher: MicroBatcher[int] = MicroBatcher(max_size=3, max_wait_s=5)

    async def produce():
        for item in range(3):
            await batcher.put(item)
            await asyncio.sleep(0.01)

    producer = asyncio.create_task(produce())
    assert await asyncio.wait_for(batcher.next_batch(), timeout=2) == [0, 1, 2]
    await producer


async def test_put_waits_while_full():
    batcher: MicroBatcher[int] = MicroBatcher(max_size=2, max_wait_s=0, max_pending=2)
    await batcher.put(1)
    await batcher.put(2)
    blocked = asyncio.create_task(batcher.put(3))
    await asyncio.sleep(0.05)
    assert not blocked.done()
    assert await batcher.next_batch() == [1, 2]
    await asyncio.wait_for(blocked, timeout=1)
    assert await batcher.next_batch() == [3]


def test_invalid_bounds_raise():
    with pytest.raises(ValueError, match="max_size"):
        MicroBatcher(max_size=0, max_wait_s=1)
    with pytest.raises(ValueError, match="max_pending"):
        MicroBatcher(max_size=4, max_wait_s=1, max_pending=2)


async def test_batch_closes_on_cost_budget():
    batcher: MicroBatcher[int] = MicroBatcher(max_size=10, max_wait_s=60, cost=float, max_cost=10)
    for item in (4, 4, 4, 4):
        await batcher.put(item)
    assert await asyncio.wait_for(batcher.next_batch(), timeout=1) == [4, 4]
    await batcher.put(3)
    assert await asyncio.wait_for(batcher.next_batch(), timeout=1) == [4, 4]
    assert len(batcher) == 1


async def test_oversized_input_forms_batch_alone():
    batcher: MicroBatcher[int] = MicroBatcher(max_size=10, max_wait_s=60, cost=float, max_cost=10)
    await batcher.put(50)
    await batcher.put(1)
    assert await asyncio.wait_for(batcher.next_batch(), timeout=1) == [50]
    assert len(batcher) == 1


async def test_sorted_batch_groups_lengths_and_keeps_oldest():
    batcher: MicroBatcher[str] = MicroBatcher(max_size=2, max_wait_s=0, max_pending=8, sort_key=len, sort_window=8)
    for text in ("medium text", "a", "tiny", "a much longer piece of text", "ab", "medium texts"):
        await batcher.put(text)
    first = await batcher.next_batch()
    assert first[0] == "medium text"
    assert first == ["medium text", "medium texts"]
    remaining = [await batcher.next_batch() for _ in range(2)]
    left = sorted(text for batch in remaining for text in batch)
    assert left == sorted(["a", "tiny", "a much longer piece of text", "ab"])
    assert remaining[0][0] == "a"
