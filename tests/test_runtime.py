"""The process runtime: coalesced presence announcements."""

import asyncio

import pytest
from channels.layers import get_channel_layer

from chat import runtime as runtime_module
from chat.groups import GLOBAL_GROUP
from chat.presence import MemoryPresenceStore


async def test_a_change_queued_while_a_flush_waits_on_redis_is_announced_next(monkeypatch):
    store = MemoryPresenceStore()
    gate = asyncio.Event()
    original = store.online_ids

    async def slow_online_ids(*, user_ids):
        await gate.wait()
        return await original(user_ids=user_ids)

    monkeypatch.setattr(store, "online_ids", slow_online_ids)
    monkeypatch.setattr(runtime_module, "get_presence_store", lambda: store)
    monkeypatch.setattr(runtime_module, "COALESCE_SECONDS", 0.05)
    layer = get_channel_layer()
    listener = await layer.new_channel()
    await layer.group_add(GLOBAL_GROUP, listener)
    await store.connect(user_id=1, username="alice", channel_name="a")
    await store.connect(user_id=2, username="bob", channel_name="b")

    runtime = runtime_module.Runtime()
    runtime.announce(1, "alice")
    await asyncio.sleep(0.1)  # the first flush now waits on the store
    runtime.announce(2, "bob")
    gate.set()
    frames = [await asyncio.wait_for(layer.receive(listener), 2) for _ in range(2)]
    named = [frame["frame"] for frame in frames]
    assert '"online":["alice"]' in named[0] and '"online":["bob"]' in named[1]
    await runtime.stop()


@pytest.mark.django_db(transaction=True)
async def test_a_stopping_process_turns_new_sockets_away_with_1012(alice, monkeypatch):
    from channels.testing import WebsocketCommunicator

    from chatsite.asgi import application
    from tests.conftest import session_cookie, socket_headers

    runtime = runtime_module.get_runtime()
    monkeypatch.setattr(runtime, "_closing", True)
    communicator = WebsocketCommunicator(
        application, "/ws/chat/", headers=socket_headers(cookie=await session_cookie(alice))
    )
    connected, _ = await communicator.connect()
    assert connected
    assert await communicator.receive_output(2) == {"type": "websocket.close", "code": 1012}
    assert await runtime_module.get_presence_store().online_usernames() == []
    await communicator.disconnect()
