"""WebSocket handshakes handed to autobahn from the connection's first bytes
(chat/socket_upgrades.py), against daphne's own path for the same requests.

A request that arrives in two reads always takes daphne's path: the tests compare the two.
"""

from typing import Any

import pytest
from daphne.http_protocol import WebRequest
from twisted.internet.task import Clock
from twisted.web.http import HTTPChannel

from chat.socket_upgrades import enable_direct_upgrades, websocket_query_string
from tests.daphne_transport import UPGRADE, Daphne, settle

MAX_SIZE, MAX_HEADERS = HTTPChannel.totalHeadersSize, HTTPChannel.maxHeaders

BROWSER_UPGRADE = (
    b"GET /ws/chat/?token=a%20b&x=1 HTTP/1.1\r\n"
    b"Host: chat.example.com\r\n"
    b"Connection: Upgrade\r\n"
    b"Upgrade: websocket\r\n"
    b"Origin: https://chat.example.com\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Protocol: chat, superchat\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    b"Cookie: csrftoken=x1; sessionid=abc\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) \xe9\r\n"
    b"X-Forwarded-For: 10.0.0.1\r\n"
    b"Daphne-Root-Path: /chat\r\n"
    b"\r\n"
)


def request(*headers: bytes, line: bytes = b"GET /ws/chat/ HTTP/1.1") -> bytes:
    """An upgrade request with `headers` after the usual ones."""
    usual = [
        b"Host: localhost",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        b"Sec-WebSocket-Version: 13",
    ]
    return b"\r\n".join([line, *usual, *headers]) + b"\r\n\r\n"


def query(data: bytes) -> bytes | None:
    return websocket_query_string(data, max_size=MAX_SIZE, max_headers=MAX_HEADERS)


def test_a_plain_upgrade_is_read_with_its_query_string():
    assert query(BROWSER_UPGRADE) == b"token=a%20b&x=1"
    assert query(request()) == b""
    assert query(request().replace(b"Upgrade: websocket", b"UPGRADE:\tWebSocket ")) == b""
    assert query(request(b"Upgrade2: x", b"x-y:no-space")) == b""


@pytest.mark.parametrize(
    "data",
    [
        request(line=b"POST /ws/chat/ HTTP/1.1"),
        request(line=b"GET /ws/chat/ HTTP/1.0"),
        request(line=b"GET http://localhost/ws/chat/ HTTP/1.1"),
        request(line=b"GET /ws/chat/\xe9 HTTP/1.1"),
        request(line=b"GET /ws/chat/ x HTTP/1.1"),
        request(line=b"GET  /ws/chat/ HTTP/1.1"),
        request(b"Cookie: a=1", b"Cookie: b=2"),
        request(b"cookie: a=1", b"COOKIE: b=2"),
        request(b"X-Long: a", b" folded"),
        request(b"Content-Length: 5"),
        request(b"Transfer-Encoding: chunked"),
        request(b"Bad Name: x"),
        request(b": no name"),
        request(b"No-Colon"),
        request(b"X-Nul: a\x00b"),
        request(b"X-Cr: a\rb"),
        request(b"X-Lf: a\nb"),
        request(b"X-Vt: a\x0bb"),
        request(b"X-Nel: a\x85b"),
        request(b"X-Empty-Line:", b""),
        request() + b"\x81\x80abcd",
        request()[:-2],
        request()[:-4] + b"\n\n",
        request(*[b"X-%d: 1" % n for n in range(MAX_HEADERS)]),
        request(b"X-Big: " + b"a" * MAX_SIZE),
        request().replace(b"Upgrade: websocket", b"Upgrade: h2c"),
        request().replace(b"Upgrade: websocket\r\n", b""),
        request().replace(b"Upgrade: websocket", b"Upgrade: websocket, h2c"),
        request().replace(b"Upgrade: websocket", b"Upgrade-Insecure-Requests: 1"),
        b"GET /api/conversations/ HTTP/1.1\r\nHost: localhost\r\nCookie: sessionid=abc\r\n\r\n",
    ],
)
def test_anything_else_is_left_to_twisted_and_daphne(data):
    assert query(data) is None


@pytest.fixture(autouse=True)
def direct_upgrades() -> None:
    enable_direct_upgrades()


@pytest.fixture
def scopes() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def accepting(scopes) -> Any:
    async def application(scope, receive, send):
        scopes.append(scope)
        while True:
            message = await receive()
            if message["type"] == "websocket.connect":
                offered = scope["subprotocols"]
                await send(
                    {"type": "websocket.accept", "subprotocol": offered[0] if offered else None}
                )
            elif message["type"] == "websocket.disconnect":
                return

    return application


@pytest.fixture
def processed(monkeypatch) -> list[WebRequest]:
    """The requests daphne's own WebRequest.process handled."""
    handled: list[WebRequest] = []
    process = WebRequest.process

    def recording(self):
        handled.append(self)
        return process(self)

    monkeypatch.setattr(WebRequest, "process", recording)
    return handled


def halves(data: bytes) -> tuple[bytes, bytes]:
    return data[:40], data[40:]


async def test_a_browsers_upgrade_opens_with_the_scope_daphne_would_give(
    accepting, scopes, processed
):
    direct = Daphne(accepting).connect(BROWSER_UPGRADE)
    await settle()
    assert processed == []
    through_daphne = Daphne(accepting).connect(*halves(BROWSER_UPGRADE))
    await settle()
    assert len(processed) == 1

    assert len(scopes) == 2
    assert scopes[0] == scopes[1]
    assert scopes[0]["query_string"] == b"token=a%20b&x=1"
    assert scopes[0]["path"] == "/ws/chat/"
    assert scopes[0]["root_path"] == "/chat"
    assert scopes[0]["subprotocols"] == ["chat", "superchat"]
    assert (b"cookie", b"csrftoken=x1; sessionid=abc") in scopes[0]["headers"]
    for transport in [direct, through_daphne]:
        response = transport.value()
        assert response.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        assert b"Sec-WebSocket-Protocol: chat\r\n" in response
    assert direct.value() == through_daphne.value()


async def test_the_http_idle_timer_does_not_close_an_open_socket(accepting, processed):
    clock, daphne = Clock(), Daphne(accepting)
    transport = daphne.connect(UPGRADE, clock=clock)
    await settle()
    clock.advance(daphne.server.http_factory.timeOut * 2)

    assert processed == []
    assert transport.value().startswith(b"HTTP/1.1 101 ")
    assert not transport.disconnecting
    assert clock.getDelayedCalls() == []


async def test_a_connection_that_sends_nothing_still_times_out(accepting):
    clock, daphne = Clock(), Daphne(accepting)
    transport = daphne.connect(b"", clock=clock)
    clock.advance(daphne.server.http_factory.timeOut + 1)

    assert transport.disconnecting


@pytest.mark.parametrize(
    "data",
    [
        request(b"Bad Name: x"),
        request(b"X-Nul: a\x00b"),
        request(b"X-Vt: a\x0bb"),
        request(line=b"GET /ws/chat/\xe9 HTTP/1.1"),
    ],
)
async def test_a_malformed_upgrade_gets_twisted_and_daphnes_400(accepting, scopes, data):
    transport = Daphne(accepting).connect(data)
    await settle()

    assert transport.value().startswith(b"HTTP/1.1 400 ")
    assert scopes == []


async def test_plain_http_is_served_as_before(scopes, processed):
    async def ok(scope, receive, send):
        scopes.append(scope)
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    transport = Daphne(ok).connect(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    for _ in range(4):
        await settle()

    assert len(processed) == 1
    assert scopes[0]["type"] == "http"
    assert transport.value().startswith(b"HTTP/1.1 200 OK\r\n")


def test_patching_twice_patches_once():
    patched = HTTPChannel.dataReceived
    enable_direct_upgrades()

    assert HTTPChannel.dataReceived is patched
