"""Less of what daphne keeps for every open socket.

An idle socket's memory is most of what W3 measures. Counted with tracemalloc on idle sockets
served by daphne with an application that only says hello, three things daphne keeps for as
long as a socket is open were never used after its handshake:

- The application's input queue, an asyncio.Queue: four deques of 760 bytes each (its items,
  its getters, its putters and its Event's waiters), about 3.2 KiB. daphne only calls
  `put_nowait` on it and the application only awaits `get`. `Inbox` does the same with a list
  and one waiter.
- The HTTP request the socket was upgraded from: Twisted's Request with its headers and
  cookies, kept alive by the HTTPChannel that parsed it, which stays the transport's producer
  (it pauses reading while the client does not read what is sent, which is kept).
- autobahn's copies of the handshake (the raw request, its headers parsed into a dict, the
  response) and daphne's `request`, of which only the path is read again, to log the close.

After the handshake these are let go: the HTTPChannel forgets its request, autobahn's copies
are dropped, and daphne's `request` becomes the path alone.
"""

import asyncio
import sys
from typing import Any

from .broadcast import SocketSend

# autobahn's attributes that only its opening handshake reads (WebSocketServerProtocol).
HANDSHAKE_ATTRIBUTES = (
    "http_request_data",
    "http_response_data",
    "http_status_line",
    "http_headers",
    "http_request_uri",
    "http_request_path",
    "http_request_params",
    "http_request_host",
    "websocket_origin",
    "websocket_protocols",
    "websocket_extensions",
)


class Inbox:
    """One socket's events in arrival order: `put` (or `put_nowait`, as daphne calls it) and
    `await get()`, unbounded, for one reader at a time."""

    __slots__ = ("items", "waiter")

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.waiter: asyncio.Future[None] | None = None

    def put(self, item: Any) -> None:
        self.items.append(item)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    put_nowait = put

    async def get(self) -> Any:
        while not self.items:
            if self.waiter is not None:
                raise RuntimeError("Inbox.get: another reader is already waiting")
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.items.pop(0)


class HandshakePath:
    """What daphne reads of the handshake request once the socket is open: its path."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path


def trim_socket_state() -> None:
    """Patch daphne's Server.create_application and WebSocketProtocol.onOpen once; a no-op
    when daphne is not serving (its CLI and runserver import daphne.server before the
    application, and importing it elsewhere would install Twisted's reactor)."""
    server_module = sys.modules.get("daphne.server")
    if server_module is None:
        return
    from daphne.ws_protocol import WebSocketProtocol
    from twisted.web.http import HTTPChannel

    Server = server_module.Server
    if getattr(Server.create_application, "inbox", False):
        return

    def create_application(self: Any, protocol: Any, scope: dict[str, Any]) -> Inbox | None:
        # daphne 4.2's create_application, with an Inbox for the asyncio.Queue and a
        # SocketSend (a partial that can also write a prepared frame, chat/broadcast.py).
        assert "application_instance" not in self.connections[protocol]
        inbox = Inbox()
        scope.setdefault("asgi", {"version": "3.0"})
        application_instance = self.application(
            scope=scope, receive=inbox.get, send=SocketSend(self.handle_reply, protocol)
        )
        if protocol not in self.connections:
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(
            application_instance, loop=asyncio.get_event_loop()
        )
        return inbox

    opened = WebSocketProtocol.onOpen

    def on_open(self: Any) -> None:
        opened(self)
        for name in HANDSHAKE_ATTRIBUTES:
            self.__dict__.pop(name, None)
        request = self.__dict__.get("request")
        if request is not None:
            self.request = HandshakePath(request.path)
        channel = getattr(self.transport, "producer", None)
        if isinstance(channel, HTTPChannel):
            channel.requests.clear()

    create_application.inbox = True  # type: ignore[attr-defined]
    Server.create_application = create_application
    WebSocketProtocol.onOpen = on_open
