"""The socket's session and user, without wrapping every frame the socket sends.

Channels' AuthMiddlewareStack puts the session in the scope through SessionMiddleware, which
also wraps `send` so that an HTTP response can save a modified session. A socket never sends
an HTTP response and the chat never changes the session over a socket, yet the wrapper ran
for every frame, reading the session's state each time (a tenth of the cost of a post's
fan-out). Here the scope gets the same lazily loaded session store, and `send` is untouched.
"""

from importlib import import_module
from typing import Any

from channels.auth import AuthMiddleware, get_user
from channels.sessions import CookieMiddleware
from django.conf import settings

from .selectors import in_thread_pool


class SessionScopeMiddleware:
    """scope["session"]: the session named by the cookie, loaded on first use."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.session_store = import_module(settings.SESSION_ENGINE).SessionStore

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        session_key = scope["cookies"].get(settings.SESSION_COOKIE_NAME)
        scope = dict(scope, session=self.session_store(session_key))
        return await self.inner(scope, receive, send)


class UserScopeMiddleware(AuthMiddleware):
    """scope["user"]: channels.auth.AuthMiddleware, loading the session and the user in a
    thread of the pool rather than in the one thread all database calls share (in_thread_pool)."""

    async def resolve_scope(self, scope: dict[str, Any]) -> None:
        scope["user"]._wrapped = await in_thread_pool(get_user.func)(scope)


def socket_auth_stack(inner: Any) -> Any:
    """Cookies, then the session, then the user."""
    return CookieMiddleware(SessionScopeMiddleware(UserScopeMiddleware(inner)))
