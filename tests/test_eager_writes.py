import asyncio
import socket
from collections.abc import Iterator

import pytest
from autobahn.twisted.websocket import WebSocketServerProtocol
from twisted.internet import error, tcp
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactor

from chat.eager_writes import enable_eager_writes, written_together


@pytest.fixture(autouse=True)
def eager_writes() -> None:
    enable_eager_writes()


@pytest.fixture
def reactor() -> MemoryReactor:
    return MemoryReactor()


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    server_side, peer = socket.socketpair()
    peer.setblocking(False)
    yield server_side, peer
    server_side.close()
    peer.close()


def transport_for(protocol: Protocol, server_side: socket.socket, reactor: MemoryReactor):
    return tcp.Server(server_side, protocol, ("127.0.0.1", 50000), None, 1, reactor)


def received(peer: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = peer.recv(1 << 20)
        except BlockingIOError:
            return b"".join(chunks)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def test_a_websocket_frame_reaches_the_peer_without_waiting_for_the_loop(sockets, reactor):
    server_side, peer = sockets
    transport = transport_for(WebSocketServerProtocol(), server_side, reactor)

    transport.write(b"first frame")
    transport.write(b"second frame")

    assert received(peer) == b"first frame" + b"second frame"
    assert transport not in reactor.writers


def test_an_http_connection_keeps_twisteds_buffering(sockets, reactor):
    server_side, peer = sockets
    transport = transport_for(Protocol(), server_side, reactor)

    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")

    assert received(peer) == b""
    assert transport in reactor.writers
    transport.doWrite()
    assert received(peer) == b"HTTP/1.1 200 OK\r\n\r\n"


def test_what_the_kernel_does_not_take_waits_and_goes_out_in_order(sockets, reactor):
    server_side, peer = sockets
    server_side.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    transport = transport_for(WebSocketServerProtocol(), server_side, reactor)
    big = bytes(range(256)) * 4096

    transport.write(big)
    transport.write(b"next frame")

    assert transport in reactor.writers
    out = received(peer)
    while transport in reactor.writers:
        assert transport.doWrite() is None
        out += received(peer)
    assert out == big + b"next frame"


def test_a_write_to_a_vanished_peer_is_closed_by_twisteds_own_path(sockets, reactor):
    server_side, peer = sockets
    transport = transport_for(WebSocketServerProtocol(), server_side, reactor)
    peer.close()

    transport.write(b"frame")

    assert transport in reactor.writers
    assert isinstance(transport.doWrite(), error.ConnectionLost)


def test_frames_written_together_leave_in_one_send_on_the_next_turn(sockets, reactor):
    server_side, peer = sockets
    transport = transport_for(WebSocketServerProtocol(), server_side, reactor)

    with written_together():
        for i in range(500):
            transport.write(b"message %d;" % i)
    transport.write(b"after")

    assert received(peer) == b""
    assert transport in reactor.writers
    transport.doWrite()
    assert received(peer) == b"".join(b"message %d;" % i for i in range(500)) + b"after"


async def test_only_the_task_that_writes_together_is_held(sockets, reactor):
    server_side, peer = sockets
    transport = transport_for(WebSocketServerProtocol(), server_side, reactor)

    async def other_task() -> None:
        transport.write(b"from another task")

    task = asyncio.ensure_future(other_task())  # started before: its context has no hold
    with written_together():
        await task

    assert received(peer) == b"from another task"


def test_enabling_twice_patches_once():
    patched = tcp.Connection.write

    enable_eager_writes()

    assert tcp.Connection.write is patched
    assert patched.eager
