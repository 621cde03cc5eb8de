"""A frame to everyone, framed once for all its recipients (chat/broadcast.py), written
through daphne's protocols over Twisted's in-memory transport (tests/daphne_transport.py)."""

from typing import Any

import pytest

from chat.broadcast import PreparedFrame, SocketSend
from tests.daphne_transport import Daphne, client_frame, settle


@pytest.fixture
def sends() -> list[Any]:
    return []


@pytest.fixture
def accepting(sends) -> Any:
    """Accepts every socket and keeps its `send`; ends at the disconnect."""

    async def application(scope, receive, send):
        sends.append(send)
        while (message := await receive())["type"] != "websocket.disconnect":
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})

    return application


async def open_sockets(application: Any, count: int) -> list[Any]:
    daphne = Daphne(application)
    transports = [daphne.connect() for _ in range(count)]
    await settle()
    for transport in transports:
        assert b"101 Switching Protocols" in transport.value()
        transport.clear()
    return transports


async def test_a_prepared_frame_is_framed_once_and_written_to_every_open_socket(accepting, sends):
    transports = await open_sockets(accepting, 3)
    frame = PreparedFrame('{"type":"message","text":"to everyone ✓"}')

    assert all(isinstance(send, SocketSend) for send in sends)
    assert all(send.send_prepared(frame) for send in sends)

    payload = frame.text.encode()
    expected = bytes([0x81, len(payload)]) + payload  # a server's text frame: no mask
    assert [transport.value() for transport in transports] == [expected] * 3
    message = frame.message
    sends[0].send_prepared(frame)
    assert frame.message is message


async def test_a_socket_in_its_closing_handshake_gets_no_prepared_frame(accepting, sends):
    (transport,) = await open_sockets(accepting, 1)
    transport.protocol.dataReceived(client_frame(0x8, b"\x03\xe8"))  # the client's close
    transport.clear()

    assert sends[0].send_prepared(PreparedFrame("late")) is False
    assert transport.value() == b""


async def test_every_other_message_still_goes_through_daphne(accepting, sends):
    (transport,) = await open_sockets(accepting, 1)

    await sends[0]({"type": "websocket.send", "text": "one by one"})

    assert transport.value() == bytes([0x81, 10]) + b"one by one"
