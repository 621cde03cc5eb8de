"""Shared fixtures: users, logged-in sockets, and a clean channel layer and Redis per test."""

import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import AsyncClient

from chat.presence import reset_presence_store
from chat.ratelimit import reset_rate_limiter
from chat.runtime import get_runtime
from tests.processes import live_socket, own_redis, server_factory, two_servers  # noqa: F401

# Redis for the tests that need it in every configuration (two layers standing in for two
# processes, the Redis presence store): a database number of its own, flushed around each test.
TEST_REDIS_URL = os.environ.get("CHAT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PASSWORD = "correct horse battery staple"


def _flush_redis(url: str) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.flushdb()
    finally:
        client.close()


@pytest.fixture(scope="session", autouse=True)
def drop_leftover_database_sessions(
    django_db_setup: None, django_db_blocker: Any
) -> Iterator[None]:
    """Let the test database be dropped even if a worker thread kept a connection to it.

    Consumers run queries on a worker thread whose connection the test process cannot
    reach to close, and server processes started by tests may be killed mid-query.
    """
    yield
    with django_db_blocker.unblock():
        from django.db import connection

        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            connection.close()


@pytest.fixture(autouse=True)
def fresh_layer_and_presence() -> Iterator[None]:
    """Each test starts with no groups, no presence and an empty configured Redis."""
    channel_layers.backends.clear()
    reset_presence_store()
    reset_rate_limiter()
    if settings.REDIS_URL:
        _flush_redis(settings.REDIS_URL)
    yield
    channel_layers.backends.clear()
    reset_presence_store()
    reset_rate_limiter()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A flushed Redis database for this test; fails loudly when Redis does not answer."""
    try:
        _flush_redis(TEST_REDIS_URL)
    except redis.ConnectionError as error:
        pytest.fail(
            f"Redis at {TEST_REDIS_URL} does not answer ({error}). Start it "
            "(redis-server --daemonize yes --port 6379) or set CHAT_TEST_REDIS_URL."
        )
    yield TEST_REDIS_URL
    _flush_redis(TEST_REDIS_URL)


@pytest.fixture
def make_user(transactional_db: None) -> Callable[..., Any]:
    """Create a user synchronously: make_user("alice", is_active=False)."""

    def make(username: str, **fields: Any) -> Any:
        return get_user_model().objects.create_user(username=username, password=PASSWORD, **fields)

    return make


@pytest.fixture
def alice(make_user: Callable[..., Any]) -> Any:
    return make_user("alice")


@pytest.fixture
def bob(make_user: Callable[..., Any]) -> Any:
    return make_user("bob")


@pytest.fixture
def carol(make_user: Callable[..., Any]) -> Any:
    return make_user("carol")


@pytest.fixture
def send(transactional_db: None) -> Callable[..., Any]:
    """Store a message directly: send(alice, bob, "hi"); recipient None is ALL."""
    from chat.models import Message

    def send(sender: Any, recipient: Any, text: str = "hello", **fields: Any) -> Any:
        return Message.objects.create(sender=sender, recipient=recipient, text=text, **fields)

    return send


async def session_cookie(user: Any) -> str:
    """A new login session for the user, as a Cookie header value."""
    return cookie_of(await logged_in_client(user))


async def logged_in_client(user: Any) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(user)
    return client


def cookie_of(client: AsyncClient) -> str:
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def environment_without_settings() -> dict[str, str]:
    """This process's environment without the variables the chat's settings read."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "CHAT_")) and key not in ("DATABASE_URL", "REDIS_URL")
    }


async def presence_state(socket: Any, seconds: float = 5, **expected: list[str]) -> dict:
    """Merge presence frames until each named user has the expected state: online=[...]."""
    state: dict[str, str] = {}
    wanted = {name: kind for kind, names in expected.items() for name in names}
    while any(state.get(name) != kind for name, kind in wanted.items()):
        frame = await socket.receive_until("presence", seconds)
        for kind in ("online", "offline"):
            for name in frame[kind]:
                state[name] = kind
    return state


def socket_headers(
    *, cookie: str | None, origin: str | None = "http://localhost", host: str = "localhost"
) -> list[tuple[bytes, bytes]]:
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if cookie is not None:
        headers.append((b"cookie", cookie.encode()))
    return headers


class ChatSocket:
    """A logged-in WebsocketCommunicator with JSON helpers; `hello` is the first frame."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator
        self.hello: dict[str, Any] = {}

    async def send(self, frame: dict[str, Any]) -> None:
        await self.communicator.send_json_to(frame)

    async def send_text(self, text: str) -> None:
        await self.communicator.send_to(text_data=text)

    async def receive(self, seconds: float = 2) -> dict[str, Any]:
        return await self.communicator.receive_json_from(timeout=seconds)

    async def receive_until(self, kind: str, seconds: float = 2) -> dict[str, Any]:
        """The next frame of this type, skipping others (presence, say)."""
        while True:
            frame = await self.receive(seconds)
            if frame["type"] == kind:
                return frame

    async def receive_nothing(self, seconds: float = 0.2) -> bool:
        return await self.communicator.receive_nothing(timeout=seconds)

    async def receive_nothing_but_presence(self, seconds: float = 0.2) -> bool:
        while not await self.communicator.receive_nothing(timeout=seconds):
            frame = await self.receive()
            if frame["type"] != "presence":
                raise AssertionError(f"Expected no frame, got {frame}")
        return True

    async def closed_with(self, seconds: float = 3) -> int:
        """Wait for the server to close the socket; the close code."""
        while True:
            output = await self.communicator.receive_output(timeout=seconds)
            if output["type"] == "websocket.close":
                return output.get("code", 1000)

    async def close(self) -> None:
        await self.communicator.disconnect()


@pytest.fixture
async def connect_as() -> AsyncIterator[Callable[..., Any]]:
    """Open a logged-in socket for a user through the whole ASGI stack; closed afterwards."""
    from chatsite.asgi import application

    opened: list[ChatSocket] = []

    async def connect(
        user: Any, *, application: Any = application, cookie: str | None = None
    ) -> ChatSocket:
        """A socket for the user, in a new session unless `cookie` names one."""
        cookie = cookie or await session_cookie(user)
        communicator = WebsocketCommunicator(
            application, "/ws/chat/", headers=socket_headers(cookie=cookie)
        )
        connected, code = await communicator.connect(timeout=5)
        assert connected, f"socket for {user.username} refused with {code}"
        socket = ChatSocket(communicator)
        opened.append(socket)
        socket.hello = await socket.receive()
        assert socket.hello["type"] == "hello"
        return socket

    yield connect
    for socket in opened:
        await socket.close()
    await get_runtime().stop()


@database_sync_to_async
def stored_messages(**filters: Any) -> list[Any]:
    from chat.models import Message

    return list(Message.objects.filter(**filters).order_by("id"))
