"""The Redis layer's receive loop reads messages off the wire (chat/pubsub_receiving.py)."""

import asyncio
import contextlib

import pytest
from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisSingleShardConnection

from chat import delivery
from chat.groups import user_group
from chat.pubsub_receiving import enable_direct_receiving
from chat.redis import get_redis
from chatsite.settings import redis_channel_layer

pytestmark = pytest.mark.redis


@pytest.fixture
def on_redis(settings, redis_url):
    enable_direct_receiving()  # as chatsite/asgi.py does; once is enough
    settings.REDIS_URL = redis_url
    settings.CHANNEL_LAYERS = {"default": redis_channel_layer(redis_url)}


class Received(list):
    """The events a channel got, with a way to wait for more."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = asyncio.Event()

    def append(self, event: object) -> None:
        super().append(event)
        self.arrived.set()


async def open_channel(groups: list[str]) -> tuple[str, Received]:
    events = Received()
    channel = await delivery.channel_open(put=events.append)
    await delivery.groups_join(channel, groups)
    return channel, events


async def wait_for(events: Received, count: int, seconds: float = 5) -> Received:
    async with asyncio.timeout(seconds):
        while len(events) < count:
            events.arrived.clear()
            await events.arrived.wait()
    return events


async def test_the_layer_receives_with_the_direct_loop():
    import chatsite.asgi  # noqa: F401  (the server's entry point installs it)

    assert RedisSingleShardConnection._do_receiving.receives_directly


async def test_a_burst_of_messages_reaches_channels_and_groups_in_order(on_redis):
    layer = get_channel_layer()
    alice, alice_events = await open_channel([user_group(1)])
    bob, bob_events = await open_channel([user_group(1), user_group(2)])
    group_one = layer._get_group_channel_name(user_group(1))
    group_two = layer._get_group_channel_name(user_group(2))

    pubsub = layer._get_layer()._get_shard(alice)._pubsub
    layer_steps = 0
    get_message = pubsub.get_message

    async def counted(*args, **kwargs):
        nonlocal layer_steps
        layer_steps += 1
        return await get_message(*args, **kwargs)

    pubsub.get_message = counted
    async with get_redis().pipeline(transaction=False) as pipe:
        for i in range(300):
            target = (group_one, group_two, alice)[i % 3]
            pipe.publish(target, layer.serialize({"type": "chat.message", "n": i}))
        await pipe.execute()

    await wait_for(alice_events, 200)
    await wait_for(bob_events, 200)
    assert [e["n"] for e in alice_events] == [i for i in range(300) if i % 3 != 1]
    assert [e["n"] for e in bob_events] == [i for i in range(300) if i % 3 != 2]
    # Read straight off the connection, not one get_message per message.
    assert layer_steps == 0


async def test_after_a_lost_connection_channels_are_subscribed_again(on_redis, redis_url):
    layer = get_channel_layer()
    channel, events = await open_channel([user_group(3)])
    await layer.group_send(user_group(3), {"type": "chat.message", "text": "before"})
    await wait_for(events, 1)

    # Redis drops the layer's receiving connection, and only that one.
    connection = layer._get_layer()._get_shard(channel)._pubsub.connection
    host, port = connection._writer.get_extra_info("sockname")[:2]
    assert await get_redis().client_kill_filter(_type=None, addr=f"{host}:{port}") == 1

    # Published before the layer has subscribed again, a message reaches no one: resent.
    async with asyncio.timeout(10):
        while len(events) < 2:
            await layer.group_send(user_group(3), {"type": "chat.message", "text": "after"})
            with contextlib.suppress(TimeoutError):
                await wait_for(events, 2, seconds=0.2)
    await layer.send(channel, {"type": "chat.message", "text": "to the channel"})
    await wait_for(events, len(events) + 1)
    assert events[0]["text"] == "before"
    assert events[-1]["text"] == "to the channel"
