"""The chat socket: authenticate, parse with protocol.py, call one service, send the reply."""

import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from . import protocol, selectors, services
from .exceptions import ChatError
from .groups import GLOBAL_GROUP, user_group
from .presence import get_presence_store

logger = logging.getLogger(__name__)

# Close codes beyond the WebSocket standard ones.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


class ChatConsumer(AsyncWebsocketConsumer):
    user: Any = None
    joined: list[str]

    async def connect(self) -> None:
        self.joined = []
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Before accept, a close becomes an HTTP 403 refusal of the handshake.
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not user.is_active:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.user = user
        # Join before reading last_id: a message committed after that read arrives live,
        # one committed before is covered by the client's sync from last_id.
        for group in (user_group(user.pk), GLOBAL_GROUP):
            await self.channel_layer.group_add(group, self.channel_name)
            self.joined.append(group)
        store = get_presence_store()
        first = await store.connect(
            user_id=user.pk, username=user.get_username(), channel_name=self.channel_name
        )
        online = await store.online_usernames()
        last_id = await database_sync_to_async(selectors.message_last_visible_id)(user_id=user.pk)
        await self.accept()
        await self.send_frame(
            protocol.hello_frame(user=user.get_username(), online=online, last_id=last_id)
        )
        if first:
            # The new connection already has itself in hello.online.
            await services.presence_announce(
                online=[user.get_username()], offline=[], origin_channel=self.channel_name
            )

    async def disconnect(self, code: int) -> None:
        if self.user is None:
            return
        for group in self.joined:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.joined = []
        last = await get_presence_store().disconnect(
            user_id=self.user.pk, channel_name=self.channel_name
        )
        if last:
            await services.presence_announce(online=[], offline=[self.user.get_username()])

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            frame = protocol.parse_client_frame(
                text_data if text_data is not None else bytes_data,
                max_text_length=settings.CHAT_MAX_MESSAGE_LENGTH,
            )
            await self.handle(frame)
        except ChatError as error:
            await self.send_error(error)
        except Exception:
            # Never let one frame take the connection down; the log has the traceback.
            logger.exception("Unexpected error while handling a frame from user %s", self.user.pk)
            await self.send_frame(
                protocol.error_frame(code=500, detail="Internal error; nothing was changed.")
            )

    async def handle(self, frame: protocol.ClientFrame) -> None:
        match frame:
            case protocol.SendMessage():
                await self.on_message(frame)
            case protocol.Sync():
                await self.on_sync(frame)
            case protocol.Typing():
                await services.typing_send(sender=self.user, recipient=frame.recipient)
            case protocol.Read():
                await services.read_mark(
                    user=self.user,
                    peer=frame.peer,
                    up_to=frame.up_to,
                    origin_channel=self.channel_name,
                )
            case protocol.Ping():
                last_id = await database_sync_to_async(selectors.message_last_visible_id)(
                    user_id=self.user.pk
                )
                await self.send_frame(protocol.pong_frame(last_id=last_id))

    async def on_message(self, frame: protocol.SendMessage) -> None:
        try:
            sent = await services.message_send(
                sender=self.user,
                recipient=frame.recipient,
                text=frame.text,
                client_id=frame.client_id,
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

    async def on_sync(self, frame: protocol.Sync) -> None:
        frames, has_more = await database_sync_to_async(selectors.message_sync_list)(
            user_id=self.user.pk, after=frame.after
        )
        for message in frames:
            await self.send_frame(message)
        last_id = frames[-1]["id"] if frames else frame.after
        await self.send_frame(protocol.synced_frame(last_id=last_id, has_more=has_more))

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

    async def send_frame(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=protocol.encode(frame))

    # Channel layer events carry a frame already encoded by the service that sent them.

    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["frame"])

    async def chat_typing(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["frame"])

    async def chat_presence(self, event: dict[str, Any]) -> None:
        await self._forward_unless_origin(event)

    async def chat_read(self, event: dict[str, Any]) -> None:
        # The connection that marked the conversation read gets no reply.
        await self._forward_unless_origin(event)

    async def _forward_unless_origin(self, event: dict[str, Any]) -> None:
        if event.get("origin") != self.channel_name:
            await self.send(text_data=event["frame"])
