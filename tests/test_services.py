"""Message storing in batches: one transaction, each request its own answer."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat import services
from chat.exceptions import NotFound
from chat.models import Message

pytestmark = pytest.mark.django_db(transaction=True)


def request(sender, recipient: str, text: str = "hi", client_id: str | None = None):
    return services._ToStore(
        sender=sender, recipient_name=recipient, text=text, client_id=client_id
    )


def test_a_batch_stores_each_message_with_ids_in_request_order(alice, bob, carol):
    results = services._messages_store(
        [request(alice, "bob", "one"), request(bob, "ALL", "two"), request(carol, "alice", "3")]
    )
    ids = [result.payload["id"] for result in results]
    assert ids == sorted(ids)
    assert [r.payload["recipient"] for r in results] == ["bob", "ALL", "alice"]
    assert list(Message.objects.order_by("id").values_list("text", flat=True)) == [
        "one",
        "two",
        "3",
    ]
    assert all(result.created for result in results)


def test_a_batch_takes_the_message_order_lock_once(alice, bob, carol):
    with CaptureQueriesContext(connection) as captured:
        services._messages_store(
            [request(alice, "bob"), request(bob, "ALL"), request(carol, "alice", client_id="c")]
        )
    locks = [q for q in captured.captured_queries if "pg_advisory_xact_lock" in q["sql"]]
    # SQLite serialises writers itself and takes no lock.
    assert len(locks) == (1 if connection.vendor == "postgresql" else 0)


def test_an_unknown_recipient_fails_only_its_own_request(alice, bob):
    results = services._messages_store(
        [request(alice, "bob"), request(alice, "nobody"), request(alice, "ALL")]
    )
    assert isinstance(results[1], NotFound)
    assert results[0].created and results[2].created
    assert Message.objects.count() == 2


def test_the_same_resend_twice_in_one_batch_is_stored_once(alice, bob):
    results = services._messages_store(
        [request(alice, "bob", client_id="k"), request(alice, "bob", client_id="k")]
    )
    assert results[0].created and not results[1].created
    assert results[0].payload["id"] == results[1].payload["id"]
    assert Message.objects.count() == 1


def test_a_resend_of_a_stored_message_answers_with_the_first_id(alice, bob):
    [first] = services._messages_store([request(alice, "bob", "original", client_id="k")])
    [again] = services._messages_store([request(alice, "bob", "retry", client_id="k")])
    assert not again.created
    assert again.payload == first.payload
    assert Message.objects.get().text == "original"


def test_a_client_id_is_a_resend_only_for_the_sender_who_used_it(alice, bob, carol):
    [alices, carols] = services._messages_store(
        [request(alice, "bob", "from alice", client_id="x"), request(carol, "bob", client_id="y")]
    )
    # Each sender reuses the other's client id: two new messages, not resends.
    swapped = services._messages_store(
        [request(alice, "bob", "new", client_id="y"), request(carol, "bob", "new", client_id="x")]
    )
    assert [result.created for result in swapped] == [True, True]
    assert {result.payload["id"] for result in swapped}.isdisjoint(
        {alices.payload["id"], carols.payload["id"]}
    )
    [resent] = services._messages_store([request(alice, "bob", "retry", client_id="x")])
    assert (resent.created, resent.payload["id"]) == (False, alices.payload["id"])


def test_a_single_store_resolves_a_client_id_stored_by_someone_else_meanwhile(alice, bob):
    Message.objects.create(sender=alice, recipient=bob, text="raced", client_id="k")
    stored = services._message_store_one(request(alice, "bob", "late", client_id="k"))
    assert not stored.created and stored.payload["text"] == "raced"
