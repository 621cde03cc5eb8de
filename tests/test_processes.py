"""Many processes, one chat: real daphne processes on one Redis and one database."""

import asyncio
import time

import pytest
import redis
from channels.db import database_sync_to_async
from channels.layers import channel_layers

from chat.models import Message
from chatsite.settings import redis_channel_layer
from tests.conftest import cookie_of, logged_in_client, presence_state

pytestmark = [pytest.mark.processes, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def servers(two_servers, settings):
    """Two servers; this test process's channel layer is theirs too (for signals it sends)."""
    first, _ = two_servers
    url = first.environment()["REDIS_URL"]
    settings.REDIS_URL = url
    settings.CHANNEL_LAYERS = {"default": redis_channel_layer(url)}
    channel_layers.backends.clear()
    return two_servers


async def test_hello_and_presence_agree_across_processes(servers, live_socket, alice, bob):
    first, second = servers
    alice_socket = await live_socket(first, alice)
    bob_socket = await live_socket(second, bob)
    assert bob_socket.hello["online"] == ["alice", "bob"]
    await presence_state(alice_socket, online=["bob"])
    bob_second_tab = await live_socket(first, bob)
    await bob_second_tab.close()
    assert await alice_socket.receive_nothing(seconds=1.5)
    await bob_socket.close()
    await presence_state(alice_socket, offline=["bob"])


async def test_dm_to_a_user_online_on_another_process_is_200_and_offline_is_202(
    servers, live_socket, alice, bob, carol
):
    first, second = servers
    await live_socket(second, bob)
    alice_socket = await live_socket(first, alice)
    await alice_socket.send({"type": "message", "recipient": "bob", "text": "hi"})
    assert (await alice_socket.receive_until("response"))["code"] == 200
    await alice_socket.send({"type": "message", "recipient": "carol", "text": "later"})
    assert (await alice_socket.receive_until("response"))["code"] == 202


async def test_a_post_to_all_reaches_every_socket_on_every_process_once(
    servers, live_socket, alice, bob, carol
):
    first, second = servers
    alice_socket = await live_socket(first, alice)
    bob_socket = await live_socket(second, bob)
    carol_socket = await live_socket(first, carol)
    await alice_socket.send({"type": "message", "recipient": "ALL", "text": "hello all ✓"})
    response = await alice_socket.receive_until("response")
    assert response["code"] == 200
    for socket in (alice_socket, bob_socket, carol_socket):
        frame = await socket.receive_until("message")
        assert (frame["id"], frame["text"], frame["recipient"]) == (
            response["id"],
            "hello all ✓",
            "ALL",
        )
        while not await socket.receive_nothing(0.3):
            assert (await socket.receive())["type"] == "presence"


async def test_typing_and_read_cross_processes(servers, live_socket, alice, bob, send):
    first, second = servers
    message = await database_sync_to_async(send)(bob, alice, "read me")
    alice_socket = await live_socket(first, alice)
    bob_socket = await live_socket(second, bob)
    await alice_socket.send({"type": "typing", "recipient": "bob"})
    assert await bob_socket.receive_until("typing") == {"type": "typing", "sender": "alice"}
    await alice_socket.send({"type": "read", "peer": "bob", "up_to": message.pk})
    assert await bob_socket.receive_until("read") == {
        "type": "read",
        "reader": "alice",
        "peer": "bob",
        "up_to": message.pk,
    }


async def test_deactivation_closes_sockets_on_every_process_with_4403(servers, live_socket, alice):
    first, second = servers
    sockets = [await live_socket(first, alice), await live_socket(second, alice)]
    started = time.monotonic()
    alice.is_active = False
    await alice.asave()
    assert [await s.wait_closed(seconds=2) for s in sockets] == [4403, 4403]
    assert time.monotonic() - started < 2


async def test_logout_closes_that_sessions_sockets_on_every_process_with_4401(
    servers, live_socket, alice
):
    first, second = servers
    client = await logged_in_client(alice)
    leaving = [
        await live_socket(first, alice, cookie=cookie_of(client)),
        await live_socket(second, alice, cookie=cookie_of(client)),
    ]
    staying = await live_socket(second, alice)
    await client.post("/accounts/logout/")
    assert [await s.wait_closed(seconds=2) for s in leaving] == [4401, 4401]
    await staying.send({"type": "ping"})
    assert (await staying.receive_until("pong"))["type"] == "pong"


async def test_rate_limit_is_one_budget_across_processes(server_factory, live_socket, alice):
    first, second = server_factory(
        redis_url=_flushed_suite_redis(), env={"CHAT_RATE_LIMIT": "2/60"}, count=2
    )
    on_first = await live_socket(first, alice)
    on_second = await live_socket(second, alice)
    for socket in (on_first, on_second):
        await socket.send({"type": "message", "recipient": "ALL", "text": "counted"})
        assert (await socket.receive_until("response"))["code"] == 200
    await on_first.send({"type": "message", "recipient": "ALL", "text": "one too many"})
    refused = await on_first.receive_until("response")
    assert refused["code"] == 429 and refused["retry_after"] > 0
    assert await Message.objects.filter(text="one too many").acount() == 0


def _flushed_suite_redis() -> str:
    from tests.processes import _suite_redis_url

    return _suite_redis_url()


async def test_sigterm_closes_sockets_with_1012_and_clients_resume_elsewhere(
    servers, live_socket, alice, bob
):
    first, second = servers
    alice_socket = await live_socket(first, alice)
    bob_socket = await live_socket(second, bob)
    await alice_socket.send({"type": "message", "recipient": "bob", "text": "before"})
    assert (await alice_socket.receive_until("response"))["code"] == 200
    seen = await bob_socket.receive_until("message")
    await asyncio.to_thread(second.terminate)
    assert await bob_socket.wait_closed(seconds=5) == 1012
    await alice_socket.send({"type": "message", "recipient": "bob", "text": "while away"})
    assert (await alice_socket.receive_until("response"))["code"] == 202
    bob_again = await live_socket(first, bob)
    await bob_again.send({"type": "sync", "after": seen["id"]})
    replay = await bob_again.receive_until("message")
    assert replay["text"] == "while away"
    assert (await bob_again.receive_until("synced"))["has_more"] is False


@pytest.mark.timeout(90)
async def test_sigkill_of_a_process_heals_presence_within_45_seconds(
    servers, live_socket, alice, bob
):
    first, second = servers
    alice_socket = await live_socket(first, alice)
    await live_socket(second, bob)
    await presence_state(alice_socket, online=["bob"])
    started = time.monotonic()
    await asyncio.to_thread(second.kill)
    await presence_state(alice_socket, seconds=45, offline=["bob"])
    healed = time.monotonic() - started
    print(f"presence healed {healed:.1f} s after SIGKILL")
    assert healed < 45
    await alice_socket.send({"type": "message", "recipient": "bob", "text": "gone?"})
    assert (await alice_socket.receive_until("response"))["code"] == 202


@pytest.mark.timeout(60)
async def test_redis_restart_closes_deaf_sockets_and_service_recovers_within_10_seconds(
    server_factory, own_redis, live_socket, alice, bob
):
    server = server_factory(redis_url=own_redis.url())
    alice_socket = await live_socket(server, alice)
    await alice_socket.send({"type": "message", "recipient": "bob", "text": "acknowledged"})
    acknowledged = await alice_socket.receive_until("response")
    assert acknowledged["code"] == 202

    await asyncio.to_thread(own_redis.stop)
    # A socket that can no longer be served is closed, not left open and deaf.
    assert await alice_socket.wait_closed(seconds=5) in (1011, 1013)
    assert await asyncio.to_thread(server_status, server, "/healthz") == 503

    await asyncio.to_thread(own_redis.start)
    started = time.monotonic()
    while True:
        try:
            bob_socket = await live_socket(server, bob)
            break
        except Exception:
            assert time.monotonic() - started < 10, "no new socket within 10 s of Redis"
            await asyncio.sleep(0.25)
    alice_again = await live_socket(server, alice)
    await alice_again.send({"type": "message", "recipient": "bob", "text": "after"})
    assert (await alice_again.receive_until("response"))["code"] == 200
    assert (await bob_socket.receive_until("message"))["text"] == "after"
    recovered = time.monotonic() - started
    print(f"service recovered {recovered:.1f} s after Redis came back")
    assert recovered < 10
    # The database is the record: what was acknowledged before the outage is there.
    await bob_socket.send({"type": "sync", "after": 0})
    replay = [await bob_socket.receive_until("message")]
    assert replay[0]["id"] == acknowledged["id"]
    assert await asyncio.to_thread(server_status, server, "/healthz") == 200


async def test_sockets_left_open_through_a_redis_restart_do_not_stay_deaf(
    server_factory, own_redis, live_socket, alice
):
    server = server_factory(redis_url=own_redis.url())
    socket = await live_socket(server, alice)
    # A restart with nothing saved: every group membership is gone.
    client = redis.Redis.from_url(own_redis.url())
    await asyncio.to_thread(client.flushall)
    client.close()
    assert await socket.wait_closed(seconds=5) == 1013


def server_status(server, path: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(server.url + path, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
