"""Real server processes for tests: redis-server, daphne, and a real WebSocket client.

Tests that use these are marked `processes` and `django_db(transaction=True)`: the servers
are other processes, so they only see committed rows of the current test database.
"""

import asyncio
import atexit
import contextlib
import http.client
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
LOG_TAIL_LINES = 60

# Every process started here, so an interpreter that exits without fixture teardown (Ctrl-C
# during setup, say) still leaves none behind.
_running: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_running):
        _stop(process, signal.SIGKILL, STOP_TIMEOUT)


def _stop(process: subprocess.Popen[bytes], sig: signal.Signals, timeout: float) -> int:
    """Send a signal to one started process, wait for it (SIGKILL after timeout); its code."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    _running.discard(process)
    return process.returncode


def _spawn(args: list[str], *, log_path: Path, env: dict[str, str] | None = None) -> Any:
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            args,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C in the terminal reaches pytest, which stops it in order.
            start_new_session=True,
        )
    _running.add(process)
    return process


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


class RedisServer:
    """A private redis-server on a free loopback port that saves nothing to disk."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.log_path = directory / f"redis-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://{HOST}:{self.port}/{db}"

    def ping(self) -> bool:
        client = redis.Redis(host=HOST, port=self.port, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start(self) -> None:
        """Start on self.port (the same port on a restart) and wait until it answers PING."""
        executable = shutil.which("redis-server")
        if executable is None:
            pytest.fail("redis-server is not on PATH; install it (apt-get install redis-server).")
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"Redis on port {self.port} is already running.")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = _spawn(
            [
                executable,
                "--bind", HOST,
                "--port", str(self.port),
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--dir", str(self.directory),
            ],
            log_path=self.log_path,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                code = self.process.poll()
                state = "hung" if code is None else f"exited with code {code}"
                self.stop()
                raise RuntimeError(
                    f"redis-server on port {self.port} {state} before answering PING. "
                    f"Log {self.log_path}:\n{_tail(self.log_path)}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM and wait; everything it held is gone."""
        if self.process is not None:
            _stop(self.process, signal.SIGTERM, STOP_TIMEOUT)
            self.process = None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return _tail(self.log_path, lines)


def current_database_url() -> str:
    """The URL of the database this test runs against, for another process to use."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        name = str(db["NAME"])
        if name == ":memory:" or name.startswith("file:"):
            raise RuntimeError(
                f"The SQLite test database {name!r} is not a file another process can open; "
                "set DATABASES['default']['TEST']['NAME'] to a file path."
            )
        return f"sqlite:///{Path(name).resolve()}"
    if connection.vendor == "postgresql":
        user = quote(str(db.get("USER") or ""), safe="")
        password = db.get("PASSWORD")
        credentials = f"{user}:{quote(str(password), safe='')}" if password else user
        host = db.get("HOST") or "localhost"
        port = f":{db['PORT']}" if db.get("PORT") else ""
        at = "@" if credentials else ""
        return f"postgres://{credentials}{at}{host}{port}/{quote(str(db['NAME']), safe='')}"
    raise RuntimeError(f"No URL for the database engine {db['ENGINE']!r}.")


class ServerProcess:
    """One daphne serving chatsite.asgi:application against the current test database."""

    def __init__(
        self,
        *,
        log_dir: Path,
        redis_url: str | None,
        env: dict[str, str] | None = None,
        name: str = "server",
        port: int | None = None,
    ) -> None:
        self.name = name
        self.port = port or free_port()
        self.log_path = log_dir / f"{name}-{self.port}.log"
        self.redis_url = redis_url
        self.extra_env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}/ws/chat/"

    @property
    def origin(self) -> str:
        return self.url

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def environment(self) -> dict[str, str]:
        from tests.conftest import environment_without_settings

        env = environment_without_settings()
        env.update(
            DJANGO_SETTINGS_MODULE="chatsite.settings",
            # The test settings' key, so sessions made in the test validate in the server.
            DJANGO_SECRET_KEY=settings.SECRET_KEY,
            # Debug on only so static files come from the source folders: with it off, every
            # page needs a collectstatic run first. env={"DJANGO_DEBUG": "0"} after one.
            DJANGO_DEBUG="1",
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
            DATABASE_URL=current_database_url(),
            CHAT_RATE_LIMIT="0",
            PYTHONUNBUFFERED="1",
        )
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        env.update(self.extra_env)
        return env

    def spawn(self) -> None:
        """Start the process without waiting for it; `wait_ready` finishes `start`."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"{self.name} on port {self.port} is already running.")
        with open(self.log_path, "a") as log:
            log.write(f"=== starting {self.name} on port {self.port} at {time.ctime()}\n")
        daphne = Path(sys.executable).with_name("daphne")
        command = [str(daphne)] if daphne.exists() else [sys.executable, "-m", "daphne"]
        self.process = _spawn(
            [*command, "-b", HOST, "-p", str(self.port), "chatsite.asgi:application"],
            log_path=self.log_path,
            env=self.environment(),
        )

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until the port accepts and GET /accounts/login/ answers 200."""
        assert self.process is not None, "spawn() first"
        deadline = time.monotonic() + timeout
        problem = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                problem = f"exited with code {self.process.returncode}"
                break
            if _port_open(self.port):
                status = self._get_status("/accounts/login/")
                if status == 200:
                    return
                problem = f"GET /accounts/login/ answered {status}"
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(
            f"{self.name} (daphne on port {self.port}) did not start within {timeout:.0f} s: "
            f"{problem}. Log {self.log_path}:\n{self.log_tail()}"
        )

    def _get_status(self, path: str) -> int | None:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
        try:
            conn.request("GET", path)
            return conn.getresponse().status
        except OSError:
            return None
        finally:
            conn.close()

    def start(self, timeout: float = START_TIMEOUT) -> None:
        self.spawn()
        self.wait_ready(timeout)

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, wait up to timeout (then SIGKILL); the exit code."""
        return self._signal(signal.SIGTERM, timeout)

    def kill(self) -> int | None:
        """SIGKILL, as a crash: no clean-up in the server runs."""
        return self._signal(signal.SIGKILL, STOP_TIMEOUT)

    def _signal(self, sig: signal.Signals, timeout: float) -> int | None:
        if self.process is None:
            return None
        code = _stop(self.process, sig, timeout)
        with open(self.log_path, "a") as log:
            log.write(f"=== {self.name} stopped by {sig.name} with code {code}\n")
        self.process = None
        return code

    def restart(self, timeout: float = START_TIMEOUT) -> None:
        """Terminate, then start again on the same port."""
        self.terminate()
        self.start(timeout)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return _tail(self.log_path, lines)

    def __repr__(self) -> str:
        return f"<ServerProcess {self.name} {self.url} pid={self.pid}>"


def start_servers(servers: list[ServerProcess]) -> None:
    """Start several at once: they import Django in parallel."""
    for server in servers:
        server.spawn()
    deadline = time.monotonic() + START_TIMEOUT
    for server in servers:
        server.wait_ready(max(deadline - time.monotonic(), 1.0))


def _print_logs(items: list[Any]) -> None:
    # Printed at teardown: pytest shows it only for a failing test ("Captured stdout teardown").
    for item in items:
        print(f"----- {item.log_path} (last {LOG_TAIL_LINES} lines) -----\n{item.log_tail()}")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server for this test, to stop and start at will; always stopped."""
    server = RedisServer(tmp_path / "redis")
    try:
        server.start()
        yield server
    finally:
        server.stop()
        _print_logs([server])


def _suite_redis_url() -> str:
    from tests.conftest import TEST_REDIS_URL

    url = settings.REDIS_URL or TEST_REDIS_URL
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.flushdb()
    except redis.ConnectionError as error:
        pytest.fail(f"Redis at {url} does not answer ({error}); the servers need it.")
    finally:
        client.close()
    return url


@pytest.fixture
def server_factory(transactional_db: None, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Start daphne processes: server_factory(redis_url=..., env={...}, count=1).

    Returns one ServerProcess, or a list when count > 1. All are stopped at teardown.
    """
    started: list[ServerProcess] = []

    def make(
        *, redis_url: str | None, env: dict[str, str] | None = None, count: int = 1
    ) -> ServerProcess | list[ServerProcess]:
        servers = [
            ServerProcess(
                log_dir=tmp_path,
                redis_url=redis_url,
                env=env,
                name=f"server{len(started) + index + 1}",
            )
            for index in range(count)
        ]
        started.extend(servers)
        start_servers(servers)
        return servers[0] if count == 1 else servers

    try:
        yield make
    finally:
        for server in started:
            server.terminate()
        _print_logs(started)


@pytest.fixture
def two_servers(
    server_factory: Callable[..., Any],
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two daphne processes sharing the suite's Redis and the test database."""
    first, second = server_factory(redis_url=_suite_redis_url(), count=2)
    yield first, second


class HandshakeRefused(Exception):
    """The server did not accept the socket: an HTTP status, or a close before any frame."""

    def __init__(self, *, status: int | None = None, close_code: int | None = None) -> None:
        self.status = status
        self.close_code = close_code
        how = f"HTTP {status}" if status is not None else f"close code {close_code}"
        super().__init__(f"WebSocket handshake refused: {how}")


class Client:
    """A real WebSocket connection with JSON helpers; `hello` is the first frame."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.hello: dict[str, Any] = {}
        self._pending: deque[dict[str, Any]] = deque()

    async def send(self, frame: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(frame))

    async def send_text(self, text: str) -> None:
        await self.connection.send(text)

    async def receive(self, seconds: float = 5) -> dict[str, Any]:
        if self._pending:
            return self._pending.popleft()
        try:
            async with asyncio.timeout(seconds):
                data = await self.connection.recv()
        except TimeoutError:
            raise AssertionError(f"No frame within {seconds} s.") from None
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else 1006
            raise AssertionError(f"Expected a frame; the socket closed with code {code}.") from None
        return json.loads(data)

    async def receive_until(self, kind: str, seconds: float = 5) -> dict[str, Any]:
        """The next frame of this type, skipping others (presence, say), all within seconds."""
        deadline = asyncio.get_running_loop().time() + seconds
        skipped: list[str] = []
        while True:
            left = deadline - asyncio.get_running_loop().time()
            try:
                frame = await self.receive(max(left, 0.001))
            except AssertionError as error:
                raise AssertionError(f"No {kind!r} frame ({error}); skipped {skipped}.") from None
            if frame.get("type") == kind:
                return frame
            skipped.append(frame.get("type", "?"))

    async def receive_nothing(self, seconds: float = 0.3) -> bool:
        """True when no frame arrives within seconds; one that does stays to be received."""
        if self._pending:
            return False
        try:
            frame = await self.receive(seconds)
        except AssertionError:
            return True
        self._pending.append(frame)
        return False

    async def wait_closed(self, seconds: float = 5) -> int:
        """Wait for the server to close the socket (dropping frames); the close code received."""
        try:
            async with asyncio.timeout(seconds):
                while True:
                    await self.connection.recv()
        except ConnectionClosed as closed:
            # 1006 when the connection dropped without a close frame.
            return closed.rcvd.code if closed.rcvd else 1006
        except TimeoutError:
            raise AssertionError(f"The server kept the socket open for {seconds} s.") from None

    async def close(self) -> None:
        await self.connection.close()


async def _connect(
    server: ServerProcess, user: Any, *, origin: str | None, cookie: str | None
) -> ClientConnection:
    if cookie is None and user is not None:
        from tests.conftest import session_cookie

        cookie = await session_cookie(user)
        # Logging in ran in asgiref's shared sync thread, whose connection otherwise stays
        # open past the test and keeps PostgreSQL from dropping the test database.
        await sync_to_async(close_old_connections)()
    origin = server.origin if origin is None else origin
    try:
        return await connect(
            server.ws_url,
            origin=origin or None,
            additional_headers={"Cookie": cookie} if cookie else None,
            proxy=None,
            open_timeout=5,
            close_timeout=2,
            max_size=None,
        )
    except InvalidStatus as refused:
        raise HandshakeRefused(status=refused.response.status_code) from None


async def open_socket(
    server: ServerProcess,
    user: Any = None,
    *,
    origin: str | None = None,
    cookie: str | None = None,
    hello: bool = True,
) -> Client:
    """A socket on the server as user, its `hello` read; HandshakeRefused if not accepted."""
    # user None and no cookie: anonymous. origin None: the server's own; "": no Origin header.
    # hello=False leaves the first frame (or the close) to the test.
    client = Client(await _connect(server, user, origin=origin, cookie=cookie))
    if hello:
        try:
            async with asyncio.timeout(5):
                client.hello = json.loads(await client.connection.recv())
        except ConnectionClosed as closed:
            raise HandshakeRefused(close_code=closed.rcvd.code if closed.rcvd else 1006) from None
        except BaseException:
            await client.close()
            raise
        if client.hello.get("type") != "hello":
            await client.close()
            raise AssertionError(f"Expected a hello frame first, got {client.hello}.")
    return client


async def handshake_refused(
    server: ServerProcess,
    user: Any = None,
    *,
    origin: str | None = None,
    cookie: str | None = None,
) -> bool:
    """True when the socket is never accepted: HTTP 403, or a close before any frame."""
    try:
        client = await open_socket(server, user, origin=origin, cookie=cookie)
    except HandshakeRefused:
        return True
    await client.close()
    return False


@pytest.fixture
async def live_socket() -> AsyncIterator[Callable[..., Any]]:
    """open_socket that closes every socket it opened at teardown."""
    opened: list[Client] = []

    async def open_(server: ServerProcess, user: Any = None, **options: Any) -> Client:
        client = await open_socket(server, user, **options)
        opened.append(client)
        return client

    yield open_
    for client in opened:
        with contextlib.suppress(Exception):
            await client.close()
