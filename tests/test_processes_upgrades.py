"""A real daphne process opens sockets whose upgrade request arrives whole (handed to autobahn
at once, chat/socket_upgrades.py) or in pieces (daphne's own path), and refuses a malformed
one with daphne's 400."""

import asyncio
import base64
import os

import pytest
from asgiref.sync import sync_to_async
from django.db import close_old_connections

from tests.conftest import session_cookie
from tests.processes import HOST

pytestmark = [
    pytest.mark.processes,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def server(server_factory):
    from tests.processes import _suite_redis_url

    return server_factory(redis_url=_suite_redis_url())


async def upgrade_request(server, user, *extra: bytes) -> bytes:
    cookie = await session_cookie(user)
    await sync_to_async(close_old_connections)()
    key = base64.b64encode(os.urandom(16))
    lines = [
        b"GET /ws/chat/ HTTP/1.1",
        b"Host: %s:%d" % (HOST.encode(), server.port),
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: " + key,
        b"Sec-WebSocket-Version: 13",
        b"Origin: " + server.origin.encode(),
        b"Cookie: " + cookie.encode(),
        *extra,
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def answer(server, *pieces: bytes, until: bytes) -> bytes:
    """What the server sends after `pieces` (written 50 ms apart), up to `until`."""
    reader, writer = await asyncio.open_connection(HOST, server.port)
    try:
        for index, piece in enumerate(pieces):
            if index:
                await asyncio.sleep(0.05)
            writer.write(piece)
            await writer.drain()
        received = b""
        async with asyncio.timeout(5):
            while until not in received:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                received += chunk
        return received
    finally:
        writer.close()


async def test_an_upgrade_sent_whole_or_in_pieces_opens_a_socket_with_its_hello(server, alice):
    whole = await upgrade_request(server, alice)
    in_pieces = await upgrade_request(server, alice)

    for pieces in [(whole,), (in_pieces[:30], in_pieces[30:])]:
        received = await answer(server, *pieces, until=b'"user":"alice"')

        assert received.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        assert b'"type":"hello"' in received and b'"user":"alice"' in received


async def test_a_malformed_upgrade_gets_daphnes_400(server, alice):
    request = await upgrade_request(server, alice, b"Bad Name: x")

    received = await answer(server, request, until=b"\r\n\r\n")

    assert received.startswith(b"HTTP/1.1 400 ")
