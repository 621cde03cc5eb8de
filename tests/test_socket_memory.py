"""What daphne keeps per open socket, as the chat trims it (chat/socket_memory.py).

A WebSocket handshake runs through daphne's own HTTP and WebSocket protocols over Twisted's
in-memory transport (tests/daphne_transport.py).
"""

import asyncio
from typing import Any

import pytest
from daphne.server import Server
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel

from chat.socket_memory import HANDSHAKE_ATTRIBUTES, HandshakePath, Inbox, trim_socket_state
from tests.daphne_transport import Daphne, client_frame, settle


@pytest.fixture
def events() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def echo(events) -> Any:
    """Accepts, then echoes every text frame and records what it received."""

    async def application(scope, receive, send):
        events.append({"receive": receive})
        while True:
            message = await receive()
            events.append(message)
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
            elif message["type"] == "websocket.receive":
                await send({"type": "websocket.send", "text": message["text"].upper()})
            elif message["type"] == "websocket.disconnect":
                return

    return application


async def test_after_the_handshake_daphne_keeps_no_copy_of_the_upgrade_request(echo, events):
    daphne = Daphne(echo)
    transport = daphne.connect()
    await settle()
    protocol = transport.protocol
    assert b"101 Switching Protocols" in transport.value()
    assert isinstance(events[0]["receive"].__self__, Inbox)
    # The HTTP channel stays the transport's producer (it pauses reading while sends back
    # up), without the request it parsed.
    assert isinstance(transport.producer, HTTPChannel)
    assert transport.producer.requests == []
    assert not set(HANDSHAKE_ATTRIBUTES) & set(vars(protocol))
    assert isinstance(protocol.request, HandshakePath)
    assert protocol.request.path == "/ws/chat/"


async def test_a_trimmed_socket_still_carries_frames_both_ways_and_closes(echo, events):
    daphne = Daphne(echo)
    transport = daphne.connect()
    await settle()
    transport.clear()
    transport.protocol.dataReceived(client_frame(0x1, b"hello"))
    await settle()
    assert events[-1] == {"type": "websocket.receive", "text": "hello"}
    assert b"HELLO" in transport.value()
    transport.protocol.dataReceived(client_frame(0x8, b"\x03\xe8"))
    transport.protocol.connectionLost(Failure(ConnectionDone()))
    await settle()
    assert events[-1] == {"type": "websocket.disconnect", "code": 1000}


async def test_the_inbox_hands_items_over_in_order_to_a_waiting_reader():
    inbox = Inbox()
    reader = asyncio.ensure_future(inbox.get())
    await settle()
    inbox.put_nowait("first")
    inbox.put("second")
    assert await reader == "first"
    assert await inbox.get() == "second"


async def test_a_cancelled_read_loses_nothing():
    inbox = Inbox()
    reader = asyncio.ensure_future(inbox.get())
    await settle()
    inbox.put("kept")
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    assert await inbox.get() == "kept"


async def test_a_second_reader_at_once_is_an_error_not_a_reader_that_never_wakes():
    inbox = Inbox()
    first = asyncio.ensure_future(inbox.get())
    await settle()
    with pytest.raises(RuntimeError, match="another reader"):
        await inbox.get()
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)


def test_the_patch_applies_once():
    trim_socket_state()
    patched = Server.create_application
    trim_socket_state()
    assert Server.create_application is patched
