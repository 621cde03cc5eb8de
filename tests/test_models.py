"""The user model's manager: a user by primary key in one statement, read as the ORM would."""

import datetime

import pytest
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext

from chat.models import User

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
