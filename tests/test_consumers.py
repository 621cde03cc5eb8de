"""The chat socket, end to end through the ASGI stack, as the contract's tables say."""

import asyncio
import json
import threading
from typing import Any

import pytest
import redis.exceptions
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from chat import consumers, delivery, selectors, services
from chat.batching import Batcher
from chat.models import Message, ReadMarker
from tests.conftest import session_cookie, socket_headers, stored_messages

pytestmark = pytest.mark.django_db(transaction=True)


def dm(recipient: str, text: str, **fields) -> dict:
    return {"type": "message", "recipient": recipient, "text": text, **fields}


@database_sync_to_async
def create_messages(sender, recipient, count: int, text: str = "old") -> list[int]:
    rows = Message.objects.bulk_create(
        Message(sender=sender, recipient=recipient, text=f"{text} {i}") for i in range(count)
    )
    return (
        [row.pk for row in rows]
        if rows[0].pk
        else list(Message.objects.order_by("id").values_list("id", flat=True))
    )


async def test_hello_names_the_user_the_online_users_and_the_last_visible_id(
    connect_as, alice, bob
):
    bob_socket = await connect_as(bob)
    alice_socket = await connect_as(alice)
    assert alice_socket.hello == {
        "type": "hello",
        "user": "alice",
        "online": ["alice", "bob"],
        "last_id": 0,
    }
    assert bob_socket.hello["online"] == ["bob"]


async def test_sockets_opening_together_each_get_their_own_last_id(
    connect_as, alice, bob, carol, send
):
    await database_sync_to_async(send)(alice, None, "to everyone")
    to_bob = await database_sync_to_async(send)(alice, bob, "to bob")
    to_carol = await database_sync_to_async(send)(alice, carol, "to carol")
    sockets = await asyncio.gather(connect_as(bob), connect_as(carol), connect_as(alice))
    assert [socket.hello["last_id"] for socket in sockets] == [to_bob.pk, to_carol.pk, to_carol.pk]
    pongs = []
    for socket in sockets:
        await socket.send({"type": "ping"})
    for socket in sockets:
        pongs.append((await socket.receive_until("pong"))["last_id"])
    assert pongs == [to_bob.pk, to_carol.pk, to_carol.pk]


async def test_last_ids_asked_for_together_are_read_in_one_trip(
    alice, bob, carol, send, monkeypatch
):
    to_bob = await database_sync_to_async(send)(alice, bob, "to bob")
    read, batches = selectors.in_thread_pool(selectors.message_last_visible_ids), []

    async def recording(user_ids: list[int]) -> list[int]:
        batches.append(list(user_ids))
        return await read(user_ids)

    monkeypatch.setattr(consumers, "_last_ids_batcher", Batcher(recording))
    users = [alice, bob, carol]
    last_ids = await asyncio.gather(
        *(consumers._last_visible_id(user_id=user.pk) for user in users)
    )
    assert last_ids == [to_bob.pk, to_bob.pk, 0]
    assert batches == [[user.pk for user in users]]


async def test_a_handshake_does_not_wait_behind_a_slow_call_in_the_database_thread(
    connect_as, alice, bob
):
    cookie = await session_cookie(alice)
    entered, release = threading.Event(), threading.Event()

    def slow_write() -> None:
        entered.set()
        release.wait(10)

    # A long write holds the one thread that database_sync_to_async calls share.
    holding = asyncio.ensure_future(database_sync_to_async(slow_write)())
    try:
        assert await asyncio.to_thread(entered.wait, 5)
        # The session, the user and last_id are read in the pool: hello comes at once.
        socket = await asyncio.wait_for(connect_as(alice, cookie=cookie), 3)
        assert socket.hello["user"] == "alice"
        await socket.send({"type": "ping"})
        assert (await socket.receive_until("pong"))["last_id"] == 0
    finally:
        release.set()
        await holding


async def test_hello_last_id_counts_only_messages_the_user_can_see(connect_as, alice, bob, carol):
    [public] = await create_messages(carol, None, 1)
    await create_messages(carol, bob, 1)  # a DM alice must not see
    alice_socket = await connect_as(alice)
    assert alice_socket.hello["last_id"] == public


async def test_direct_message_reaches_only_recipient_and_sender(connect_as, alice, bob, carol):
    alice_socket = await connect_as(alice)
    bob_socket = await connect_as(bob)
    carol_socket = await connect_as(carol)
    await alice_socket.send(dm("bob", "hi bob", client_id="c1"))
    response = await alice_socket.receive_until("response")
    assert response == {
        "type": "response",
        "command": "message",
        "code": 200,
        "detail": response["detail"],
        "id": response["id"],
        "client_id": "c1",
    }
    got = await bob_socket.receive_until("message")
    assert {k: got[k] for k in ("id", "sender", "recipient", "text")} == {
        "id": response["id"],
        "sender": "alice",
        "recipient": "bob",
        "text": "hi bob",
    }
    echo = await alice_socket.receive_until("message")
    assert echo["id"] == response["id"]
    assert echo["client_id"] == "c1"
    assert await carol_socket.receive_nothing_but_presence()
    assert [m.text for m in await stored_messages()] == ["hi bob"]


async def test_message_reaches_every_connection_of_the_sender(connect_as, alice, bob):
    first_tab = await connect_as(alice)
    second_tab = await connect_as(alice)
    await connect_as(bob)
    await first_tab.send(dm("bob", "from tab one"))
    assert (await second_tab.receive_until("message"))["text"] == "from tab one"


@pytest.mark.parametrize("tabs", [1, 2])
async def test_each_socket_of_the_sender_gets_its_copy_of_a_dm_exactly_once(
    connect_as, alice, bob, tabs
):
    sockets = [await connect_as(alice) for _ in range(tabs)]
    await connect_as(bob)
    await sockets[0].send(dm("bob", "once", client_id="once-1"))
    response = await sockets[0].receive_until("response")
    for socket in sockets:
        copy = await socket.receive_until("message")
        assert (copy["id"], copy["client_id"]) == (response["id"], "once-1")
        assert await socket.receive_nothing_but_presence(0.3)


@pytest.mark.parametrize("tabs", [1, 2])
async def test_a_dm_to_oneself_reaches_each_own_socket_exactly_once(connect_as, alice, tabs):
    sockets = [await connect_as(alice) for _ in range(tabs)]
    await sockets[0].send(dm("alice", "a note to self"))
    response = await sockets[0].receive_until("response")
    assert response["code"] == 200
    for socket in sockets:
        assert (await socket.receive_until("message"))["id"] == response["id"]
        assert await socket.receive_nothing_but_presence(0.3)


async def test_message_to_all_reaches_every_connection_with_200(connect_as, alice, bob, carol):
    sockets = [await connect_as(user) for user in (alice, bob, carol)]
    await sockets[0].send(dm("ALL", "hello everyone"))
    response = await sockets[0].receive_until("response")
    assert response["code"] == 200
    for socket in sockets:
        frame = await socket.receive_until("message")
        assert frame["recipient"] == "ALL" and frame["text"] == "hello everyone"
        assert frame["id"] == response["id"]


async def test_a_post_to_everyone_during_a_handshake_arrives_after_hello(
    connect_as, alice, bob, monkeypatch
):
    read_last_id = selectors.message_last_visible_id

    def last_id_then_a_post(*, user_id):
        # The new socket is listening already, but has not said hello yet.
        last_id = read_last_id(user_id=user_id)
        async_to_sync(services.message_send)(
            sender=bob, recipient="ALL", text="meanwhile", client_id=None
        )
        return last_id

    monkeypatch.setattr(
        consumers, "_last_visible_id", selectors.in_thread_pool(last_id_then_a_post)
    )
    alice_socket = await connect_as(alice)  # its first frame is hello
    frame = await alice_socket.receive_until("message")
    assert frame["text"] == "meanwhile"
    assert frame["id"] > alice_socket.hello["last_id"]


async def test_dm_to_offline_user_is_stored_and_synced_later(connect_as, alice, bob):
    alice_socket = await connect_as(alice)
    await alice_socket.send(dm("bob", "are you there?"))
    response = await alice_socket.receive_until("response")
    assert response["code"] == 202
    assert [m.text for m in await stored_messages(recipient=bob)] == ["are you there?"]

    bob_socket = await connect_as(bob)
    assert bob_socket.hello["last_id"] == response["id"]
    await bob_socket.send({"type": "sync", "after": 0})
    frame = await bob_socket.receive_until("message")
    assert frame["id"] == response["id"] and frame["text"] == "are you there?"
    assert await bob_socket.receive_until("synced") == {
        "type": "synced",
        "last_id": response["id"],
        "has_more": False,
    }


async def test_message_is_committed_before_anyone_is_told(connect_as, alice, bob, monkeypatch):
    await connect_as(bob)
    alice_socket = await connect_as(alice)
    seen_in_database = []

    def checking(deliver):
        async def check_then_deliver(*args, **kwargs):
            event = kwargs.get("event") or args[-1]
            message_id = json.loads(event["frame"])["id"]
            seen_in_database.append(await Message.objects.filter(pk=message_id).aexists())
            return await deliver(*args, **kwargs)

        return check_then_deliver

    monkeypatch.setattr(delivery, "dm_deliver", checking(delivery.dm_deliver))
    monkeypatch.setattr(delivery, "group_publish", checking(delivery.group_publish))
    await alice_socket.send(dm("bob", "durable"))
    await alice_socket.receive_until("response")
    await alice_socket.send(dm("ALL", "durable too"))
    await alice_socket.receive_until("response")
    # Both sends were checked (the in-memory path checks the DM once more per group).
    assert len(seen_in_database) >= 2
    assert all(seen_in_database)


async def test_resend_with_same_client_id_stores_nothing_and_sends_nothing_to_others(
    connect_as, alice, bob
):
    alice_socket = await connect_as(alice)
    other_tab = await connect_as(alice)
    bob_socket = await connect_as(bob)
    await alice_socket.send(dm("bob", "once", client_id="retry-1"))
    first = await alice_socket.receive_until("response")
    await bob_socket.receive_until("message")
    await other_tab.receive_until("message")
    await alice_socket.receive_until("message")

    await other_tab.send(dm("bob", "once", client_id="retry-1"))
    again = await other_tab.receive_until("response")
    assert again["id"] == first["id"]
    assert again["code"] == 200
    assert again["client_id"] == "retry-1"
    assert await bob_socket.receive_nothing()
    assert await alice_socket.receive_nothing()
    assert len(await stored_messages()) == 1


async def test_resend_to_an_offline_recipient_answers_202_again(connect_as, alice, bob):
    alice_socket = await connect_as(alice)
    for _ in range(2):
        await alice_socket.send(dm("bob", "queued", client_id="q"))
        assert (await alice_socket.receive_until("response"))["code"] == 202
    assert len(await stored_messages()) == 1


async def test_same_client_id_from_different_senders_are_different_messages(connect_as, alice, bob):
    alice_socket = await connect_as(alice)
    bob_socket = await connect_as(bob)
    await alice_socket.send(dm("ALL", "a", client_id="same"))
    await bob_socket.send(dm("ALL", "b", client_id="same"))
    first = await alice_socket.receive_until("response")
    second = await bob_socket.receive_until("response")
    assert first["id"] != second["id"]


async def test_unknown_or_inactive_recipient_is_404_and_nothing_is_stored(
    connect_as, alice, make_user
):
    await database_sync_to_async(make_user)("gone", is_active=False)
    alice_socket = await connect_as(alice)
    for name in ("nobody", "gone", "all"):
        await alice_socket.send(dm(name, "hello?", client_id=f"to-{name}"))
        response = await alice_socket.receive_until("response")
        assert response["code"] == 404, name
        assert response["id"] is None
        assert response["client_id"] == f"to-{name}"
        assert name in response["detail"]
    assert await stored_messages() == []


async def test_too_long_text_is_413_and_nothing_is_stored(connect_as, alice, bob, settings):
    settings.CHAT_MAX_MESSAGE_LENGTH = 10
    alice_socket = await connect_as(alice)
    await alice_socket.send(dm("bob", "x" * 11, client_id="long"))
    response = await alice_socket.receive_until("response")
    assert response["code"] == 413 and response["client_id"] == "long"
    assert "10" in response["detail"]
    await alice_socket.send(dm("bob", "x" * 10))
    assert (await alice_socket.receive_until("response"))["code"] == 202
    assert len(await stored_messages()) == 1


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "message", "recipient": "bob", "client_id": "k"},
        {"type": "message", "recipient": 7, "text": "hi", "client_id": "k"},
        {"type": "message", "recipient": "bob", "text": "   ", "client_id": "k"},
        {"type": "message", "recipient": "bob", "text": {"a": 1}, "client_id": "k"},
    ],
)
async def test_malformed_message_gets_400_response_and_the_socket_stays_open(
    connect_as, alice, bob, frame
):
    alice_socket = await connect_as(alice)
    await alice_socket.send(frame)
    response = await alice_socket.receive_until("response")
    assert response["code"] == 400 and response["client_id"] == "k" and response["id"] is None
    await alice_socket.send({"type": "ping"})
    assert (await alice_socket.receive_until("pong"))["type"] == "pong"
    assert await stored_messages() == []


@pytest.mark.parametrize(
    "raw",
    [
        "not json at all",
        "[1, 2, 3]",
        '{"type": "dance"}',
        '{"type": "sync", "after": -5}',
        '{"type": "sync", "after": 1.5}',
        '{"type": "read", "peer": "bob", "up_to": "7"}',
        '{"type": "typing", "recipient": null}',
        '{"no_type": true}',
    ],
)
async def test_bad_frames_get_a_400_error_and_the_socket_stays_open(connect_as, alice, raw):
    alice_socket = await connect_as(alice)
    await alice_socket.send_text(raw)
    error = await alice_socket.receive_until("error")
    assert error["code"] == 400 and error["detail"]
    await alice_socket.send({"type": "ping"})
    assert (await alice_socket.receive_until("pong"))["type"] == "pong"


async def test_binary_frame_gets_a_400_error(connect_as, alice):
    alice_socket = await connect_as(alice)
    await alice_socket.communicator.send_to(bytes_data=b'{"type": "ping"}')
    assert (await alice_socket.receive_until("error"))["code"] == 400


async def test_frame_over_64_kib_gets_413_error_and_the_socket_stays_open(connect_as, alice):
    alice_socket = await connect_as(alice)
    await alice_socket.send(dm("bob", "x" * 70_000))
    assert (await alice_socket.receive_until("error"))["code"] == 413
    await alice_socket.send({"type": "ping"})
    assert (await alice_socket.receive_until("pong"))["type"] == "pong"


async def test_sync_after_a_gap_returns_exactly_the_missed_messages(connect_as, alice, bob, carol):
    alice_socket = await connect_as(alice)
    bob_socket = await connect_as(bob)
    await alice_socket.send(dm("bob", "seen live"))
    await alice_socket.receive_until("response")
    seen = await bob_socket.receive_until("message")
    await bob_socket.close()

    missed = []
    for frame in (dm("bob", "missed dm"), dm("ALL", "missed post")):
        await alice_socket.send(frame)
        missed.append((await alice_socket.receive_until("response"))["id"])
    carol_socket = await connect_as(carol)
    await carol_socket.send(dm("alice", "not for bob"))
    await carol_socket.receive_until("response")

    bob_again = await connect_as(bob)
    await bob_again.send({"type": "sync", "after": seen["id"]})
    replay = []
    while (frame := await bob_again.receive())["type"] != "synced":
        if frame["type"] == "message":
            replay.append(frame["id"])
    assert replay == missed
    assert frame == {"type": "synced", "last_id": missed[-1], "has_more": False}


async def test_sync_returns_at_most_500_then_has_more(connect_as, alice, bob):
    ids = await create_messages(alice, None, 503)
    bob_socket = await connect_as(bob)
    await bob_socket.send({"type": "sync", "after": 0})
    frames = [await bob_socket.receive() for _ in range(501)]
    assert [f["id"] for f in frames[:500]] == ids[:500]
    assert frames[500] == {"type": "synced", "last_id": ids[499], "has_more": True}
    await bob_socket.send({"type": "sync", "after": ids[499]})
    rest = [await bob_socket.receive() for _ in range(4)]
    assert [f["id"] for f in rest[:3]] == ids[500:]
    assert rest[3] == {"type": "synced", "last_id": ids[-1], "has_more": False}


async def test_sync_with_nothing_new_answers_synced_with_after(connect_as, alice):
    alice_socket = await connect_as(alice)
    await alice_socket.send({"type": "sync", "after": 1234})
    assert await alice_socket.receive() == {"type": "synced", "last_id": 1234, "has_more": False}


async def test_sync_replays_the_senders_client_id_only_to_the_sender(connect_as, alice, bob):
    alice_socket = await connect_as(alice)
    await alice_socket.send(dm("bob", "tagged", client_id="tag"))
    await alice_socket.receive_until("response")
    await alice_socket.send({"type": "sync", "after": 0})
    assert (await alice_socket.receive_until("message"))["client_id"] == "tag"
    bob_socket = await connect_as(bob)
    await bob_socket.send({"type": "sync", "after": 0})
    assert "client_id" not in await bob_socket.receive_until("message")


async def test_ping_answers_pong_with_the_newest_visible_id(connect_as, alice, bob, carol):
    [public] = await create_messages(carol, None, 1)
    await create_messages(carol, bob, 1)
    alice_socket = await connect_as(alice)
    await alice_socket.send({"type": "ping"})
    assert await alice_socket.receive_until("pong") == {"type": "pong", "last_id": public}


async def test_read_is_stored_and_told_to_other_tabs_and_the_peer_but_not_the_sender(
    connect_as, alice, bob
):
    [message_id] = await create_messages(bob, alice, 1)
    reading_tab = await connect_as(alice)
    other_tab = await connect_as(alice)
    bob_socket = await connect_as(bob)
    await reading_tab.send({"type": "read", "peer": "bob", "up_to": message_id})
    expected = {"type": "read", "reader": "alice", "peer": "bob", "up_to": message_id}
    assert await other_tab.receive_until("read") == expected
    assert await bob_socket.receive_until("read") == expected
    assert await reading_tab.receive_nothing_but_presence()
    marker = await ReadMarker.objects.aget(user=alice, peer=bob)
    assert marker.up_to == message_id


async def test_read_marker_only_moves_forward(connect_as, alice, bob):
    first, second = await create_messages(bob, alice, 2)
    alice_socket = await connect_as(alice)
    await alice_socket.send({"type": "read", "peer": "bob", "up_to": second})
    await alice_socket.send({"type": "read", "peer": "bob", "up_to": first})
    await alice_socket.send({"type": "ping"})
    await alice_socket.receive_until("pong")
    assert (await ReadMarker.objects.aget(user=alice, peer=bob)).up_to == second


async def test_read_of_everyone_is_stored_with_peer_all(connect_as, alice, bob):
    [post] = await create_messages(bob, None, 1)
    alice_socket = await connect_as(alice)
    other_tab = await connect_as(alice)
    await alice_socket.send({"type": "read", "peer": "ALL", "up_to": post})
    assert await other_tab.receive_until("read") == {
        "type": "read",
        "reader": "alice",
        "peer": "ALL",
        "up_to": post,
    }
    assert (await ReadMarker.objects.aget(user=alice, peer=None)).up_to == post


async def test_read_of_unknown_peer_is_a_404_error(connect_as, alice):
    alice_socket = await connect_as(alice)
    await alice_socket.send({"type": "read", "peer": "nobody", "up_to": 1})
    assert (await alice_socket.receive_until("error"))["code"] == 404


async def test_typing_reaches_the_recipient_only_and_is_not_stored(connect_as, alice, bob):
    alice_socket = await connect_as(alice)
    bob_socket = await connect_as(bob)
    await alice_socket.send({"type": "typing", "recipient": "bob"})
    assert await bob_socket.receive_until("typing") == {"type": "typing", "sender": "alice"}
    assert await alice_socket.receive_nothing_but_presence()
    assert await stored_messages() == []


async def test_typing_to_unknown_user_is_a_404_error(connect_as, alice):
    alice_socket = await connect_as(alice)
    await alice_socket.send({"type": "typing", "recipient": "nobody"})
    assert (await alice_socket.receive_until("error"))["code"] == 404


async def test_unusual_usernames_chat_through_ascii_group_names(connect_as, make_user):
    korean = await database_sync_to_async(make_user)("인혜")
    dotted = await database_sync_to_async(make_user)("a.b+c@d-e_f")
    korean_socket = await connect_as(korean)
    dotted_socket = await connect_as(dotted)
    await korean_socket.send(dm("a.b+c@d-e_f", "안녕"))
    assert (await korean_socket.receive_until("response"))["code"] == 200
    frame = await dotted_socket.receive_until("message")
    assert frame["sender"] == "인혜" and frame["text"] == "안녕"


async def handshake(headers) -> tuple[bool, int | None]:
    from chatsite.asgi import application

    communicator = WebsocketCommunicator(application, "/ws/chat/", headers=headers)
    connected, code = await communicator.connect(timeout=5)
    if connected:
        await communicator.disconnect()
    return connected, code


async def test_anonymous_socket_is_never_accepted():
    assert (await handshake(socket_headers(cookie=None)))[0] is False


async def test_inactive_user_socket_is_never_accepted(make_user):
    user = await database_sync_to_async(make_user)("dormant")
    cookie = await session_cookie(user)
    user.is_active = False
    await user.asave()
    assert (await handshake(socket_headers(cookie=cookie)))[0] is False


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        (None, "localhost"),
        ("http://evil.test", "localhost"),
        ("http://localhost.evil.test", "localhost"),
        ("http://127.0.0.1.evil.test", "127.0.0.1"),
        ("http://localhost:8001", "localhost:8000"),
        ("http://localhost", "localhost:8000"),
        ("null", "localhost"),
        ("http://evil.test", "evil.test"),
    ],
)
async def test_foreign_or_missing_origin_is_never_accepted(alice, origin, host):
    cookie = await session_cookie(alice)
    connected, _ = await handshake(socket_headers(cookie=cookie, origin=origin, host=host))
    assert connected is False


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://localhost", "localhost"),
        ("http://127.0.0.1:8000", "127.0.0.1:8000"),
        ("https://localhost", "localhost"),
        ("https://localhost:443", "localhost"),
    ],
)
async def test_same_origin_socket_is_accepted(alice, origin, host):
    cookie = await session_cookie(alice)
    connected, _ = await handshake(socket_headers(cookie=cookie, origin=origin, host=host))
    assert connected is True


async def test_over_the_rate_limit_is_429_with_retry_after_and_nothing_stored(
    connect_as, alice, bob, settings
):
    settings.CHAT_RATE_LIMIT = (2, 60)
    alice_socket = await connect_as(alice)
    for text in ("one", "two"):
        await alice_socket.send(dm("ALL", text))
        assert (await alice_socket.receive_until("response"))["code"] == 200
    await alice_socket.send(dm("ALL", "three", client_id="third"))
    refused = await alice_socket.receive_until("response")
    assert refused["code"] == 429
    assert refused["client_id"] == "third" and refused["id"] is None
    assert 29 < refused["retry_after"] <= 30
    assert [m.text for m in await stored_messages()] == ["one", "two"]
    bob_socket = await connect_as(bob)
    await bob_socket.send(dm("ALL", "bob has his own budget"))
    assert (await bob_socket.receive_until("response"))["code"] == 200


async def test_rate_limit_zero_turns_it_off(connect_as, alice, settings):
    settings.CHAT_RATE_LIMIT = None
    alice_socket = await connect_as(alice)
    for i in range(40):
        await alice_socket.send(dm("ALL", f"{i}"))
        assert (await alice_socket.receive_until("response"))["code"] == 200


async def test_typing_on_every_keystroke_reaches_the_recipient_once_a_second_without_queries(
    connect_as, alice, bob, monkeypatch
):
    from chat import selectors

    lookups = []
    original = selectors.user_get_active

    def counting(**kwargs):
        lookups.append(kwargs)
        return original(**kwargs)

    monkeypatch.setattr(selectors, "user_get_active", counting)
    alice_socket = await connect_as(alice)
    bob_socket = await connect_as(bob)
    for _ in range(20):
        await alice_socket.send({"type": "typing", "recipient": "bob"})
    await alice_socket.send({"type": "ping"})
    await alice_socket.receive_until("pong")
    assert await bob_socket.receive_until("typing") == {"type": "typing", "sender": "alice"}
    assert await bob_socket.receive_nothing_but_presence(seconds=0.3)
    assert len(lookups) <= 1


async def test_one_socket_over_the_per_user_limit_is_closed_with_4429(connect_as, alice, settings):
    settings.CHAT_MAX_SOCKETS_PER_USER = 2
    first = await connect_as(alice)
    await connect_as(alice)
    cookie = await session_cookie(alice)
    from chatsite.asgi import application

    communicator = WebsocketCommunicator(
        application, "/ws/chat/", headers=socket_headers(cookie=cookie)
    )
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    assert (await communicator.receive_output(timeout=3)) == {
        "type": "websocket.close",
        "code": 4429,
    }
    await communicator.disconnect()
    # The refused socket does not count: closing one tab makes room for another.
    await first.close()
    await connect_as(alice)


async def test_sender_and_id_in_a_client_frame_are_ignored(connect_as, alice, bob, carol):
    alice_socket = await connect_as(alice)
    bob_socket = await connect_as(bob)
    forged = dm("bob", "who am i", sender="carol", id=1, sent_at="2000-01-01T00:00:00Z")
    await alice_socket.send(forged)
    response = await alice_socket.receive_until("response")
    got = await bob_socket.receive_until("message")
    assert got["sender"] == "alice" and got["id"] == response["id"]
    assert got["sent_at"] != "2000-01-01T00:00:00Z"
    [stored] = await stored_messages()
    assert stored.sender_id == alice.pk


async def test_read_of_someone_elses_conversation_moves_only_the_readers_own_marker(
    connect_as, alice, bob, carol
):
    [private] = await create_messages(alice, bob, 1)
    alice_socket = await connect_as(alice)
    bob_socket = await connect_as(bob)
    carol_socket = await connect_as(carol)
    await carol_socket.send({"type": "read", "peer": "bob", "up_to": private})
    await carol_socket.send({"type": "ping"})
    await carol_socket.receive_until("pong")
    # Carol has no conversation with bob: nothing to mark, nobody told.
    assert not await ReadMarker.objects.filter(user=carol).aexists()
    assert await alice_socket.receive_nothing_but_presence()
    assert await bob_socket.receive_nothing_but_presence()


async def test_frames_beyond_the_per_socket_frame_rate_get_429_unserved(
    connect_as, alice, settings
):
    settings.CHAT_FRAME_RATE_LIMIT = (3, 60)
    alice_socket = await connect_as(alice)
    for _ in range(3):
        await alice_socket.send({"type": "ping"})
        assert (await alice_socket.receive_until("pong"))["type"] == "pong"
    await alice_socket.send({"type": "ping"})
    refused = await alice_socket.receive()
    assert refused["type"] == "error" and refused["code"] == 429
    await alice_socket.send(dm("ALL", "too fast", client_id="fast"))
    response = await alice_socket.receive_until("response")
    assert response["code"] == 429 and response["client_id"] == "fast"
    assert response["retry_after"] > 0
    assert await stored_messages() == []


async def test_a_dm_to_a_user_deactivated_a_moment_ago_is_404(connect_as, alice, bob):
    alice_socket = await connect_as(alice)
    await alice_socket.send(dm("bob", "before"))
    assert (await alice_socket.receive_until("response"))["code"] == 202
    bob.is_active = False
    await bob.asave()
    await alice_socket.send(dm("bob", "after"))
    assert (await alice_socket.receive_until("response"))["code"] == 404


async def test_a_server_that_hands_frames_over_without_a_queue_is_served_the_same(
    connect_as, alice, bob
):
    """daphne's receive is an asyncio.Queue's get, which the consumer shares with the layer;
    any other receive is read by a task of its own into the consumer's inbox."""
    from chatsite.asgi import application

    async def server_without_a_queue(scope: Any, receive: Any, send: Any) -> None:
        async def receive_frame() -> Any:
            return await receive()

        await application(scope, receive_frame, send)

    alice_socket = await connect_as(alice, application=server_without_a_queue)
    bob_socket = await connect_as(bob, application=server_without_a_queue)
    await alice_socket.send(dm("bob", "through the inbox"))
    assert (await alice_socket.receive_until("response"))["code"] == 200
    assert (await bob_socket.receive_until("message"))["text"] == "through the inbox"


async def no_direct_channel(*, put: Any, layer: Any = None) -> None:
    return None


async def test_a_channel_layer_that_fails_while_the_socket_waits_closes_it_with_1013(
    connect_as, alice, monkeypatch
):
    """A layer's receive that raises (Redis pub/sub hands events to the inbox instead)."""
    monkeypatch.setattr(delivery, "channel_open", no_direct_channel)
    failing = asyncio.Event()
    layer = get_channel_layer()
    receive = layer.receive

    async def receive_until_redis_fails(channel):
        waiting = asyncio.ensure_future(receive(channel))
        failed = asyncio.ensure_future(failing.wait())
        await asyncio.wait([waiting, failed], return_when=asyncio.FIRST_COMPLETED)
        if waiting.done():
            failed.cancel()
            return waiting.result()
        waiting.cancel()
        raise redis.exceptions.ConnectionError("Redis went away")

    monkeypatch.setattr(layer, "receive", receive_until_redis_fails)
    socket = await connect_as(alice)
    await socket.send({"type": "ping"})
    assert (await socket.receive_until("pong"))["type"] == "pong"
    failing.set()
    assert await socket.closed_with(seconds=3) == 1013
