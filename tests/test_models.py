"""Models: users by primary key in one statement, messages inserted in batches, as written."""

import datetime

import pytest
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext

from chat.models import MESSAGE_INSERT_COLUMNS, Message, User

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_user_loaded_by_pk_has_every_field_as_the_orm_reads_it(make_user):
    alice = make_user("alice")
    alice.last_login = datetime.datetime(2026, 11, 27, 9, 30, 1, 5, tzinfo=datetime.UTC)
    alice.first_name, alice.is_staff = "Alice", True
    alice.save()
    fields = [field.attname for field in User._meta.concrete_fields]

    with CaptureQueriesContext(connection) as captured:
        loaded = User.objects.get(pk=str(alice.pk))
    by_orm = User.objects.filter(pk=alice.pk).get()

    assert len(captured) == 1
    assert [getattr(loaded, name) for name in fields] == [getattr(by_orm, name) for name in fields]
    assert loaded.last_login.tzinfo is datetime.UTC
    assert loaded.is_staff is True and loaded.is_active is True
    assert not loaded._state.adding and loaded._state.db == "default"


def test_a_missing_user_by_pk_is_does_not_exist_and_other_lookups_are_djangos(make_user):
    alice = make_user("alice")

    with pytest.raises(User.DoesNotExist):
        User.objects.get(pk=alice.pk + 1000)
    assert User.objects.get(username="alice") == alice
    assert User.objects.get(Q(pk=alice.pk)) == alice


def test_users_in_bulk_by_pk_come_in_one_statement_as_the_orm_reads_them(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    bob.last_login = datetime.datetime(2026, 11, 27, 9, 30, 1, 5, tzinfo=datetime.UTC)
    bob.save()
    fields = [field.attname for field in User._meta.concrete_fields]

    with CaptureQueriesContext(connection) as captured:
        loaded = User.objects.in_bulk([alice.pk, str(bob.pk), bob.pk + 1000])
    by_orm = User.objects.filter(pk__in=[alice.pk, bob.pk]).in_bulk()

    assert len(captured) == 1
    assert loaded.keys() == {alice.pk, bob.pk}
    for pk, user in loaded.items():
        assert [getattr(user, name) for name in fields] == [
            getattr(by_orm[pk], name) for name in fields
        ]
    assert User.objects.in_bulk([]) == {}
    assert User.objects.in_bulk(["alice"], field_name="username") == {"alice": alice}


def test_the_batch_insert_writes_every_field_of_a_message():
    fields = {field.attname for field in Message._meta.concrete_fields if not field.primary_key}
    assert {name for name, _ in MESSAGE_INSERT_COLUMNS} == fields


def test_bulk_created_messages_get_ids_in_order_and_read_back_as_written(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    moment = datetime.datetime(2026, 11, 27, 15, 0, 0, 123456, tzinfo=datetime.UTC)
    written = [
        Message(sender=alice, recipient=bob, text="first", client_id="c-1", sent_at=moment),
        Message(sender=bob, recipient=None, text="to all, 인혜", sent_at=moment),
        Message(sender=bob, recipient=alice, text="third"),
    ]

    created = Message.objects.bulk_create(written)

    ids = [message.pk for message in created]
    assert ids == sorted(ids) and None not in ids
    assert all(not message._state.adding for message in created)
    read = {message.pk: message for message in Message.objects.filter(pk__in=ids)}
    for message in created:
        stored = read[message.pk]
        assert (stored.sender_id, stored.recipient_id, stored.text) == (
            message.sender_id,
            message.recipient_id,
            message.text,
        )
        assert (stored.sent_at, stored.client_id, stored.all_seq) == (
            message.sent_at,
            message.client_id,
            message.all_seq,
        )
    assert read[ids[1]].all_seq == 1
