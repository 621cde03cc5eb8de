"""A socket's user: found as Channels' get_user finds it, for many handshakes at once."""

import asyncio

import pytest
from channels.auth import get_user
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from chat import socket_auth
from chat.batching import Batcher
from chat.selectors import in_thread_pool
from chat.sessions import SessionStore
from tests.conftest import session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


def logged_in_key(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def users_alone(keys: list[str | None]) -> list:
    return [get_user.func({"session": SessionStore(key)}) for key in keys]


def test_users_of_many_sessions_are_found_with_two_statements(alice, bob):
    keys = [logged_in_key(alice), logged_in_key(bob), logged_in_key(alice)]

    with CaptureQueriesContext(connection) as captured:
        users = socket_auth.session_users([SessionStore(key) for key in keys])

    assert [user.pk for user in users] == [alice.pk, bob.pk, alice.pk]
    assert len(captured) == 2


def test_each_session_gets_the_user_get_user_would_give_it(alice, bob, make_user):
    dormant = make_user("dormant")
    keys = [logged_in_key(alice), logged_in_key(dormant), "no-such-session-key-at-all", None]
    dormant.is_active = False
    dormant.save()

    users = socket_auth.session_users([SessionStore(key) for key in keys])

    assert [user.pk for user in users] == [alice.pk, None, None, None]
    assert [user.pk for user in users_alone(keys)] == [alice.pk, None, None, None]


def test_a_session_whose_password_changed_is_flushed(alice):
    key = logged_in_key(alice)
    alice.set_password("changed elsewhere")
    alice.save()

    (user,) = socket_auth.session_users([SessionStore(key)])

    assert not user.is_authenticated
    assert SessionStore(key).load() == {}


def test_a_session_of_a_backend_no_longer_configured_has_no_user(alice):
    session = SessionStore(logged_in_key(alice))
    session[BACKEND_SESSION_KEY] = "some.removed.Backend"
    session.save()

    (user,) = socket_auth.session_users([SessionStore(session.session_key)])

    assert not user.is_authenticated


def test_a_session_that_fails_fails_alone(alice, bob):
    broken = SessionStore(logged_in_key(bob))
    broken[SESSION_KEY] = "not a user id"
    broken.save()

    users = socket_auth.session_users(
        [SessionStore(logged_in_key(alice)), SessionStore(broken.session_key)]
    )

    assert users[0].pk == alice.pk
    assert isinstance(users[1], Exception)


async def test_sockets_opening_together_are_authenticated_in_one_trip(
    connect_as, alice, bob, carol, monkeypatch
):
    read, batches = in_thread_pool(socket_auth.session_users), []

    async def recording(sessions):
        batches.append(len(sessions))
        return await read(sessions)

    users = [alice, bob, carol]
    cookies = [await session_cookie(user) for user in users]
    monkeypatch.setattr(socket_auth, "_session_users_batcher", Batcher(recording))
    sockets = await asyncio.gather(
        *(connect_as(user, cookie=cookie) for user, cookie in zip(users, cookies, strict=True))
    )

    assert [socket.hello["user"] for socket in sockets] == ["alice", "bob", "carol"]
    assert batches == [3]


async def scope_seen_by_app(cookie: str | None) -> dict:
    seen: dict = {}

    async def app(scope, receive, send):
        seen.update(scope)

    headers = [(b"cookie", cookie.encode())] if cookie is not None else []
    await socket_auth.SocketAuthMiddleware(app)(
        {"type": "websocket", "headers": headers}, None, None
    )
    return seen


async def test_the_app_gets_the_user_itself_not_a_lazy_proxy(alice):
    # Every attribute read through Channels' UserLazyObject is a call of its own: user.pk
    # cost 3.9 µs instead of 0.28 µs on every DM.
    scope = await scope_seen_by_app(await session_cookie(alice))

    assert type(scope["user"]) is type(alice)
    assert scope["user"].pk == alice.pk
    assert scope["session"][SESSION_KEY] == str(alice.pk)
    assert settings.SESSION_COOKIE_NAME in scope["cookies"]


async def test_a_socket_without_a_session_gets_the_anonymous_user_itself():
    scope = await scope_seen_by_app(None)

    assert type(scope["user"]) is AnonymousUser
    assert scope["cookies"] == {}
