"""Group commit: what arrives while one batch is written shares the next one."""

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async

from chat.batching import Batcher


async def test_requests_arriving_during_a_write_share_the_next_batch():
    batches: list[list[int]] = []
    release = threading.Event()

    def write(items: list[int]) -> list[int]:
        batches.append(items)
        if len(batches) == 1:
            release.wait(5)
        return [item * 10 for item in items]

    batcher: Batcher[int, int] = Batcher(write)
    first = asyncio.ensure_future(batcher.submit(0))
    await asyncio.sleep(0.05)
    rest = [asyncio.ensure_future(batcher.submit(n)) for n in range(1, 6)]
    await asyncio.sleep(0.05)
    release.set()
    assert await first == 0
    assert await asyncio.gather(*rest) == [10, 20, 30, 40, 50]
    assert batches == [[0], [1, 2, 3, 4, 5]]


async def test_an_error_for_one_item_reaches_only_its_caller():
    def write(items: list[int]) -> list[int | Exception]:
        return [ValueError(f"bad {item}") if item == 2 else item for item in items]

    batcher: Batcher[int, int] = Batcher(write)
    results = await asyncio.gather(*(batcher.submit(n) for n in range(4)), return_exceptions=True)
    assert results[:2] == [0, 1] and results[3] == 3
    assert isinstance(results[2], ValueError)


async def test_a_failed_write_fails_every_caller_in_the_batch_and_the_next_batch_runs():
    calls = []

    def write(items: list[int]) -> list[int]:
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return items

    batcher: Batcher[int, int] = Batcher(write)
    with pytest.raises(RuntimeError):
        await batcher.submit(1)
    assert await batcher.submit(2) == 2


async def test_a_caller_that_goes_away_does_not_cancel_the_shared_write():
    written = []
    started = threading.Event()
    release = threading.Event()

    def write(items: list[int]) -> list[int]:
        started.set()
        release.wait(5)
        written.extend(items)
        return items

    batcher: Batcher[int, int] = Batcher(write)
    leaving = asyncio.ensure_future(batcher.submit(1))
    await asyncio.to_thread(started.wait, 5)
    leaving.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert await batcher.submit(2) == 2
    assert written == [1, 2]


async def test_a_coroutine_write_runs_on_the_event_loop_and_batches_the_same_way():
    batches: list[list[int]] = []
    loop_thread = threading.get_ident()

    async def write(items: list[int]) -> list[int]:
        assert threading.get_ident() == loop_thread
        batches.append(items)
        await asyncio.sleep(0.05)
        return [item + 1 for item in items]

    batcher: Batcher[int, int] = Batcher(write)
    first = asyncio.ensure_future(batcher.submit(0))
    await asyncio.sleep(0.01)
    assert await asyncio.gather(first, *(batcher.submit(n) for n in (1, 2))) == [1, 2, 3]
    assert batches == [[0], [1, 2]]


async def test_a_sync_to_async_write_is_awaited_as_it_is_not_wrapped_again():
    threads: list[int] = []

    def read(items: list[int]) -> list[int]:
        threads.append(threading.get_ident())
        return [item * 2 for item in items]

    batcher: Batcher[int, int] = Batcher(sync_to_async(read, thread_sensitive=False))
    assert await asyncio.gather(batcher.submit(1), batcher.submit(2)) == [2, 4]
    assert len(threads) == 1 and threads[0] != threading.get_ident()
