"""Two fixes to daphne's WebSocket protocol, applied once at start-up (chatsite/asgi.py).

Server close codes: let daphne send the registered server close codes 1011-1014.

daphne closes sockets through autobahn's sendClose, which only accepts 1000 and 3000-4999
(django/daphne#374, crossbario/autobahn-python#1642), so a server cannot say "service
restart" (1012) or "try again later" (1013), the codes clients reconnect after. RFC 6455
and the IANA registry allow a server to send them; daphne itself sends 1011 through the
lower-level sendCloseFrame. This sends the registered codes the same way.

Sends after the close: daphne drops what an application sends to a socket that is gone,
but between the start of the closing handshake (the client's close frame, or the server's
own close) and the moment the TCP connection is gone, autobahn raises Disconnected into the
application instead (django/channels#1820). A DM or presence frame that reached a closing
socket then failed its consumer, which ended without leaving presence. The frame is
dropped here as it would be a moment later: the client syncs from its last id when it
reconnects, and the database has every message.
"""

from typing import Any

SERVER_CLOSE_CODES = frozenset({1001, 1011, 1012, 1013, 1014})


def allow_server_close_codes() -> None:
    """Patch daphne's WebSocketProtocol.serverClose once; a no-op without daphne."""
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:
        return
    original = WebSocketProtocol.serverClose
    if getattr(original, "allows_server_close_codes", False):
        return

    def server_close(self: Any, code: int | None = None) -> None:
        if code in SERVER_CLOSE_CODES:
            self.sendCloseFrame(code=code)
        else:
            original(self, code)

    server_close.allows_server_close_codes = True
    WebSocketProtocol.serverClose = server_close


def drop_sends_after_close() -> None:
    """Patch daphne's WebSocketProtocol.serverSend once; a no-op without daphne."""
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:
        return
    original = WebSocketProtocol.serverSend
    if getattr(original, "drops_sends_after_close", False):
        return
    closed = (WebSocketProtocol.STATE_CLOSING, WebSocketProtocol.STATE_CLOSED)

    def server_send(self: Any, content: str | bytes, binary: bool = False) -> None:
        if self.state in closed:
            return
        original(self, content, binary)

    server_send.drops_sends_after_close = True
    WebSocketProtocol.serverSend = server_send
