"""Hand a socket's frames to the kernel at once, not on the event loop's next turn.

Twisted, which daphne serves with, never writes in ``transport.write``: it buffers the bytes
and registers the socket for writability (an epoll_ctl); on the loop's next turn it writes
them and unregisters the socket (another epoll_ctl), each step through Twisted's logging
context. For a post to ALL that was about half of the server's time per recipient. asyncio's
own transports write at once and buffer only what the kernel does not take; this gives
daphne's WebSocket connections the same behaviour.

Only WebSocket connections: autobahn turns Nagle's algorithm off for them (TCP_NODELAY), so
a frame written at once leaves at once. HTTP connections keep Twisted's buffering, which
joins a response's headers and body into one send.

Where one task sends many frames at once (a sync's hundreds of messages), one send per frame
costs a system call and a wake-up of the client each: within `written_together()` the task's
frames take Twisted's buffered path and go out together on the loop's next turn.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

# Set by written_together() for the task that sends; daphne writes in the sender's task.
_held: ContextVar[bool] = ContextVar("chat_writes_held", default=False)


@contextmanager
def written_together() -> Iterator[None]:
    """The frames this task sends within it leave together, on the loop's next turn."""
    token = _held.set(True)
    try:
        yield
    finally:
        _held.reset(token)


def enable_eager_writes() -> None:
    """Patch Twisted's TCP transport once; a no-op without Twisted and autobahn."""
    try:
        from autobahn.twisted.websocket import WebSocketServerProtocol
        from twisted.internet import tcp
    except ImportError:
        return
    buffered_write = tcp.Connection.write
    if getattr(buffered_write, "eager", False):
        return

    def write(self: Any, data: bytes) -> None:
        if (
            not _held.get()
            and self.connected
            and not self.disconnecting
            and not self._writeDisconnected
            and not self.TLS
            and not self._tempDataLen
            and self.offset == len(self.dataBuffer)
            and isinstance(data, bytes)
            and isinstance(self.protocol, WebSocketServerProtocol)
        ):
            # Nothing is waiting, so order is kept. A lost connection comes back as an
            # exception object: the bytes are then buffered, and Twisted's own write path
            # meets the error on the next turn and closes the connection as it always does.
            sent = self.writeSomeData(data)
            if isinstance(sent, int):
                if sent == len(data):
                    return
                data = data[sent:]
        buffered_write(self, data)

    write.eager = True  # type: ignore[attr-defined]
    tcp.Connection.write = write
