"""daphne's WebSocket handshakes handed to autobahn from the connection's first bytes.

daphne reads every request, upgrades included, with Twisted's HTTP server: a Request object,
a Headers object filled line by line, an inlineCallbacks generator for daphne's `process`,
which checks the headers again and then writes the request back out as bytes for autobahn to
parse a second time. In-process, a new connection's upgrade request took 140-160 µs to reach
autobahn that way, and takes 33-39 µs this way.

Here a new connection whose first bytes are exactly one plain WebSocket upgrade request, one
that Twisted and daphne would pass to autobahn unchanged, goes to autobahn as it arrived:
- `GET`, a printable-ASCII origin-form target, `HTTP/1.1`, and nothing after the headers;
- header names that are tokens, each at most once; values without NUL, CR, LF or the bytes
  daphne refuses; no folded lines, `Content-Length` or `Transfer-Encoding`;
- an `Upgrade: websocket` header, and no more than Twisted's size and count limits;
- a plain TCP connection (TLS, served by a wrapping protocol, takes the usual path).

Anything else (plain HTTP, a request split over several reads, every malformed request) takes
Twisted's and daphne's own path, untouched, and gets their answers and errors.
"""

import re
from typing import Any

# RFC 9110 tchar: what Twisted and daphne accept as a header name.
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
# Printable ASCII without space: what Twisted accepts in a request target.
_TARGET = frozenset(range(0x21, 0x7F))
# NUL, CR and LF (Twisted), and what daphne refuses in a header value.
_REFUSED_IN_VALUE = frozenset(b"\x00\r\n\x0b\x0c\x1c\x1d\x1e\x85")
_BODY_HEADERS = frozenset([b"content-length", b"transfer-encoding"])
# `Upgrade: websocket` (a value is stripped of spaces and tabs), looked for before anything
# is parsed, so that a plain HTTP request costs one scan, not a parse.
_UPGRADE_HEADER = re.compile(rb"\r\nupgrade:[ \t]*websocket[ \t]*\r\n", re.IGNORECASE)


def websocket_query_string(data: bytes, *, max_size: int, max_headers: int) -> bytes | None:
    """The query string of `data` if it is exactly one plain WebSocket upgrade request, else None.

    None means: let Twisted and daphne read it, as they read everything else.
    """
    if (
        len(data) > max_size
        or not data.endswith(b"\r\n\r\n")
        or _UPGRADE_HEADER.search(data) is None
    ):
        return None
    lines = data[:-4].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[0] != b"GET" or parts[2] != b"HTTP/1.1":
        return None
    target = parts[1]
    if not target.startswith(b"/") or not _TARGET.issuperset(target):
        return None
    if len(lines) - 1 > max_headers:
        return None
    seen: set[bytes] = set()
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or not _TOKEN.issuperset(name):
            return None
        if not _REFUSED_IN_VALUE.isdisjoint(value):
            return None
        name = name.lower()
        if name in seen or name in _BODY_HEADERS:
            return None
        seen.add(name)
    return target.partition(b"?")[2]


def enable_direct_upgrades() -> None:
    """Patch Twisted's HTTPChannel.dataReceived once; a no-op without daphne."""
    try:
        from daphne.http_protocol import WebRequest
        from twisted.protocols.policies import ProtocolWrapper
        from twisted.web.http import HTTPChannel
    except ImportError:
        return
    read_request = HTTPChannel.dataReceived
    if getattr(read_request, "upgrades_directly", False):
        return

    def data_received(self: Any, data: bytes) -> None:
        if (
            self.requestFactory is WebRequest
            and not self.requests
            and not self._handlingRequest
            and self.persistent
            and self.line_mode
            and not self._buffer
            and self._receivedHeaderSize == 0
            and not isinstance(self.transport, ProtocolWrapper)
        ):
            query_string = websocket_query_string(
                data, max_size=self.totalHeadersSize, max_headers=self.maxHeaders
            )
            if query_string is not None:
                protocol = self.factory.server.ws_factory.buildProtocol(self.transport.getPeer())
                if protocol is not None:
                    # As daphne's WebRequest.process hands an upgrade over, minus the request
                    # it would have built: the idle timer stopped, the transport given to the
                    # WebSocket protocol, which reads the request itself.
                    self.setTimeout(None)
                    protocol._raw_query_string = query_string
                    transport = self.transport
                    transport.protocol = protocol
                    protocol.makeConnection(transport)
                    protocol.dataReceived(data)
                    return
        read_request(self, data)

    data_received.upgrades_directly = True  # type: ignore[attr-defined]
    HTTPChannel.dataReceived = data_received
