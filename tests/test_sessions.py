"""Sessions: Django's database store, loaded with one plain SQL statement."""

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat.sessions import SessionStore

pytestmark = pytest.mark.django_db(transaction=True)


def saved_session(**data) -> SessionStore:
    session = SessionStore()
    session.update(data)
    session.create()
    return session


def test_the_site_uses_this_store():
    assert settings.SESSION_ENGINE == "chat.sessions"


def test_a_session_loads_its_data_in_one_statement():
    key = saved_session(colour="teal", count=3).session_key

    with CaptureQueriesContext(connection) as captured:
        loaded = SessionStore(key)
        assert loaded["colour"] == "teal"
    assert loaded.load() == {"colour": "teal", "count": 3}
    assert len(captured) == 1
    assert loaded.session_key == key


def test_an_expired_session_loads_empty_and_forgets_its_key():
    session = saved_session(colour="teal")
    session.set_expiry(timezone.now() - timedelta(seconds=1))
    session.save()

    loaded = SessionStore(session.session_key)

    assert loaded.load() == {}
    assert loaded.session_key is None


def test_an_unknown_key_loads_empty_and_no_key_costs_no_query():
    assert SessionStore("no-such-session-key-at-all").load() == {}
    with CaptureQueriesContext(connection) as captured:
        assert SessionStore(None).load() == {}
    assert len(captured) == 0


def test_many_sessions_load_with_one_statement_as_each_would_alone():
    first, second = saved_session(colour="teal"), saved_session(colour="rust")
    expired = saved_session(colour="grey")
    expired.set_expiry(timezone.now() - timedelta(seconds=1))
    expired.save()
    keys = [first.session_key, second.session_key, expired.session_key, "no-such-key-at-all"]
    stores = [SessionStore(key) for key in [*keys, first.session_key, None]]

    with CaptureQueriesContext(connection) as captured:
        SessionStore.load_many(stores)
        loaded = [(dict(store.items()), store.session_key) for store in stores]

    assert len(captured) == 1
    assert loaded == [
        ({"colour": "teal"}, first.session_key),
        ({"colour": "rust"}, second.session_key),
        ({}, None),
        ({}, None),
        ({"colour": "teal"}, first.session_key),
        ({}, None),
    ]


def test_loading_many_leaves_loaded_sessions_alone():
    session = saved_session(colour="teal")
    store = SessionStore(session.session_key)
    store["colour"] = "changed here"

    with CaptureQueriesContext(connection) as captured:
        SessionStore.load_many([store, SessionStore(None)])

    assert len(captured) == 0
    assert store["colour"] == "changed here"


async def test_a_session_loads_from_async_code_too():
    session = await sync_to_async(saved_session)(colour="teal")

    assert await SessionStore(session.session_key).aload() == {"colour": "teal"}
