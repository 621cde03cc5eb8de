"""What daphne keeps per open socket, as the chat trims it (chat/socket_memory.py).

A WebSocket handshake runs through daphne's own HTTP and WebSocket protocols over Twisted's
in-memory transport, with an ASGI application on the test's event loop.
"""

import asyncio
import os
from typing import Any

import pytest
from daphne.http_protocol import HTTPFactory
from daphne.server import Server
from daphne.ws_protocol import WebSocketFactory
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel

from chat.socket_memory import HANDSHAKE_ATTRIBUTES, HandshakePath, Inbox, trim_socket_state

UPGRADE = (
    b"GET /ws/chat/?x=1 HTTP/1.1\r\n"
    b"Host: localhost\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Cookie: sessionid=abc\r\n"
    b"\r\n"
)


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked frame, as a client sends it (payloads under 126 bytes)."""
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


class Daphne:
    """daphne's Server with its factories as Server.run sets them up, without listening."""

    def __init__(self, application: Any) -> None:
        trim_socket_state()
        # An endpoint daphne never listens on: nothing here calls Server.run.
        server = Server(application=application, endpoints=["tcp:port=0:interface=127.0.0.1"])
        server.connections = {}
        server.http_factory = HTTPFactory(server)
        server.ws_factory = WebSocketFactory(server, server="Daphne")
        server.ws_factory.setProtocolOptions(allowNullOrigin=True)
        self.server = server

    def connect(self) -> StringTransport:
        address = IPv4Address("TCP", "127.0.0.1", 50000)
        channel = self.server.http_factory.buildProtocol(address)
        transport = StringTransport(
            peerAddress=address, hostAddress=IPv4Address("TCP", "127.0.0.1", 8000)
        )
        channel.makeConnection(transport)
        channel.dataReceived(UPGRADE)
        return transport


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


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


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
