"""The chat socket, end to end through the ASGI stack, as the contract's tables say."""

import pytest

from tests.conftest import stored_messages

pytestmark = pytest.mark.django_db(transaction=True)


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


async def test_direct_message_reaches_only_recipient_and_sender(connect_as, alice, bob, carol):
    alice_socket = await connect_as(alice)
    bob_socket = await connect_as(bob)
    carol_socket = await connect_as(carol)
    await alice_socket.send({"type": "message", "recipient": "bob", "text": "hi bob", "client_id": "c1"})
    response = await alice_socket.receive_until("response")
    assert response["code"] == 200
    assert response["client_id"] == "c1"
    got = await bob_socket.receive_until("message")
    assert got["text"] == "hi bob" and got["sender"] == "alice" and got["recipient"] == "bob"
    assert got["id"] == response["id"]
    echo = await alice_socket.receive_until("message")
    assert echo["id"] == response["id"]
    assert await carol_socket.receive_nothing_but_presence()
    assert [m.text for m in await stored_messages()] == ["hi bob"]
