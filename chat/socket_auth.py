"""The socket's cookies, session and user, in one middleware.

Channels' AuthMiddlewareStack is three middlewares: CookieMiddleware, SessionMiddleware and
AuthMiddleware. SessionMiddleware also wraps `send` so that an HTTP response can save a
modified session; a socket never sends an HTTP response and the chat never changes the
session over a socket, yet the wrapper ran for every frame, reading the session's state each
time (a tenth of the cost of a post's fan-out). And each of the three copies the scope and
stays suspended on the socket's stack for as long as it is open. Here one middleware puts
the same three things in one copy of the scope: the cookies as Django parses them, the
session (Django's store, loaded on first use) and the user (Channels' get_user, run in the
thread pool), and `send` is untouched.
"""

from importlib import import_module
from typing import Any

from channels.auth import UserLazyObject, get_user
from django.conf import settings
from django.http import parse_cookie

from .selectors import in_thread_pool


class SocketAuthMiddleware:
    """scope["cookies"], scope["session"] and scope["user"], as AuthMiddlewareStack sets them."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.session_store = import_module(settings.SESSION_ENGINE).SessionStore
        # The session and the user are read in a thread of the pool, not in the one thread
        # all database calls share (selectors.in_thread_pool).
        self.get_user = in_thread_pool(get_user.func)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        cookies: dict[str, str] = {}
        for name, value in scope.get("headers", ()):
            if name == b"cookie":
                cookies = parse_cookie(value.decode("latin1"))
                break
        session = self.session_store(cookies.get(settings.SESSION_COOKIE_NAME))
        scope = dict(scope, cookies=cookies, session=session, user=UserLazyObject())
        scope["user"]._wrapped = await self.get_user(scope)
        return await self.inner(scope, receive, send)


def socket_auth_stack(inner: Any) -> Any:
    """Cookies, then the session, then the user."""
    return SocketAuthMiddleware(inner)
