"""The database backend: timestamps come back exactly as stored, as UTC datetimes."""

import datetime

import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import BaseTzLoader
from psycopg.pq import Format

from chat.models import Message
from chat.postgresql.base import TIMESTAMPTZ_OID, DatabaseWrapper, UtcTimestamptzLoader

pytestmark = pytest.mark.django_db(transaction=True)


def _postgresql_settings(**overrides):
    settings = {
        "NAME": "chat",
        "USER": "",
        "PASSWORD": "",
        "HOST": "127.0.0.1",
        "PORT": "",
        "OPTIONS": {},
        "TIME_ZONE": None,
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": False,
        "AUTOCOMMIT": True,
        "ATOMIC_REQUESTS": False,
        "TEST": {},
    }
    return settings | overrides


def _timestamptz_loader(params):
    return params["context"].get_loader(TIMESTAMPTZ_OID, Format.TEXT)


def test_message_times_read_back_equal_to_the_microsecond_and_in_utc(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    sent_at = [
        datetime.datetime(2026, 11, 27, 13, 5, 9, 123456, tzinfo=datetime.UTC),
        datetime.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=datetime.UTC),
        datetime.datetime(
            2026, 3, 29, 1, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=5))
        ),
    ]
    for moment in sent_at:
        Message.objects.create(sender=alice, recipient=bob, text="x", sent_at=moment)

    read = list(Message.objects.order_by("id").values_list("sent_at", flat=True))

    assert read == sent_at
    assert all(moment.tzinfo is datetime.UTC for moment in read)
    if connection.vendor == "postgresql":
        loader = connection.connection.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)
        assert loader is UtcTimestamptzLoader


def test_the_compiled_loader_is_used_only_when_the_connection_time_zone_is_utc():
    utc = DatabaseWrapper(_postgresql_settings(), alias="utc").get_connection_params()
    paris = DatabaseWrapper(
        _postgresql_settings(TIME_ZONE="Europe/Paris"), alias="paris"
    ).get_connection_params()

    assert _timestamptz_loader(utc) is UtcTimestamptzLoader
    # Django's own loader, which puts datetimes in the connection's time zone.
    assert issubclass(_timestamptz_loader(paris), BaseTzLoader)
    assert _timestamptz_loader(paris).timezone.key == "Europe/Paris"
