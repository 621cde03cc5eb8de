"""One server process's live sockets and the work done for all of them.

Presence heartbeats, sweeps of crashed processes' users and coalesced announcements; the
Redis watchdog that closes sockets a Redis restart left deaf; the clean close on SIGTERM.
There is one Runtime per event loop (one per process under daphne, one per test).
"""

import asyncio
import contextlib
import logging
import secrets
import signal
import weakref
from typing import Any, Protocol

from channels.layers import get_channel_layer
from django.conf import settings
from redis.exceptions import RedisError

from . import protocol
from .batching import Batcher
from .broadcast import PreparedFrame
from .delivery import group_publish
from .groups import GLOBAL_GROUP
from .presence import HEARTBEAT_SECONDS, SWEEP_SECONDS, get_presence_store
from .redis import get_redis

logger = logging.getLogger(__name__)

# Presence changes wait this long to be announced together: a reconnect storm of a thousand
# users costs each socket a few frames, not a thousand.
COALESCE_SECONDS = 1.0
# How often a process checks that Redis still holds the state its sockets rely on.
WATCHDOG_SECONDS = 2.0
EPOCH_KEY = "chat:epoch"

# What a lost or restarted Redis raises through redis-py and channels_redis.
REDIS_ERRORS = (RedisError, OSError, asyncio.TimeoutError)


class Socket(Protocol):
    """What the runtime needs of a consumer."""

    user_id: int
    username: str
    channel_name: str

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None: ...

    async def relay(self, frame: PreparedFrame) -> None:
        """Send a frame that went to everyone (held back until the socket said hello)."""
        ...


class Runtime:
    def __init__(self) -> None:
        self._sockets: set[Socket] = set()
        self._pending: dict[int, str] = {}
        self._flush: asyncio.Task | None = None
        self._loops: list[asyncio.Task] = []
        self._epoch: bytes | None = None
        self._closing = False
        self._relay: asyncio.Task | None = None
        self._relay_ready: asyncio.Future | None = None
        # Sockets that open while one presence step is under way share the next: one script
        # call for their connections and one online list for all of them.
        self._connecting: Batcher[Socket, tuple[int, list[str]]] = Batcher(self._connect_listing)

    @property
    def sockets(self) -> list[Socket]:
        return list(self._sockets)

    @property
    def closing(self) -> bool:
        """True once SIGTERM arrived: new sockets are turned away with 1012."""
        return self._closing

    async def add(self, socket: Socket) -> tuple[int, list[str]]:
        """Count a newly authenticated socket as online and keep it renewed.

        Returns how many live sockets its user now has, across all processes, and the names
        of the users online (theirs included), read in the same step.
        """
        if settings.REDIS_URL and self._epoch is None:
            await self._check_epoch()
        await self._relay_start()
        count, online = await self._connecting.submit(socket)
        self._sockets.add(socket)
        self._start()
        if count == 1:
            self.announce(socket.user_id, socket.username)
        return count, online

    async def _connect_listing(self, sockets: list[Socket]) -> list[tuple[int, list[str]]]:
        counts, online = await get_presence_store().connect_listing(
            connections=[(s.user_id, s.username, s.channel_name) for s in sockets]
        )
        return [(count, online) for count in counts]

    async def remove(self, socket: Socket) -> None:
        """Forget a closed socket; announce its user offline if it was their last."""
        if socket not in self._sockets:
            return
        self._sockets.discard(socket)
        if not self._sockets:
            self._stop_loops()
        last = await get_presence_store().disconnect(
            user_id=socket.user_id, channel_name=socket.channel_name
        )
        if last:
            self.announce(socket.user_id, socket.username)

    def announce(self, user_id: int, username: str) -> None:
        """Queue a presence change; everything queued within a second goes out as one frame."""
        self._pending[user_id] = username
        if self._flush is None or self._flush.done():
            self._flush = asyncio.create_task(self._flush_later())

    async def close_all(self, code: int) -> int:
        """Close every socket of this process with `code`; how many were open."""
        sockets = list(self._sockets)
        for socket in sockets:
            try:
                await socket.close(code=code)
            except Exception:
                logger.exception("Could not close a socket of user %s", socket.user_id)
        return len(sockets)

    async def stop(self) -> None:
        """Cancel the background work (tests, and a process that is shutting down)."""
        self._stop_loops()
        tasks = [
            task for task in [self._flush, self._relay] if task is not None and not task.done()
        ]
        self._relay = self._relay_ready = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # Everyone's frames. The process, not each socket, listens to the global group: one
    # subscription, one decoded event per post, then a plain loop over the local sockets
    # instead of waking one consumer task per socket.

    async def _relay_start(self) -> None:
        """Listen to the global group; returns once the subscription is in place."""
        if self._relay is not None and not self._relay.done():
            await asyncio.shield(self._relay_ready)
            return
        loop = asyncio.get_running_loop()
        self._relay_ready = ready = loop.create_future()
        self._relay = asyncio.create_task(self._relay_everyone(ready))
        await asyncio.shield(ready)

    async def _relay_everyone(self, ready: asyncio.Future) -> None:
        layer = get_channel_layer()
        try:
            channel = await layer.new_channel("chat.everyone.")
            await layer.group_add(GLOBAL_GROUP, channel)
        except BaseException as error:
            if not ready.done():
                ready.set_exception(error)
            raise
        ready.set_result(channel)
        try:
            while True:
                event = await layer.receive(channel)
                text = event.get("frame")
                if not isinstance(text, str):
                    continue
                # Framed once for every socket of the process (chat/broadcast.py).
                frame = PreparedFrame(text)
                for socket in list(self._sockets):
                    try:
                        await socket.relay(frame)
                    except Exception:
                        logger.exception("Could not relay a frame to user %s", socket.user_id)
        finally:
            with contextlib.suppress(*REDIS_ERRORS):
                await layer.group_discard(GLOBAL_GROUP, channel)

    def _relay_reset(self) -> None:
        """Listen anew on the next socket (Redis lost its subscriptions)."""
        if self._relay is not None:
            self._relay.cancel()
        self._relay = self._relay_ready = None

    # Background work.

    def _start(self) -> None:
        if self._loops:
            return
        self._loops = [
            asyncio.create_task(self._every(HEARTBEAT_SECONDS, self._heartbeat)),
            asyncio.create_task(self._every(SWEEP_SECONDS, self._sweep)),
        ]
        if settings.REDIS_URL:
            self._loops.append(asyncio.create_task(self._every(WATCHDOG_SECONDS, self._watch)))
        if getattr(settings, "CHAT_CLOSE_SOCKETS_ON_SIGTERM", False):
            self._install_sigterm_handler()

    def _stop_loops(self) -> None:
        for task in self._loops:
            task.cancel()
        self._loops = []

    async def _every(self, seconds: float, work: Any) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await work()
            except REDIS_ERRORS as error:
                logger.warning("%s failed, Redis does not answer: %s", work.__name__, error)
            except Exception:
                logger.exception("%s failed", work.__name__)

    async def _flush_later(self) -> None:
        await asyncio.sleep(COALESCE_SECONDS)
        # Changes queued while this flush waits on Redis belong to the next window.
        self._flush = None
        await self._flush_now()

    async def _flush_now(self) -> None:
        pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            # Each user with a change goes out once, with their state at the end of the window.
            online = await get_presence_store().online_ids(user_ids=list(pending))
            frame = protocol.presence_frame(
                online=[name for user_id, name in pending.items() if user_id in online],
                offline=[name for user_id, name in pending.items() if user_id not in online],
            )
            await group_publish(
                GLOBAL_GROUP, {"type": "chat.presence", "frame": protocol.encode(frame)}
            )
        except REDIS_ERRORS as error:
            # Sockets that miss this get the truth in hello when they reconnect.
            logger.warning("Presence announcement lost, Redis does not answer: %s", error)

    async def _heartbeat(self) -> None:
        sockets = list(self._sockets)
        connections = [(s.user_id, s.username, s.channel_name) for s in sockets]
        came_online = set(await get_presence_store().heartbeat(connections=connections))
        for socket in sockets:
            if socket.user_id in came_online:
                self.announce(socket.user_id, socket.username)

    async def _sweep(self) -> None:
        store = get_presence_store()
        gone = await store.sweep()
        if gone:
            names = await store.usernames(user_ids=gone)
            for user_id in gone:
                self.announce(user_id, names.get(user_id, str(user_id)))

    async def _check_epoch(self) -> bool:
        """Whether Redis still holds what this process wrote (False after a restart)."""
        client = get_redis()
        await client.set(EPOCH_KEY, secrets.token_hex(8), nx=True)
        epoch = await client.get(EPOCH_KEY)
        known, self._epoch = self._epoch, epoch
        return known is None or known == epoch

    async def _watch(self) -> None:
        # A Redis restart empties every group and presence set; an unreachable Redis cannot
        # deliver. Either way this process's sockets would stay open yet deaf, so they are
        # closed and their clients reconnect (re-joining groups) and sync.
        try:
            intact = await self._check_epoch()
        except REDIS_ERRORS as error:
            self._epoch = None
            self._relay_reset()
            closed = await self.close_all(protocol.CLOSE_TRY_AGAIN_LATER)
            if closed:
                logger.warning("Redis does not answer (%s): closed %d sockets", error, closed)
            return
        if not intact:
            self._relay_reset()
            closed = await self.close_all(protocol.CLOSE_TRY_AGAIN_LATER)
            logger.warning("Redis lost its state (restarted?): closed %d sockets", closed)
            # Users still connected here come back through their clients' reconnects.

    def _install_sigterm_handler(self) -> None:
        loop = asyncio.get_running_loop()
        previous = signal.getsignal(signal.SIGTERM)
        if getattr(previous, "chat_runtime", False):
            return

        def on_sigterm(signum: int, frame: Any) -> None:
            loop.call_soon_threadsafe(
                lambda: loop.create_task(self._shutdown(previous, signum, frame))
            )

        on_sigterm.chat_runtime = True  # type: ignore[attr-defined]
        signal.signal(signal.SIGTERM, on_sigterm)

    async def _shutdown(self, previous: Any, signum: int, frame: Any) -> None:
        # 1012 tells clients to reconnect at once, to another process, and sync.
        if not self._closing:
            self._closing = True
            sockets = self.sockets
            closed = await self.close_all(protocol.CLOSE_SERVICE_RESTART)
            # The process may exit before the consumers' disconnect handlers run: take
            # their users offline now rather than when their presence expires.
            try:
                for socket in sockets:
                    await self.remove(socket)
                if self._flush is not None:
                    self._flush.cancel()
                await self._flush_now()
            except REDIS_ERRORS as error:
                logger.warning("SIGTERM: presence not updated, Redis: %s", error)
            logger.info("SIGTERM: closed %d sockets with 1012", closed)
            await asyncio.sleep(0.3)
            # Anything that slipped in meanwhile leaves presence too.
            with contextlib.suppress(*REDIS_ERRORS):
                for socket in self.sockets:
                    await self.remove(socket)
                await self._flush_now()
        if callable(previous):
            previous(signum, frame)
        else:
            raise SystemExit(0)


_runtimes: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Runtime]" = (
    weakref.WeakKeyDictionary()
)


def get_runtime() -> Runtime:
    """The runtime of the running event loop."""
    loop = asyncio.get_running_loop()
    runtime = _runtimes.get(loop)
    if runtime is None:
        runtime = _runtimes[loop] = Runtime()
    return runtime
