"""Playwright fixtures: Debian's Chromium against real daphne processes (tests/processes.py).

Users are created in the test database (make_user) and reach the chat with a session cookie
made in the test (`pages.page(server, user)`): the test settings hash passwords with MD5, which
the server's settings do not accept, and a log-in through the form costs a PBKDF2 hash each.
Sign-up, log-in and log-out themselves go through the real forms in test_accounts.py, with a
user the server itself creates at sign-up.
"""

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.processes import ServerProcess, _suite_redis_url

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Generous: a page load, a socket handshake and a database round trip on a busy CI machine.
EXPECT_TIMEOUT_MS = 10_000

expect.set_options(timeout=EXPECT_TIMEOUT_MS)


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the whole package; each test gets fresh contexts."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: apt-get install chromium (never `playwright install`)."
        )
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        # Playwright's sync API marks its event loop as running in this thread between calls
        # (playwright/_impl/_greenlets.py), so Django would refuse every ORM call the tests and
        # pytest-django make here as "async". They do run synchronously: only while this
        # package's tests run, Django's guard is told so.
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def start_server(server_factory: Callable[..., Any]) -> Callable[..., ServerProcess]:
    """Start one daphne on the suite's Redis: start_server(env={"CHAT_RATE_LIMIT": "2/60"})."""
    redis_url: list[str] = []

    def start(env: dict[str, str] | None = None) -> ServerProcess:
        # Flush the suite's Redis once per test only: a flush under a running server looks
        # like a Redis restart to it, and it closes its sockets.
        if not redis_url:
            redis_url.append(_suite_redis_url())
        return server_factory(redis_url=redis_url[0], env=env)

    return start


@pytest.fixture
def server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server()


def session_cookie_value(user: Any) -> str:
    """A new login session for the user in the test database; the session cookie's value."""
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


class Pages:
    """Browser contexts and pages for one test; page errors fail the test at teardown."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.contexts: list[BrowserContext] = []
        self.errors: list[str] = []

    def context(self, server: ServerProcess, user: Any = None, **options: Any) -> BrowserContext:
        options.setdefault("viewport", DESKTOP)
        options.setdefault("locale", "en-US")
        options.setdefault("timezone_id", "UTC")
        options.setdefault("color_scheme", "light")
        context = self.browser.new_context(base_url=server.url, **options)
        context.set_default_timeout(EXPECT_TIMEOUT_MS)
        # Nothing leaves the machine: any request off the loopback address fails the test.
        context.route(re.compile(r"^(?!(https?|wss?)://127\.0\.0\.1[:/]).*"), self._block)
        if user is not None:
            context.add_cookies(
                [
                    {
                        "name": settings.SESSION_COOKIE_NAME,
                        "value": session_cookie_value(user),
                        "url": server.url,
                    }
                ]
            )
        self.contexts.append(context)
        return context

    def _block(self, route: Any) -> None:
        self.errors.append(f"request off the loopback address: {route.request.url}")
        route.abort()

    def page(self, server: ServerProcess, user: Any = None, **options: Any) -> Page:
        """A new context and page; with a user, already logged in and on the chat page."""
        label = user.get_username() if user is not None else "anonymous"
        page = self.new_page(self.context(server, user, **options), label)
        if user is not None:
            open_chat(page)
        return page

    def new_page(self, context: BrowserContext, label: str) -> Page:
        """A page in a context made here, its errors collected and its frames printed."""
        page = context.new_page()
        page.on("pageerror", lambda error: self.errors.append(f"{label}: page error: {error}"))
        self.watch_frames(page, label)
        return page

    def watch_frames(self, page: Page, label: str) -> None:
        """Print every WebSocket frame; pytest shows them when a test fails."""

        def watch(socket: Any) -> None:
            socket.on("framesent", lambda frame: print(f"{label} > {frame}"))
            socket.on("framereceived", lambda frame: print(f"{label} < {frame}"))
            socket.on("close", lambda _: print(f"{label}: socket closed"))

        page.on("websocket", watch)

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def pages(browser: Browser) -> Iterator[Pages]:
    """pages.page(server, alice) -> a Page logged in as alice on the chat; all closed after."""
    opened = Pages(browser)
    yield opened
    opened.close()
    assert not opened.errors, "\n".join(opened.errors)


def open_chat(page: Page) -> None:
    """Go to the chat page and wait until the socket is up."""
    page.goto("/")
    expect(connection_status(page)).to_have_text("Connected")


CONNECTION_STATES = re.compile(r"^(Connecting…|Connected|Reconnecting…|Signed out|Disconnected)$")


def connection_status(page: Page) -> Any:
    """The status line that says, in words, whether the socket is up."""
    return page.get_by_role("status").filter(has_text=CONNECTION_STATES)


def composer(page: Page) -> Any:
    return page.get_by_role("textbox", name="Message", exact=True)


def message_log(page: Page) -> Any:
    return page.get_by_role("log")


def conversation(page: Page, name: str) -> Any:
    """The entry for a conversation in the list of conversations ("Everyone" for ALL)."""
    listing = page.get_by_role("list", name="Conversations")
    return listing.get_by_role("button", name=name, exact=True)


def conversation_title(page: Page, name: str) -> Any:
    """The heading of the open conversation."""
    return page.get_by_role("heading", name=name, exact=True, level=2)


def new_conversation(page: Page, username: str) -> None:
    """Type a username into "New conversation" and press Enter."""
    box = page.get_by_role("textbox", name="New conversation")
    box.fill(username)
    box.press("Enter")


def online_person(page: Page, name: str) -> Any:
    return page.get_by_role("list", name="Online").get_by_role("button", name=name, exact=True)


def send_message(page: Page, text: str) -> None:
    """Type into the composer and press Enter; waits until it is sent and in the log."""
    box = composer(page)
    box.fill(text)
    box.press("Enter")
    expect(box).to_have_value("")
    expect(message_log(page).get_by_text(text, exact=True).last).to_be_visible()


def texts_in_log(page: Page) -> list[str]:
    """The texts of the messages in the open conversation, top to bottom."""
    return message_log(page).get_by_role("article").locator(".msg__text").all_text_contents()


def screenshot_path(name: str) -> Path:
    """Where a screenshot for the README goes (docs/screenshots/), the folder made if needed."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / name
