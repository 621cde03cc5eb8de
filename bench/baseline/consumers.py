"""The consumer a Channels tutorial would write: one ORM lookup per DM, nothing stored.

It speaks the frames the workloads need (hello, message, response) in the chat's shapes and
delivers like the chat does (a DM to the recipient's and the sender's connections, ALL to
everyone), so the two servers do the same work per message apart from the database.
"""

import itertools

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.utils import timezone

from chat.models import User

_ids = itertools.count(1)
ALL_GROUP = "all"


def _user_group(user_id: int) -> str:
    return f"user.{user_id}"


class BaselineConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        self.user = self.scope["user"]
        if not self.user.is_authenticated:
            await self.close()
            return
        await self.channel_layer.group_add(_user_group(self.user.pk), self.channel_name)
        await self.channel_layer.group_add(ALL_GROUP, self.channel_name)
        await self.accept()
        await self.send_json(
            {"type": "hello", "user": self.user.username, "online": [], "last_id": 0}
        )

    async def disconnect(self, code):
        if self.user.is_authenticated:
            await self.channel_layer.group_discard(_user_group(self.user.pk), self.channel_name)
            await self.channel_layer.group_discard(ALL_GROUP, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if content.get("type") != "message":
            await self.send_json({"type": "error", "code": 400, "detail": "Unknown frame."})
            return
        recipient = content.get("recipient")
        client_id = content.get("client_id")
        message = {
            "type": "message",
            "id": next(_ids),
            "sender": self.user.username,
            "recipient": recipient,
            "text": content.get("text"),
            "sent_at": timezone.now().isoformat(),
        }
        if client_id is not None:
            message["client_id"] = client_id
        event = {"type": "chat.message", "message": message}
        if recipient == "ALL":
            await self.channel_layer.group_send(ALL_GROUP, event)
        else:
            try:
                peer = await database_sync_to_async(User.objects.get)(username=recipient)
            except User.DoesNotExist:
                await self.send_json(
                    {
                        "type": "response",
                        "command": "message",
                        "code": 404,
                        "detail": "No such user.",
                        "id": None,
                        "client_id": client_id,
                    }
                )
                return
            await self.channel_layer.group_send(_user_group(peer.pk), event)
            if peer.pk != self.user.pk:
                await self.channel_layer.group_send(_user_group(self.user.pk), event)
        await self.send_json(
            {
                "type": "response",
                "command": "message",
                "code": 200,
                "detail": "Delivered.",
                "id": message["id"],
                "client_id": client_id,
            }
        )

    async def chat_message(self, event):
        await self.send_json(event["message"])
