"""The process fixtures work: real daphne servers on one Redis, a real client, a private Redis."""

import pytest
import redis

from tests.processes import handshake_refused

pytestmark = [
    pytest.mark.processes,
    pytest.mark.django_db(transaction=True),
]


@pytest.mark.redis
async def test_direct_message_from_one_server_reaches_the_recipient_on_the_other(
    two_servers, live_socket, alice, bob
):
    first, second = two_servers
    bob_socket = await live_socket(second, bob)
    alice_socket = await live_socket(first, alice)
    assert alice_socket.hello["user"] == "alice"
    assert alice_socket.hello["online"] == ["alice", "bob"]

    await alice_socket.send({"type": "message", "recipient": "bob", "text": "across processes"})

    assert (await alice_socket.receive_until("response"))["code"] == 200
    frame = await bob_socket.receive_until("message")
    assert (frame["sender"], frame["recipient"], frame["text"]) == (
        "alice",
        "bob",
        "across processes",
    )


@pytest.mark.redis
async def test_post_to_all_reaches_sockets_on_both_servers(two_servers, live_socket, alice, bob):
    first, second = two_servers
    alice_socket = await live_socket(first, alice)
    bob_socket = await live_socket(second, bob)

    await bob_socket.send({"type": "message", "recipient": "ALL", "text": "everyone"})

    assert (await bob_socket.receive_until("response"))["code"] == 200
    assert (await alice_socket.receive_until("message"))["text"] == "everyone"
    assert (await bob_socket.receive_until("message"))["text"] == "everyone"


@pytest.mark.redis
async def test_handshake_with_a_foreign_origin_is_refused(two_servers, live_socket, alice):
    first, second = two_servers

    assert await handshake_refused(first, alice, origin="http://evil.example")
    assert await handshake_refused(first, alice, origin=second.origin)
    assert await handshake_refused(first, None)
    assert not await handshake_refused(first, alice)


@pytest.mark.redis
def test_own_redis_answers_again_after_a_restart_with_its_data_gone(own_redis):
    client = redis.Redis.from_url(own_redis.url(3), socket_connect_timeout=1)
    try:
        client.set("key", "value")
        own_redis.stop()
        with pytest.raises(redis.ConnectionError):
            client.ping()

        own_redis.start()

        assert client.ping()
        assert client.get("key") is None
    finally:
        client.close()
