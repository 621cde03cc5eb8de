"""The database backend: timestamps come back exactly as stored, as UTC datetimes, and
batches of messages stored with every value as given."""

import datetime

import pytest
from django.core.exceptions import SynchronousOnlyOperation
from django.db import IntegrityError, connection
from django.db.backends.postgresql.psycopg_any import BaseTzLoader
from django.test.utils import CaptureQueriesContext
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


def _batch_stored_as_given(messages: list[Message]) -> None:
    Message.objects.bulk_create(messages)

    columns = ["id", "sender_id", "recipient_id", "text", "sent_at", "client_id", "all_seq"]
    read = list(Message.objects.filter(id__in=[m.pk for m in messages]).order_by("id"))
    assert [[getattr(m, c) for c in columns] for m in read] == [
        [getattr(m, c) for c in columns] for m in messages
    ]


def test_a_batch_of_messages_is_stored_with_every_value_as_given(make_user):
    # On PostgreSQL the batch's column arrays go to the server in binary (binary_cursor).
    alice, bob = make_user("alice"), make_user("인혜")
    moment = datetime.datetime(2026, 11, 27, 13, 5, 9, 123456, tzinfo=datetime.UTC)
    texts = ['it\'s "quoted"', "back\\slash {braces}", "NULL", "인혜 🙂", "a,b", " "]
    messages = [
        Message(sender=alice, recipient=bob if n % 2 else None, text=text, sent_at=moment)
        for n, text in enumerate(texts)
    ]
    messages[1].client_id = "c" * 64

    _batch_stored_as_given(messages)
    assert [m.all_seq for m in messages] == [1, None, 2, None, 3, None]
    # Only posts to everyone: a column of NULL recipients.
    _batch_stored_as_given([Message(sender=bob, text="to all", sent_at=moment) for _ in range(2)])


def test_a_batch_that_breaks_a_constraint_raises_djangos_integrity_error(alice, bob):
    Message.objects.bulk_create([Message(sender=alice, recipient=bob, text="a", client_id="x")])

    with pytest.raises(IntegrityError):
        Message.objects.bulk_create([Message(sender=alice, recipient=bob, text="b", client_id="x")])


def test_captured_batch_statements_show_their_values(alice, bob):
    with CaptureQueriesContext(connection) as captured:
        Message.objects.bulk_create([Message(sender=alice, recipient=bob, text="findable")])

    inserts = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("INSERT")]
    assert any("findable" in sql for sql in inserts), inserts
    assert not any("$1" in sql for sql in inserts)


async def test_a_binary_cursor_is_refused_on_the_event_loop_as_djangos_cursors_are():
    wrapper = DatabaseWrapper(_postgresql_settings(), alias="on_the_loop")

    with pytest.raises(SynchronousOnlyOperation):
        wrapper.binary_cursor()
