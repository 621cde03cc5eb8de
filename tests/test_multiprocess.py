"""Two channel layer instances on one Redis stand in for two server processes."""

import pytest
from channels.routing import URLRouter
from django.urls import path

from chat.consumers import ChatConsumer
from chat.security import SameOriginValidator
from chat.socket_auth import socket_auth_stack
from chatsite.settings import redis_channel_layer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


@pytest.fixture
def two_processes(settings, redis_url):
    """The default layer is process one; the returned app serves sockets of process two."""
    settings.REDIS_URL = redis_url
    settings.CHANNEL_LAYERS = {
        "default": redis_channel_layer(redis_url),
        "second": redis_channel_layer(redis_url),
    }
    consumer = ChatConsumer.as_asgi(channel_layer_alias="second")
    return SameOriginValidator(socket_auth_stack(URLRouter([path("ws/chat/", consumer)])))


async def test_dm_from_one_process_reaches_a_socket_on_the_other(
    connect_as, two_processes, alice, bob
):
    bob_socket = await connect_as(bob, application=two_processes)
    alice_socket = await connect_as(alice)
    assert alice_socket.hello["online"] == ["alice", "bob"]
    await alice_socket.send({"type": "message", "recipient": "bob", "text": "across"})
    assert (await alice_socket.receive_until("response"))["code"] == 200
    frame = await bob_socket.receive_until("message")
    assert frame["sender"] == "alice" and frame["text"] == "across"


async def test_post_to_all_reaches_sockets_on_both_processes(connect_as, two_processes, alice, bob):
    bob_socket = await connect_as(bob, application=two_processes)
    alice_socket = await connect_as(alice)
    await bob_socket.send({"type": "message", "recipient": "ALL", "text": "everyone"})
    assert (await alice_socket.receive_until("message"))["text"] == "everyone"
    assert (await bob_socket.receive_until("message"))["text"] == "everyone"
