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
