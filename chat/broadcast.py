"""A frame to everyone, framed once for all of its recipients.

A post to ALL reaches each socket of a process through the process's relay
(`Runtime._relay_everyone`): the same text to every socket. Through ASGI each recipient cost
daphne's `handle_reply` coroutine and its checks, the text encoded to UTF-8 again, and
autobahn framing it again (its argument checks, the header, a copy of the payload). autobahn
has an interface for this case, `PreparedMessage` and `sendPreparedMessage`: the frame is
built once and each socket only writes its bytes (a socket that negotiated compression gets
the message compressed for it, as before).

daphne's `send` for a socket is a `SocketSend` (chat/socket_memory.py makes it): the same
`functools.partial(server.handle_reply, protocol)` for every ASGI message, which can also
write a prepared frame. Elsewhere (another server, the test communicator) `send` has no
`send_prepared` and a relayed frame goes through ASGI as before.
"""

from functools import partial
from typing import Any


class PreparedFrame:
    """One frame's text, and its WebSocket message built on first use."""

    __slots__ = ("message", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.message: Any = None


class SocketSend(partial):
    """daphne's send for one socket: partial(server.handle_reply, protocol)."""

    def send_prepared(self, frame: PreparedFrame) -> bool:
        """Write the frame's message to the open socket; False if it is not open (the caller
        sends through ASGI, which accepts, or drops it after the close)."""
        protocol = self.args[0]
        if protocol.state != protocol.STATE_OPEN:
            return False
        if frame.message is None:
            from autobahn.websocket.protocol import PreparedMessage

            frame.message = PreparedMessage(frame.text.encode(), False, False, False)
        protocol.sendPreparedMessage(frame.message)
        return True
