"""daphne's WebSocket protocol as the chat patches it (chat/daphne_compat.py)."""

import pytest
from daphne.ws_protocol import WebSocketProtocol

from chat.daphne_compat import drop_sends_after_close


@pytest.fixture
def protocol() -> WebSocketProtocol:
    drop_sends_after_close()
    protocol = WebSocketProtocol()
    protocol.client_addr = ["127.0.0.1", 50000]
    return protocol


@pytest.mark.parametrize("state", ["STATE_CLOSING", "STATE_CLOSED"])
def test_a_send_to_a_socket_in_its_closing_handshake_is_dropped_not_raised(protocol, state):
    protocol.state = getattr(WebSocketProtocol, state)
    sent = []
    protocol.sendMessage = lambda payload, binary: sent.append(payload)
    protocol.handle_reply({"type": "websocket.send", "text": "a DM"})
    assert sent == []


def test_a_send_to_an_open_socket_still_goes_out(protocol):
    protocol.state = WebSocketProtocol.STATE_OPEN
    sent = []
    protocol.sendMessage = lambda payload, binary: sent.append(payload)
    protocol.handle_reply({"type": "websocket.send", "text": "a DM"})
    assert sent == [b"a DM"]


def test_the_patch_applies_once():
    drop_sends_after_close()
    patched = WebSocketProtocol.serverSend
    drop_sends_after_close()
    assert WebSocketProtocol.serverSend is patched
