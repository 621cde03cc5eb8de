"""The socket's cookies, session and user, in one middleware.

Channels' AuthMiddlewareStack is three middlewares: CookieMiddleware, SessionMiddleware and
AuthMiddleware. SessionMiddleware also wraps `send` so that an HTTP response can save a
modified session; a socket never sends an HTTP response and the chat never changes the
session over a socket, yet the wrapper ran for every frame, reading the session's state each
time (a tenth of the cost of a post's fan-out). And each of the three copies the scope and
stays suspended on the socket's stack for as long as it is open. Here one middleware puts
the same three things in one copy of the scope: the cookies as Django parses them, the
session (Django's store) and the user, and `send` is untouched.

scope["user"] is the user itself, not Channels' lazy proxy of it: the user is loaded before
the application runs, so there is nothing to defer, and every attribute read through the
proxy is a call of its own (3.9 µs for `user.pk` against 0.28 µs, 44 µs against 18 µs to
build a Message with it as sender: a few percent of every DM's CPU).

The user is found as Channels' get_user finds it, but for all the sockets that open
together: while one read is under way, the handshakes that arrive wait for the next, which
loads all their sessions with one statement and their users with another, in one trip to a
thread of the pool (a thousand sockets reconnecting after a restart).
"""

from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    load_backend,
)
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AnonymousUser
from django.http import parse_cookie
from django.utils.crypto import constant_time_compare

from .batching import Batcher
from .selectors import in_thread_pool


def session_users(sessions: list[Any]) -> list[Any]:
    """The user of each session, or AnonymousUser, as Channels' get_user decides.

    The sessions are loaded with one statement (when the store can: chat.sessions), and the
    users of Django's ModelBackend with one more; a session whose password hash no longer
    matches is flushed, as get_user does. What fails for one session (an exception in its
    place in the list) fails only that one.
    """
    store_class = type(sessions[0]) if sessions else None
    load_many = getattr(store_class, "load_many", None)
    if load_many is not None and all(type(session) is store_class for session in sessions):
        load_many(sessions)
    found: list[Any] = []
    for session in sessions:
        try:
            found.append(_session_user_id(session))
        except Exception as error:
            found.append(error)
    ids = {entry[1] for entry in found if isinstance(entry, tuple) and _loads_by_id(entry[0])}
    loaded = get_user_model()._default_manager.in_bulk(ids) if ids else {}
    users: list[Any] = []
    for session, entry in zip(sessions, found, strict=True):
        if isinstance(entry, tuple):
            try:
                entry = _verified_user(session, *entry, loaded=loaded)
            except Exception as error:
                entry = error
        users.append(AnonymousUser() if entry is None else entry)
    return users


def _session_user_id(session: Any) -> tuple[Any, Any] | None:
    """The session's authentication backend and user id, or None for no (usable) log-in."""
    try:
        user_id = get_user_model()._meta.pk.to_python(session[SESSION_KEY])
        backend_path = session[BACKEND_SESSION_KEY]
    except KeyError:
        return None
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    return load_backend(backend_path), user_id


def _loads_by_id(backend: Any) -> bool:
    """True for Django's ModelBackend.get_user: the row by primary key, then is_active."""
    return type(backend).get_user is ModelBackend.get_user


def _verified_user(session: Any, backend: Any, user_id: Any, *, loaded: dict) -> Any:
    """The backend's user if the session's password hash still matches, else None."""
    if _loads_by_id(backend):
        user = loaded.get(user_id)
        if user is not None and not backend.user_can_authenticate(user):
            user = None
    else:
        user = backend.get_user(user_id)
    if hasattr(user, "get_session_auth_hash"):
        session_hash = session.get(HASH_SESSION_KEY)
        if not (session_hash and constant_time_compare(session_hash, user.get_session_auth_hash())):
            session.flush()
            return None
    return user


_session_users_batcher: Batcher[Any, Any] = Batcher(in_thread_pool(session_users))


class SocketAuthMiddleware:
    """scope["cookies"], scope["session"] and scope["user"], as AuthMiddlewareStack sets them."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.session_store = import_module(settings.SESSION_ENGINE).SessionStore

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        cookies: dict[str, str] = {}
        for name, value in scope.get("headers", ()):
            if name == b"cookie":
                cookies = parse_cookie(value.decode("latin1"))
                break
        session = self.session_store(cookies.get(settings.SESSION_COOKIE_NAME))
        user = await _session_users_batcher.submit(session)
        scope = dict(scope, cookies=cookies, session=session, user=user)
        return await self.inner(scope, receive, send)


def socket_auth_stack(inner: Any) -> Any:
    """Cookies, then the session, then the user."""
    return SocketAuthMiddleware(inner)
