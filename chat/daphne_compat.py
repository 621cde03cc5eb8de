"""Let daphne send the registered server close codes 1011-1014.

daphne closes sockets through autobahn's sendClose, which only accepts 1000 and 3000-4999
(django/daphne#374, crossbario/autobahn-python#1642), so a server cannot say "service
restart" (1012) or "try again later" (1013), the codes clients reconnect after. RFC 6455
and the IANA registry allow a server to send them; daphne itself sends 1011 through the
lower-level sendCloseFrame. This sends the registered codes the same way.
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
