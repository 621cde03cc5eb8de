"""Group commit: requests that arrive while one batch is written share the next one.

A DM's cost is dominated by its commit (a round trip and a disk flush). Every message that
arrives while one transaction commits waits for the next, which then writes them all: under
load a batch grows to what arrived meanwhile, with no added wait when the server is idle.
The same holds for the Redis round trip that delivers DMs (chat/delivery.py).
"""

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from asgiref.sync import iscoroutinefunction
from channels.db import database_sync_to_async

Item = TypeVar("Item")
Result = TypeVar("Result")

MAX_BATCH = 500


Write = Callable[[list[Item]], list[Result | Exception]]
AsyncWrite = Callable[[list[Item]], Awaitable[list[Result | Exception]]]


class Batcher(Generic[Item, Result]):
    """Runs `write(items) -> results` (one result or exception per item) for each batch.

    A plain function runs in the DB thread; a coroutine function (asgiref's test: a
    sync_to_async wrapper counts, such as selectors.in_thread_pool) runs from the event loop.
    """

    def __init__(self, write: "Write[Item, Result] | AsyncWrite[Item, Result]") -> None:
        self._write: AsyncWrite[Item, Result] = (
            write if iscoroutinefunction(write) else database_sync_to_async(write)
        )
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue] = (
            weakref.WeakKeyDictionary()
        )

    async def submit(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _Queue()
        future: asyncio.Future = loop.create_future()
        queue.pending.append((item, future))
        if queue.task is None or queue.task.done():
            queue.task = loop.create_task(self._drain(queue))
        # A caller that goes away cancels only its own future: the write others share goes
        # on, and its result for this caller is dropped. (No asyncio.shield: that would cost
        # every caller one more turn of the loop.)
        return await future

    async def _drain(self, queue: "_Queue") -> None:
        while queue.pending:
            batch, queue.pending = queue.pending[:MAX_BATCH], queue.pending[MAX_BATCH:]
            try:
                results: list[Any] = await self._write([item for item, _ in batch])
            except Exception as error:
                results = [error] * len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)


class _Queue:
    def __init__(self) -> None:
        self.pending: list[tuple[Any, asyncio.Future]] = []
        self.task: asyncio.Task | None = None
