"""The chat socket: authenticate, parse with protocol.py, call one service, send the reply."""

import asyncio
import contextlib
import functools
import logging
import time
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from . import delivery, protocol, selectors, services
from .batching import Batcher
from .broadcast import PreparedFrame
from .eager_writes import written_together
from .exceptions import ChatError, RateLimited
from .groups import session_group, user_group
from .ratelimit import rate_limit_decide
from .runtime import REDIS_ERRORS, get_runtime
from .socket_memory import Inbox

logger = logging.getLogger(__name__)

# A socket's reads, run in the thread pool (selectors.in_thread_pool); built once, not for
# every handshake, ping and sync (9 µs each time).
_sync_list = selectors.in_thread_pool(selectors.message_sync_list)
# The sockets that read last_id while one read is under way share the next one: one trip
# to a thread and one statement for all of them (a thousand sockets opening at once).
_last_ids_batcher: Batcher[int, int] = Batcher(
    selectors.in_thread_pool(selectors.message_last_visible_ids)
)


async def _last_visible_id(*, user_id: int) -> int:
    """The newest message id the user can see (selectors.message_last_visible_id)."""
    return await _last_ids_batcher.submit(user_id)


class ChatConsumer(AsyncWebsocketConsumer):
    user: Any = None
    user_id: int | None = None
    username: str
    session_key: str | None = None
    left = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self._serve(scope, receive, send)
        except REDIS_ERRORS as error:
            # The channel layer lost Redis while this socket waited for events: it can no
            # longer hear its groups. Close it so the client reconnects and syncs.
            logger.warning("Closing a socket of user %s: Redis: %s", self.user_id, error)
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": protocol.CLOSE_TRY_AGAIN_LATER})
            await self.disconnect(protocol.CLOSE_TRY_AGAIN_LATER)

    async def _serve(self, scope: Any, receive: Any, send: Any) -> None:
        """Channels' AsyncConsumer.__call__, with one inbox instead of await_many_dispatch.

        Channels waits for the socket and the channel layer with asyncio.wait and starts a new
        task for every event it takes; here both go into one inbox, which is read in arrival
        order and handled one event at a time, as before. daphne hands the socket's frames
        over in an Inbox (chat/socket_memory.py), Channels' test communicator in an
        asyncio.Queue: that queue is the inbox, and the Redis layer puts this socket's events
        into it itself (delivery.channel_open), so nothing runs between an arrival and its
        handler. A source that cannot put there (another layer, another server) gets a
        long-lived task that moves its events into the inbox.
        """
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        server_queue = getattr(receive, "__self__", None)
        sources = []
        if isinstance(server_queue, (asyncio.Queue, Inbox)):
            get, put = receive, server_queue.put_nowait
        else:
            inbox = Inbox()
            get, put = inbox.get, inbox.put
            sources.append(receive)
        direct_channel = None
        if self.channel_layer is not None:
            direct_channel = await delivery.channel_open(put=put, layer=self.channel_layer)
            if direct_channel is not None:
                self.channel_name = direct_channel
            else:
                self.channel_name = await self.channel_layer.new_channel()
                self.channel_receive = functools.partial(
                    self.channel_layer.receive, self.channel_name
                )
                sources.append(self.channel_receive)
        self.base_send = send
        feeders = [asyncio.ensure_future(_feed(put, source)) for source in sources]
        try:
            while True:
                message = await get()
                if isinstance(message, Exception):
                    raise message
                await self.dispatch(message)
        except StopConsumer:
            pass
        finally:
            for feeder in feeders:
                feeder.cancel()
            await asyncio.gather(*feeders, return_exceptions=True)
            # Ended without websocket.disconnect (a handler failed, or the server cancelled
            # the consumer): leave presence and the groups all the same, or the user would
            # stay online and this process would keep relaying to a socket that is gone.
            await self.disconnect(protocol.CLOSE_INTERNAL_ERROR)
            if direct_channel is not None:
                await delivery.channel_close(direct_channel, layer=self.channel_layer)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale database connections before every handler, a trip through
        # the one sync thread per event: for a post to everyone, one trip per recipient.
        # Every database call here goes through database_sync_to_async, which does that
        # itself, so events go straight to their handlers.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        self.joined: list[str] = []
        # Frames relayed to everyone wait here until hello is sent (see relay).
        self.relay_pending: list[str] | None = []
        self.typing_sent: dict[str, float] = {}
        self.frame_tat: float | None = None
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Before accept, a close becomes an HTTP 403 refusal of the handshake.
            await self.close(code=protocol.CLOSE_UNAUTHENTICATED)
            return
        if not user.is_active:
            await self.close(code=protocol.CLOSE_FORBIDDEN)
            return
        self.user, self.user_id, self.username = user, user.pk, user.get_username()
        if get_runtime().closing:
            # This process is stopping: the client should go to another one.
            await self.accept()
            await self.close(code=protocol.CLOSE_SERVICE_RESTART)
            self.user = None
            return
        session = self.scope.get("session")
        self.session_key = session.session_key if session is not None else None
        try:
            hello = await self.join()
        except REDIS_ERRORS as error:
            logger.warning("Refusing a socket of user %s: Redis: %s", self.user_id, error)
            hello = None
        # Accept, then close with a code the client can read (a refused handshake is a bare
        # 1006 in browsers).
        await self.accept()
        if hello is None:
            await self.close(code=protocol.CLOSE_TRY_AGAIN_LATER)
        elif hello["type"] == "error":
            await self.close(code=protocol.CLOSE_TOO_MANY_SOCKETS)
        else:
            await self.send_frame(hello)
            await self.relay_release()

    async def join(self) -> dict[str, Any]:
        """Join the groups and presence, then build hello (or the error for one too many)."""
        groups = [user_group(self.user_id)]
        if self.session_key:
            groups.append(session_group(self.session_key))
        # Join before reading last_id: a message committed after that read arrives live,
        # one committed before is covered by the client's sync from last_id. Frames to
        # everyone come through the runtime, which this socket joins in add().
        # Set first: if joining fails half-way, disconnect still leaves every group.
        self.joined = groups
        await delivery.groups_join(self.channel_name, groups, layer=self.channel_layer)
        sockets, online = await get_runtime().add(self)
        limit = settings.CHAT_MAX_SOCKETS_PER_USER
        if sockets > limit:
            return protocol.error_frame(
                code=429,
                detail=f"Too many open sockets: at most {limit} per user. Close another tab.",
            )
        last_id = await _last_visible_id(user_id=self.user_id)
        return protocol.hello_frame(user=self.username, online=online, last_id=last_id)

    async def disconnect(self, code: int) -> None:
        if self.user is None or self.left:
            return
        self.left = True
        try:
            await get_runtime().remove(self)
            await delivery.groups_leave(self.channel_name, self.joined, layer=self.channel_layer)
        except REDIS_ERRORS as error:
            # Presence entries not renewed expire on their own; group entries too.
            logger.warning("Could not leave groups of user %s: Redis: %s", self.user_id, error)
        self.joined = []

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # Frames to everyone wait while this frame is handled, as a consumer's own events
        # wait for its handler: a post to ALL reaches its sender after the response.
        holding = self.relay_pending is None
        if holding:
            self.relay_pending = []
        try:
            await self.receive_frame(text_data, bytes_data)
        finally:
            if holding:
                await self.relay_release()

    async def receive_frame(self, text_data: str | None, bytes_data: bytes | None) -> None:
        try:
            frame = protocol.parse_client_frame(
                text_data if text_data is not None else bytes_data,
                max_text_length=settings.CHAT_MAX_MESSAGE_LENGTH,
                max_frame_bytes=settings.CHAT_MAX_FRAME_BYTES,
            )
            self.check_frame_rate(frame)
            await self.handle(frame)
        except ChatError as error:
            await self.send_error(error)
        except REDIS_ERRORS as error:
            # Nothing was acknowledged; the client reconnects, syncs and resends its client_id.
            logger.warning("Closing a socket of user %s: Redis: %s", self.user_id, error)
            await self.close(code=protocol.CLOSE_TRY_AGAIN_LATER)
        except Exception:
            # Never let one frame take the connection down; the log has the traceback.
            logger.exception("Unexpected error while handling a frame from user %s", self.user_id)
            await self.send_frame(
                protocol.error_frame(code=500, detail="Internal error; nothing was changed.")
            )

    def check_frame_rate(self, frame: protocol.ClientFrame) -> None:
        """Refuse frames beyond CHAT_FRAME_RATE_LIMIT for this socket (429, nothing served)."""
        limit = settings.CHAT_FRAME_RATE_LIMIT
        if limit is None:
            return
        allowed, self.frame_tat, retry_after = rate_limit_decide(
            tat=self.frame_tat, now=time.monotonic(), count=limit[0], seconds=limit[1]
        )
        if not allowed:
            detail = f"Too many frames on this socket: at most {limit[0]} every {limit[1]} s."
            if isinstance(frame, protocol.SendMessage):
                raise RateLimited(
                    detail, retry_after=round(retry_after, 3), client_id=frame.client_id
                )
            raise ChatError(detail, code=429)

    async def handle(self, frame: protocol.ClientFrame) -> None:
        match frame:
            case protocol.SendMessage():
                await self.on_message(frame)
            case protocol.Sync():
                await self.on_sync(frame)
            case protocol.Typing():
                await self.on_typing(frame)
            case protocol.Read():
                await services.read_mark(
                    user=self.user,
                    peer=frame.peer,
                    up_to=frame.up_to,
                    origin_channel=self.channel_name,
                )
            case protocol.Ping():
                last_id = await _last_visible_id(user_id=self.user_id)
                await self.send_frame(protocol.pong_frame(last_id=last_id))

    async def on_message(self, frame: protocol.SendMessage) -> None:
        try:
            sent = await services.message_send(
                sender=self.user,
                recipient=frame.recipient,
                text=frame.text,
                client_id=frame.client_id,
                origin_channel=self.channel_name,
            )
        except ChatError as error:
            error.command = protocol.MESSAGE_COMMAND
            error.client_id = frame.client_id
            raise
        await self.send_frame(
            protocol.response_frame(
                code=sent.code,
                detail=sent.detail,
                id=sent.payload["id"],
                client_id=frame.client_id,
            )
        )
        if sent.origin_frame is not None:
            # The sender's only socket: its copy, as its other sockets would get it.
            await self.send(text_data=sent.origin_frame)

    async def on_sync(self, frame: protocol.Sync) -> None:
        frames, has_more = await _sync_list(user_id=self.user_id, after=frame.after)
        last_id = frames[-1]["id"] if frames else frame.after
        # Up to 500 frames: one send to the kernel for all of them, not one each.
        with written_together():
            for message in frames:
                await self.send_frame(message)
            await self.send_frame(protocol.synced_frame(last_id=last_id, has_more=has_more))

    async def on_typing(self, frame: protocol.Typing) -> None:
        # A client may send typing on every keystroke; each recipient hears a few a second.
        interval = 1 / settings.CHAT_TYPING_PER_SECOND
        now = time.monotonic()
        if now - self.typing_sent.get(frame.recipient, -interval) < interval:
            return
        # Counted after the lookup: an unknown name gets its 404 every time (names no user
        # can have cost no query and no cache entry).
        await services.typing_send(sender=self.user, recipient=frame.recipient)
        if len(self.typing_sent) > 100:
            self.typing_sent.clear()
        self.typing_sent[frame.recipient] = now

    async def send_error(self, error: ChatError) -> None:
        if error.command == protocol.MESSAGE_COMMAND:
            frame = protocol.response_frame(
                code=error.code,
                detail=error.detail,
                client_id=error.client_id,
                retry_after=getattr(error, "retry_after", None),
            )
        else:
            frame = protocol.error_frame(code=error.code, detail=error.detail)
        await self.send_frame(frame)

    async def relay(self, frame: PreparedFrame) -> None:
        """A frame to everyone, from the runtime: held back until hello has been sent."""
        if self.relay_pending is not None:
            self.relay_pending.append(frame.text)
            return
        # This runs once per socket for every post to everyone: under daphne the frame is
        # written as framed once for all (chat/broadcast.py), elsewhere straight to ASGI.
        send_prepared = getattr(self.base_send, "send_prepared", None)
        if send_prepared is None or not send_prepared(frame):
            await self.base_send({"type": "websocket.send", "text": frame.text})

    async def relay_release(self) -> None:
        """Send the frames held back during the handshake, in order, then relay directly."""
        while self.relay_pending:
            frames, self.relay_pending = self.relay_pending, []
            for frame in frames:
                await self.send(text_data=frame)
        self.relay_pending = None

    async def send_frame(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=protocol.encode(frame))

    # Channel layer events carry a frame already encoded by the service that sent them.

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["frame"])

    async def chat_typing(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["frame"])

    async def chat_read(self, event: dict[str, Any]) -> None:
        # The connection that marked the conversation read gets no reply.
        if event.get("origin") != self.channel_name:
            await self.send(text_data=event["frame"])

    async def chat_kick(self, event: dict[str, Any]) -> None:
        """The user was deactivated (4403) or this session logged out (4401)."""
        await self.close(code=event["code"])

    async def chat_session_check(self, event: dict[str, Any]) -> None:
        """The user's password changed: sockets of sessions it invalidated close with 4401."""
        if self.session_key and event.get("keep_group") == session_group(self.session_key):
            # This socket's own session survived the change under a new key.
            await self.channel_layer.group_discard(event["keep_group"], self.channel_name)
            self.session_key = event["keep_key"]
            new_group = session_group(self.session_key)
            await self.channel_layer.group_add(new_group, self.channel_name)
            self.joined = [g for g in self.joined if g != event["keep_group"]] + [new_group]
            return
        code = await database_sync_to_async(selectors.session_close_code)(
            session_key=self.session_key, user_id=self.user_id
        )
        if code is not None:
            await self.close(code=code)


async def _feed(put: Any, source: Any) -> None:
    """Put every event of one source in the inbox; an error ends it and is put there too."""
    try:
        while True:
            put(await source())
    except Exception as error:
        put(error)
