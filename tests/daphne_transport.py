"""daphne's HTTP and WebSocket protocols over Twisted's in-memory transport, with an ASGI
application on the test's event loop: what the chat's patches to daphne do to a socket."""

import asyncio
import os
from typing import Any

from daphne.http_protocol import HTTPFactory
from daphne.server import Server
from daphne.ws_protocol import WebSocketFactory
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from chat.socket_memory import trim_socket_state

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

    def connect(self, *data: bytes, clock: Clock | None = None) -> StringTransport:
        """A connection that sends `data` (the upgrade request by default), read by read.

        With `clock`, the HTTP channel's idle timer runs on it instead of the reactor.
        """
        address = IPv4Address("TCP", "127.0.0.1", 50000)
        channel = self.server.http_factory.buildProtocol(address)
        if clock is not None:
            channel.callLater = clock.callLater
        transport = StringTransport(
            peerAddress=address, hostAddress=IPv4Address("TCP", "127.0.0.1", 8000)
        )
        channel.makeConnection(transport)
        for chunk in data or [UPGRADE]:
            channel.dataReceived(chunk)
        return transport


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)
