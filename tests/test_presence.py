"""The presence store contract, run against both backends."""

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from chat.consumers import ChatConsumer
from chat.presence import MemoryPresenceStore, RedisPresenceStore, get_presence_store
from chat.runtime import get_runtime
from tests.conftest import presence_state, session_cookie


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store(request, settings):
    if request.param == "memory":
        return MemoryPresenceStore()
    settings.REDIS_URL = request.getfixturevalue("redis_url")
    return RedisPresenceStore(prefix="test:presence")


async def test_first_connection_brings_a_user_online(store):
    assert await store.connect(user_id=1, username="alice", channel_name="c1") == 1
    assert await store.is_online(user_id=1) is True
    assert await store.online_usernames() == ["alice"]


async def test_second_connection_changes_nothing(store):
    await store.connect(user_id=1, username="alice", channel_name="c1")
    assert await store.connect(user_id=1, username="alice", channel_name="c2") == 2
    assert await store.disconnect(user_id=1, channel_name="c2") is False
    assert await store.is_online(user_id=1) is True


async def test_last_disconnection_takes_a_user_offline(store):
    await store.connect(user_id=1, username="alice", channel_name="c1")
    await store.connect(user_id=1, username="alice", channel_name="c2")
    await store.disconnect(user_id=1, channel_name="c1")
    assert await store.disconnect(user_id=1, channel_name="c2") is True
    assert await store.is_online(user_id=1) is False
    assert await store.online_usernames() == []


async def test_disconnecting_an_unknown_connection_is_harmless(store):
    assert await store.disconnect(user_id=9, channel_name="never") is False
    await store.connect(user_id=1, username="alice", channel_name="c1")
    assert await store.disconnect(user_id=1, channel_name="other") is False
    assert await store.is_online(user_id=1) is True


async def test_online_usernames_are_sorted_and_unicode_safe(store):
    # The last two are no valid usernames; the store still returns any name as it was given.
    names = ["인혜", "bob", "a.b+c@d-e_f", "emoji🙂", 'quote"back\\slash/']
    for user_id, name in enumerate(names, start=1):
        await store.connect(user_id=user_id, username=name, channel_name=f"c{user_id}")
    assert await store.online_usernames() == sorted(names)


async def test_connecting_with_the_list_counts_each_socket_and_lists_everyone_online(store):
    await store.connect(user_id=2, username="bob", channel_name="b1")
    await store.connect(user_id=3, username="carol", channel_name="c1")
    await store.disconnect(user_id=3, channel_name="c1")
    assert await store.connect_listing(connections=[(1, "alice", "a1")]) == ([1], ["alice", "bob"])
    assert await store.connect_listing(
        connections=[(1, "alice", "a2"), (4, "dave", "d1"), (4, "dave", "d2"), (2, "bob", "b2")]
    ) == ([2, 1, 2, 2], ["alice", "bob", "dave"])
    assert await store.is_online(user_id=4) is True


async def test_connecting_nobody_with_the_list_lists_everyone_online(store):
    await store.connect(user_id=2, username="bob", channel_name="b1")
    assert await store.connect_listing(connections=[]) == ([], ["bob"])


async def test_connecting_more_than_one_script_call_holds_counts_every_socket(store):
    connections = [(user_id, f"user{user_id:04d}", f"c{user_id}") for user_id in range(1, 1202)]
    connections.append((1, "user0001", "second"))
    counts, online = await store.connect_listing(connections=connections)
    assert counts == [1] * 1201 + [2]
    assert online == sorted(name for _, name, _ in connections[:1201])


@pytest.mark.parametrize("backend", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def test_connections_that_are_not_renewed_expire_and_a_sweep_takes_users_offline(
    backend, settings, request
):
    if backend == "memory":
        store = MemoryPresenceStore(ttl=0.3)
    else:
        settings.REDIS_URL = request.getfixturevalue("redis_url")
        store = RedisPresenceStore(prefix="test:presence", ttl=0.3)
    await store.connect(user_id=1, username="alice", channel_name="crashed-process")
    await store.connect(user_id=2, username="bob", channel_name="live-process")
    await asyncio.sleep(0.2)
    assert await store.heartbeat(connections=[(2, "bob", "live-process")]) == []
    assert await store.sweep() == []
    await asyncio.sleep(0.2)
    assert await store.sweep() == [1]
    assert await store.sweep() == []
    assert await store.online_usernames() == ["bob"]
    assert await store.is_online(user_id=1) is False


async def test_a_heartbeat_brings_back_a_user_swept_while_their_process_stalled(store):
    await store.connect(user_id=1, username="alice", channel_name="c1")
    await store.disconnect(user_id=1, channel_name="c1")
    assert await store.heartbeat(connections=[(1, "alice", "c1")]) == [1]
    assert await store.heartbeat(connections=[(1, "alice", "c1")]) == []
    assert await store.online_usernames() == ["alice"]


async def test_usernames_and_online_ids_answer_for_many_users(store):
    await store.connect(user_id=1, username="alice", channel_name="c1")
    await store.connect(user_id=2, username="bob", channel_name="c2")
    await store.disconnect(user_id=2, channel_name="c2")
    assert await store.online_ids(user_ids=[1, 2, 3]) == {1}
    assert await store.usernames(user_ids=[1, 2]) == {1: "alice", 2: "bob"}


# Presence as sockets see it.


@pytest.mark.django_db(transaction=True)
async def test_changes_within_a_second_go_out_together_in_one_frame(connect_as, make_user):
    watcher = await connect_as(await database_sync_to_async(make_user)("watcher"))
    await presence_state(watcher, online=["watcher"])
    users = [await database_sync_to_async(make_user)(f"user{i}") for i in range(5)]
    for user in users:
        await connect_as(user)
    frame = await watcher.receive_until("presence")
    assert frame == {"type": "presence", "online": [u.username for u in users], "offline": []}


@pytest.mark.django_db(transaction=True)
async def test_a_second_tab_opening_or_closing_changes_nothing(connect_as, alice, bob):
    alice_socket = await connect_as(alice)
    bob_first = await connect_as(bob)
    await presence_state(alice_socket, online=["alice", "bob"])
    bob_second = await connect_as(bob)
    await bob_second.close()
    assert await alice_socket.receive_nothing(seconds=1.5)
    await bob_first.close()
    assert await presence_state(alice_socket, offline=["bob"]) == {"bob": "offline"}


@pytest.mark.django_db(transaction=True)
async def test_hello_lists_everyone_online_including_the_user(connect_as, alice, bob):
    await connect_as(bob)
    assert (await connect_as(alice)).hello["online"] == ["alice", "bob"]


@pytest.mark.django_db(transaction=True)
async def test_a_reconnect_storm_costs_each_socket_a_handful_of_presence_frames(make_user):
    users = await database_sync_to_async(lambda: [make_user(f"storm{i:03}") for i in range(300)])()
    # The consumer alone, with the user in the scope: this test is about presence, not auth.
    communicators = []
    for user in users:
        communicator = WebsocketCommunicator(ChatConsumer.as_asgi(), "/ws/chat/")
        communicator.scope["user"] = user
        communicators.append(communicator)
    results = await asyncio.gather(*(c.connect(timeout=10) for c in communicators))
    assert all(connected for connected, _ in results)
    await asyncio.sleep(1.5)
    counts = []
    for communicator in communicators:
        kinds = []
        while not await communicator.receive_nothing(timeout=0.01):
            kinds.append((await communicator.receive_json_from())["type"])
        assert kinds[0] == "hello" and set(kinds[1:]) <= {"presence"}, kinds
        counts.append(len(kinds) - 1)
    # A naive build sends one frame per user that came online: 300 to each socket here.
    assert max(counts) <= 4, counts
    assert sum(counts) >= len(communicators), "every socket heard of the others"
    for communicator in communicators:
        await communicator.disconnect()
    await get_runtime().stop()


@pytest.mark.django_db(transaction=True)
async def test_a_socket_whose_handler_fails_still_takes_its_user_offline(connect_as, alice, bob):
    """A consumer that ends on an error, not on websocket.disconnect, still leaves presence."""
    from chatsite.asgi import application

    failing = False
    ended_with: list[BaseException] = []

    async def app(scope, receive, send):
        async def send_or_fail(message):
            if failing:
                raise RuntimeError("the server could not send on this socket")
            await send(message)

        try:
            await application(scope, receive, send_or_fail)
        except RuntimeError as error:
            ended_with.append(error)

    alice_socket = await connect_as(alice)
    bob_socket = await connect_as(bob, application=app)
    await presence_state(alice_socket, online=["alice", "bob"])
    failing = True
    await alice_socket.send({"type": "message", "recipient": "bob", "text": "hi"})
    assert (await alice_socket.receive_until("response"))["code"] == 200
    assert await presence_state(alice_socket, offline=["bob"]) == {"bob": "offline"}
    assert [s for s in get_runtime().sockets if s.user_id == bob.pk] == []
    await bob_socket.communicator.wait()
    assert len(ended_with) == 1


@pytest.mark.django_db(transaction=True)
async def test_sockets_opening_while_a_presence_step_runs_share_the_next(
    connect_as, alice, bob, carol, monkeypatch
):
    users = [alice, bob, carol]
    cookies = [await session_cookie(user) for user in users]
    store, batches = get_presence_store(), []
    connect_listing = store.connect_listing

    async def slow_first_step(*, connections):
        batches.append(sorted(username for _, username, _ in connections))
        if len(batches) == 1:
            await asyncio.sleep(0.3)  # the other sockets arrive meanwhile
        return await connect_listing(connections=connections)

    monkeypatch.setattr(store, "connect_listing", slow_first_step)
    sockets = await asyncio.gather(
        *(connect_as(user, cookie=cookie) for user, cookie in zip(users, cookies, strict=True))
    )

    assert sorted(name for batch in batches for name in batch) == ["alice", "bob", "carol"]
    assert len(batches) <= 2
    for socket in sockets:
        expected = ["alice", "bob", "carol"] if socket.hello["user"] in batches[-1] else None
        assert socket.hello["online"] == (expected or batches[0])
