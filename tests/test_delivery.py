"""DM delivery on Redis: the DMs committed together go out in one script call, each answered."""

import asyncio

import pytest
from channels.layers import get_channel_layer

from chat import delivery
from chat.groups import user_group
from chat.presence import get_presence_store
from chatsite.settings import redis_channel_layer

pytestmark = pytest.mark.redis

ALICE, BOB, CAROL = 101, 102, 103


@pytest.fixture
def on_redis(settings, redis_url):
    settings.REDIS_URL = redis_url
    settings.CHANNEL_LAYERS = {"default": redis_channel_layer(redis_url)}


async def listen(user_id: int) -> str:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(user_group(user_id), channel)
    return channel


async def received(channel: str) -> list[str]:
    """The texts of the events the channel got within a moment."""
    texts = []
    while True:
        try:
            event = await asyncio.wait_for(get_channel_layer().receive(channel), 0.3)
        except TimeoutError:
            return texts
        texts.append(event["text"])


async def test_dms_delivered_together_share_one_script_call_and_each_gets_its_answer(
    on_redis, monkeypatch
):
    calls: list[int] = []
    script = delivery._DMS

    async def counting(keys: list[str], args: list) -> list:
        calls.append(len(keys) // 2)
        return await script(keys, args)

    monkeypatch.setattr(delivery, "_DMS", counting)
    presence = get_presence_store()
    await presence.connect(user_id=ALICE, username="alice", channel_name="alice-tab")
    await presence.connect(user_id=BOB, username="bob", channel_name="bob-tab")
    inboxes = {user: await listen(user) for user in (ALICE, BOB, CAROL)}

    def dm(sender: int, recipient: int, origin: str, text: str):
        return delivery.dm_deliver(
            sender_id=sender,
            recipient_id=recipient,
            origin_channel=origin,
            event={"type": "chat.message", "text": text},
        )

    results = await asyncio.gather(
        dm(ALICE, BOB, "alice-tab", "from alice's only tab"),
        dm(ALICE, CAROL, "alice-closed-tab", "from a tab alice closed"),
        dm(BOB, BOB, "bob-tab", "a note to self"),
    )

    assert calls == [3]
    assert [(r.recipient_online, r.origin_needs_frame) for r in results] == [
        (True, True),  # bob is online; alice's only socket sends its own copy
        (False, False),  # carol is offline; alice's live socket hears it through Redis
        (True, True),  # bob's only socket sends its note itself: nothing published
    ]
    assert await received(inboxes[BOB]) == ["from alice's only tab"]
    assert await received(inboxes[CAROL]) == ["from a tab alice closed"]
    assert await received(inboxes[ALICE]) == ["from a tab alice closed"]


async def test_a_redis_error_fails_every_dm_of_its_batch(on_redis, monkeypatch):
    async def failing(keys: list[str], args: list) -> list:
        raise ConnectionError("Redis went away")

    monkeypatch.setattr(delivery, "_DMS", failing)
    results = await asyncio.gather(
        *(
            delivery.dm_deliver(
                sender_id=ALICE, recipient_id=BOB, origin_channel="tab", event={"text": "x"}
            )
            for _ in range(2)
        ),
        return_exceptions=True,
    )
    assert all(isinstance(result, ConnectionError) for result in results)


# A socket's channel on Redis: events straight to its inbox


async def events_within_a_moment(events: list) -> list:
    await asyncio.sleep(0.3)
    return events


async def test_a_sockets_channel_hands_its_events_straight_to_the_inbox(on_redis):
    events: list = []
    channel = await delivery.channel_open(put=events.append)
    layer = get_channel_layer()
    await delivery.groups_join(channel, [user_group(ALICE)])

    await layer.group_send(user_group(ALICE), {"type": "chat.message", "text": "one"})
    await layer.send(channel, {"type": "chat.message", "text": "two"})

    assert await events_within_a_moment(events) == [
        {"type": "chat.message", "text": "one"},
        {"type": "chat.message", "text": "two"},
    ]
    assert not isinstance(layer._get_layer().channels[channel], asyncio.Queue)


async def test_a_message_that_cannot_be_read_ends_only_its_socket(on_redis):
    events: list = []
    others: list = []
    channel = await delivery.channel_open(put=events.append)
    other = await delivery.channel_open(put=others.append)
    layer = get_channel_layer()
    await delivery.groups_join(channel, [])
    await delivery.groups_join(other, [user_group(BOB)])

    await delivery.get_redis().publish(channel, b"\xc1 not msgpack")
    await layer.group_send(user_group(BOB), {"type": "chat.message", "text": "still here"})

    await events_within_a_moment(events)
    assert len(events) == 1 and isinstance(events[0], Exception)
    assert others == [{"type": "chat.message", "text": "still here"}]


async def test_a_channel_joins_its_groups_with_one_subscribe_and_leaves_with_one(
    on_redis, monkeypatch
):
    events: list = []
    others: list = []
    channel = await delivery.channel_open(put=events.append)
    other = await delivery.channel_open(put=others.append)
    layer = get_channel_layer()
    await delivery.groups_join(other, [user_group(BOB)])
    pubsub = layer._get_layer()._get_shard(channel)._pubsub
    commands: list[tuple] = []
    for name in ("subscribe", "unsubscribe"):
        original = getattr(pubsub, name)

        async def counting(*args, name=name, original=original):
            commands.append((name, *args))
            return await original(*args)

        monkeypatch.setattr(pubsub, name, counting)

    await delivery.groups_join(channel, [user_group(ALICE), user_group(BOB)])
    await layer.group_send(user_group(ALICE), {"type": "chat.message", "text": "to alice"})
    await layer.group_send(user_group(BOB), {"type": "chat.message", "text": "to bob"})
    await layer.send(channel, {"type": "chat.message", "text": "to the channel"})
    assert [e["text"] for e in await events_within_a_moment(events)] == [
        "to alice",
        "to bob",
        "to the channel",
    ]
    # BOB's group was subscribed already, for the other channel.
    alice_group = layer._get_group_channel_name(user_group(ALICE))
    assert commands == [("subscribe", channel, alice_group)]

    events.clear()
    await delivery.groups_leave(channel, [user_group(ALICE), user_group(BOB)])
    await layer.group_send(user_group(ALICE), {"type": "chat.message", "text": "gone"})
    await layer.group_send(user_group(BOB), {"type": "chat.message", "text": "bob again"})
    assert await events_within_a_moment(events) == []
    assert [e["text"] for e in others] == ["to bob", "bob again"]
    # Only the group no channel of this process is in any more is unsubscribed.
    assert commands[1:] == [("unsubscribe", alice_group)]


async def test_a_closed_channel_is_unsubscribed_and_hears_nothing_more(on_redis):
    events: list = []
    channel = await delivery.channel_open(put=events.append)
    await delivery.groups_join(channel, [])
    process_layer = get_channel_layer()._get_layer()

    await delivery.channel_close(channel)
    await get_channel_layer().send(channel, {"type": "chat.message", "text": "too late"})

    assert await events_within_a_moment(events) == []
    assert channel not in process_layer.channels
    assert channel not in process_layer._get_shard(channel)._subscribed_to
    await delivery.channel_close(channel)  # twice: nothing to do


async def test_other_layers_keep_their_own_channels(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

    assert await delivery.channel_open(put=print) is None


async def test_channels_joining_together_share_one_subscribe(on_redis, monkeypatch):
    layer = get_channel_layer()
    inboxes: list[list] = [[], [], []]
    channels = [await delivery.channel_open(put=inbox.append) for inbox in inboxes]
    await delivery.groups_join(await delivery.channel_open(put=list().append), [])
    pubsub = layer._get_layer()._get_shard(channels[0])._pubsub
    commands: list[tuple] = []
    original = pubsub.subscribe

    async def counting(*args):
        commands.append(args)
        return await original(*args)

    monkeypatch.setattr(pubsub, "subscribe", counting)
    users = [ALICE, BOB, ALICE]
    await asyncio.gather(
        *(
            delivery.groups_join(channel, [user_group(user)])
            for channel, user in zip(channels, users, strict=True)
        )
    )
    await layer.group_send(user_group(ALICE), {"type": "chat.message", "text": "to alice"})
    await layer.group_send(user_group(BOB), {"type": "chat.message", "text": "to bob"})

    group = layer._get_group_channel_name
    assert commands == [
        (channels[0], group(user_group(ALICE)), channels[1], group(user_group(BOB)), channels[2])
    ]
    texts = [[e["text"] for e in await events_within_a_moment(inbox)] for inbox in inboxes]
    assert texts == [["to alice"], ["to bob"], ["to alice"]]
