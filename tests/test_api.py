"""The JSON API: GET /api/messages/ (one conversation's history) and GET /api/conversations/."""

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.models import Message, ReadMarker

MESSAGES_URL = "/api/messages/"
CONVERSATIONS_URL = "/api/conversations/"
MESSAGE_KEYS = {"id", "sender", "recipient", "text", "sent_at"}
SENT_AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture
def as_alice(client: Any, alice: Any) -> Any:
    client.force_login(alice)
    return client


def history(client: Any, **params: Any) -> dict[str, Any]:
    response = client.get(MESSAGES_URL, params)
    assert response.status_code == 200, response.content
    return response.json()


def conversations(client: Any) -> list[dict[str, Any]]:
    response = client.get(CONVERSATIONS_URL)
    assert response.status_code == 200, response.content
    return response.json()["conversations"]


def ids(messages: list[dict[str, Any]]) -> list[int]:
    return [message["id"] for message in messages]


def unread_by_peer(client: Any) -> dict[str, int]:
    return {row["peer"]: row["unread"] for row in conversations(client)}


# GET /api/messages/


def test_history_of_a_dm_contains_both_directions_in_ascending_order(as_alice, alice, bob, send):
    first = send(alice, bob, "hi bob")
    second = send(bob, alice, "hi alice")
    third = send(alice, bob, "how are you?")
    body = history(as_alice, peer="bob")
    assert ids(body["messages"]) == [first.id, second.id, third.id]
    assert [m["sender"] for m in body["messages"]] == ["alice", "bob", "alice"]
    assert [m["recipient"] for m in body["messages"]] == ["bob", "alice", "bob"]
    assert body["has_more"] is False


def test_history_of_a_dm_leaves_out_other_dms_and_global_messages(
    as_alice, alice, bob, carol, send
):
    mine = send(alice, bob, "to bob")
    send(alice, carol, "to carol")
    send(carol, bob, "carol to bob")
    send(bob, None, "to everyone")
    send(alice, None, "alice to everyone")
    assert ids(history(as_alice, peer="bob")["messages"]) == [mine.id]


def test_history_answers_the_exact_message_shape(as_alice, alice, bob, send):
    moment = datetime(2026, 11, 27, 5, 0, 0, 123456, tzinfo=UTC)
    message = send(alice, bob, "exact", sent_at=moment, client_id="c-1")
    assert history(as_alice, peer="bob") == {
        "messages": [
            {
                "id": message.id,
                "sender": "alice",
                "recipient": "bob",
                "text": "exact",
                "sent_at": "2026-11-27T05:00:00.123456Z",
            }
        ],
        "has_more": False,
    }


def test_history_writes_sent_at_in_utc_with_six_digit_microseconds_even_when_zero(
    as_alice, alice, bob, send
):
    send(alice, bob, sent_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    send(alice, bob)
    sent_at = [m["sent_at"] for m in history(as_alice, peer="bob")["messages"]]
    assert sent_at[0] == "2026-01-02T03:04:05.000000Z"
    assert all(SENT_AT.match(value) for value in sent_at), sent_at


def test_history_of_all_holds_only_global_messages_addressed_to_all(
    as_alice, alice, bob, carol, send
):
    first = send(bob, None, "hello everyone")
    send(alice, bob, "private")
    send(carol, alice, "private too")
    second = send(alice, None, "hi all")
    messages = history(as_alice, peer="ALL")["messages"]
    assert ids(messages) == [first.id, second.id]
    assert {m["recipient"] for m in messages} == {"ALL"}
    assert all(set(m) == MESSAGE_KEYS for m in messages)


def test_history_returns_the_newest_fifty_by_default(as_alice, alice, send):
    Message.objects.bulk_create(
        Message(sender=alice, recipient=None, text=f"m{n}") for n in range(60)
    )
    all_ids = list(Message.objects.order_by("id").values_list("id", flat=True))
    body = history(as_alice, peer="ALL")
    assert ids(body["messages"]) == all_ids[-50:]
    assert body["has_more"] is True


def test_history_limit_returns_the_newest_n_in_ascending_order(as_alice, alice, bob, send):
    sent = [send(alice, bob, f"m{n}").id for n in range(5)]
    body = history(as_alice, peer="bob", limit=2)
    assert ids(body["messages"]) == sent[-2:]
    assert body["has_more"] is True


def test_history_before_returns_the_newest_n_with_smaller_ids(as_alice, alice, bob, send):
    sent = [send(alice if n % 2 else bob, bob if n % 2 else alice, f"m{n}").id for n in range(6)]
    body = history(as_alice, peer="bob", before=sent[4], limit=3)
    assert ids(body["messages"]) == sent[1:4]
    assert body["has_more"] is True


def test_history_has_more_is_false_when_the_page_reaches_the_oldest_message(
    as_alice, alice, bob, send
):
    sent = [send(alice, bob, f"m{n}").id for n in range(4)]
    assert history(as_alice, peer="bob", limit=4)["has_more"] is False
    assert history(as_alice, peer="bob", limit=3)["has_more"] is True
    assert history(as_alice, peer="bob", before=sent[3], limit=3)["has_more"] is False
    assert history(as_alice, peer="bob", before=sent[3], limit=2)["has_more"] is True


def test_history_before_the_oldest_message_is_empty(as_alice, alice, bob, send):
    oldest = send(alice, bob)
    assert history(as_alice, peer="bob", before=oldest.id) == {"messages": [], "has_more": False}
    assert history(as_alice, peer="bob", before=0) == {"messages": [], "has_more": False}


def test_history_accepts_the_limits_one_and_one_hundred(as_alice, alice, bob, send):
    sent = [send(alice, bob, f"m{n}").id for n in range(3)]
    assert ids(history(as_alice, peer="bob", limit=1)["messages"]) == sent[-1:]
    assert ids(history(as_alice, peer="bob", limit=100)["messages"]) == sent


def test_paging_back_through_120_messages_with_before_yields_each_once(as_alice, alice, bob, send):
    Message.objects.bulk_create(
        Message(sender=alice if n % 3 else bob, recipient=bob if n % 3 else alice, text=f"m{n}")
        for n in range(120)
    )
    expected = list(Message.objects.order_by("id").values_list("id", flat=True))
    seen: list[int] = []
    pages = []
    params: dict[str, Any] = {"peer": "bob", "limit": 50}
    while True:
        body = history(as_alice, **params)
        pages.append(len(body["messages"]))
        seen = ids(body["messages"]) + seen
        if not body["has_more"]:
            break
        params["before"] = body["messages"][0]["id"]
    assert pages == [50, 50, 20]
    assert seen == expected


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "abc"},
        {"limit": "-1"},
        {"limit": "1.5"},
        {"limit": ""},
        {"limit": " 5"},
        {"limit": "5\n"},
        {"limit": "+5"},
        {"limit": "1e1"},
        {"limit": "\u0665"},
        {"before": "abc"},
        {"before": "-3"},
        {"before": "1.5"},
        {"before": str(2**63)},
    ],
    ids=lambda params: "&".join(f"{key}={value!r}" for key, value in params.items()),
)
def test_history_refuses_a_limit_or_before_that_is_not_a_whole_number_in_range(
    as_alice, bob, params
):
    response = as_alice.get(MESSAGES_URL, {"peer": "bob", **params})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"]


def test_history_without_a_peer_is_a_400(as_alice):
    for params in ({}, {"peer": ""}):
        response = as_alice.get(MESSAGES_URL, params)
        assert response.status_code == 400
        assert "peer" in response.json()["detail"]


def test_history_of_an_unknown_user_is_a_404_json(as_alice):
    response = as_alice.get(MESSAGES_URL, {"peer": "nobody"})
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"]


@pytest.mark.parametrize("peer", ["a\x00b", "\x00"])
def test_history_of_a_peer_holding_a_nul_character_is_a_json_client_error(as_alice, peer):
    # No username holds NUL, so this is a username that does not exist, not a server error.
    response = as_alice.get(MESSAGES_URL, {"peer": peer})
    assert response.status_code in (400, 404)
    assert response.json()["detail"]


def test_history_of_all_is_not_matched_case_insensitively(as_alice):
    assert as_alice.get(MESSAGES_URL, {"peer": "all"}).status_code == 404


def test_history_with_a_deactivated_user_stays_readable(as_alice, alice, make_user, send):
    dave = make_user("dave")
    message = send(dave, alice, "before I left")
    dave.is_active = False
    dave.save()
    assert ids(history(as_alice, peer="dave")["messages"]) == [message.id]


def test_a_user_never_reads_someone_elses_dms(client, alice, bob, carol, send):
    send(alice, bob, "secret")
    send(bob, alice, "secret reply")
    theirs = send(carol, alice, "carol to alice")
    reply = send(alice, carol, "alice to carol")
    client.force_login(carol)
    messages = history(client, peer="alice")["messages"]
    assert ids(messages) == [theirs.id, reply.id]
    assert "secret" not in {m["text"] for m in messages}


def test_history_with_oneself_holds_only_notes_to_self(as_alice, alice, bob, send):
    note = send(alice, alice, "note to self")
    send(alice, bob)
    send(bob, alice)
    assert ids(history(as_alice, peer="alice")["messages"]) == [note.id]


def test_history_finds_unicode_and_punctuated_usernames(as_alice, alice, make_user, send):
    for name in ("인혜", "a.b+c@d-e_f"):
        message = send(make_user(name), alice, f"from {name}")
        assert history(as_alice, peer=name)["messages"][0]["sender"] == name
        assert history(as_alice, peer=name)["messages"][0]["id"] == message.id


@pytest.mark.parametrize("url", [f"{MESSAGES_URL}?peer=ALL", CONVERSATIONS_URL])
def test_anonymous_requests_get_a_json_401_or_403_never_a_redirect(client, db, url):
    response = client.get(url)
    assert response.status_code in (401, 403)
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"]


@pytest.mark.parametrize("url", [f"{MESSAGES_URL}?peer=ALL", CONVERSATIONS_URL])
def test_posting_to_the_api_is_a_405(as_alice, url):
    assert as_alice.post(url, {"peer": "ALL", "text": "hi"}).status_code == 405


# GET /api/conversations/


def test_conversations_always_list_all_even_with_no_messages(as_alice):
    assert conversations(as_alice) == [{"peer": "ALL", "last_message": None, "unread": 0}]


def test_conversations_are_ordered_by_newest_message_first(
    as_alice, alice, bob, carol, make_user, send
):
    dave = make_user("dave")
    send(alice, bob, "old")
    send(bob, None, "global")
    send(dave, alice, "from dave")
    send(alice, carol, "newest")
    assert [row["peer"] for row in conversations(as_alice)] == ["carol", "dave", "ALL", "bob"]


def test_an_empty_global_conversation_is_listed_last(as_alice, alice, bob, send):
    send(bob, alice)
    assert [row["peer"] for row in conversations(as_alice)] == ["bob", "ALL"]


def test_a_reply_moves_an_older_conversation_to_the_top(as_alice, alice, bob, carol, send):
    send(alice, bob)
    send(alice, carol)
    send(bob, alice, "reply")
    assert [row["peer"] for row in conversations(as_alice)] == ["bob", "carol", "ALL"]


def test_the_last_message_of_a_conversation_is_its_newest_message(as_alice, alice, bob, send):
    send(alice, bob, "first")
    newest = send(bob, alice, "second", sent_at=datetime(2026, 11, 27, 5, tzinfo=UTC))
    global_message = send(bob, None, "to all", sent_at=datetime(2026, 11, 27, 6, tzinfo=UTC))
    rows = {row["peer"]: row for row in conversations(as_alice)}
    assert rows["bob"]["last_message"] == {
        "id": newest.id,
        "sender": "bob",
        "recipient": "alice",
        "text": "second",
        "sent_at": "2026-11-27T05:00:00.000000Z",
    }
    assert rows["ALL"]["last_message"] == {
        "id": global_message.id,
        "sender": "bob",
        "recipient": "ALL",
        "text": "to all",
        "sent_at": "2026-11-27T06:00:00.000000Z",
    }
    assert set(rows["ALL"]["last_message"]) == MESSAGE_KEYS


def test_conversations_never_show_other_users_dms(client, alice, bob, carol, send):
    send(alice, bob, "secret")
    send(bob, alice, "secret reply")
    client.force_login(carol)
    assert conversations(client) == [{"peer": "ALL", "last_message": None, "unread": 0}]


def test_unread_counts_the_peers_messages_without_a_read_marker(as_alice, alice, bob, send):
    send(bob, alice)
    send(bob, alice)
    send(alice, bob)
    send(bob, alice)
    assert unread_by_peer(as_alice)["bob"] == 3


def test_unread_counts_only_messages_above_the_read_marker(as_alice, alice, bob, send):
    send(bob, alice)
    read = send(bob, alice)
    send(bob, alice)
    send(bob, alice)
    ReadMarker.objects.create(user=alice, peer=bob, up_to=read.id)
    assert unread_by_peer(as_alice)["bob"] == 2


def test_unread_is_zero_when_the_marker_reaches_the_last_message(as_alice, alice, bob, send):
    send(bob, alice)
    last = send(bob, alice)
    ReadMarker.objects.create(user=alice, peer=bob, up_to=last.id)
    assert unread_by_peer(as_alice)["bob"] == 0


def test_a_read_marker_for_one_peer_leaves_other_conversations_unread(
    as_alice, alice, bob, carol, send
):
    send(carol, alice)
    send(bob, alice)
    last = send(carol, alice)
    ReadMarker.objects.create(user=alice, peer=bob, up_to=last.id)
    ReadMarker.objects.create(user=alice, peer=None, up_to=last.id)
    assert unread_by_peer(as_alice) == {"carol": 2, "bob": 0, "ALL": 0}


def test_another_users_read_marker_does_not_change_my_unread_count(
    as_alice, alice, bob, carol, send
):
    send(bob, alice)
    send(bob, carol)
    last = send(bob, alice)
    ReadMarker.objects.create(user=carol, peer=bob, up_to=last.id)
    ReadMarker.objects.create(user=bob, peer=alice, up_to=last.id)
    assert unread_by_peer(as_alice)["bob"] == 2


def test_unread_in_all_counts_other_users_global_messages_above_the_marker(
    as_alice, alice, bob, carol, send
):
    send(bob, None)
    read = send(carol, None)
    send(bob, None)
    send(alice, None)
    send(carol, None)
    assert unread_by_peer(as_alice)["ALL"] == 4
    ReadMarker.objects.create(user=alice, peer=None, up_to=read.id)
    assert unread_by_peer(as_alice)["ALL"] == 2


def test_own_messages_never_count_as_unread(as_alice, alice, bob, send):
    send(alice, bob)
    send(alice, None)
    send(alice, alice, "note to self")
    assert unread_by_peer(as_alice) == {"alice": 0, "ALL": 0, "bob": 0}


def test_conversations_name_unicode_and_punctuated_usernames(as_alice, alice, make_user, send):
    send(make_user("인혜"), alice, "안녕")
    send(alice, make_user("a.b+c@d-e_f"))
    rows = conversations(as_alice)
    assert [row["peer"] for row in rows] == ["a.b+c@d-e_f", "인혜", "ALL"]
    assert rows[1]["last_message"]["sender"] == "인혜"
    assert rows[1]["unread"] == 1


def test_a_deactivated_users_conversation_stays_listed(as_alice, alice, make_user, send):
    dave = make_user("dave", is_active=False)
    send(dave, alice)
    assert unread_by_peer(as_alice) == {"dave": 1, "ALL": 0}


def test_conversations_take_the_same_number_of_queries_for_one_peer_or_many(
    as_alice, alice, make_user, send
):
    def queries_for_conversations() -> int:
        with CaptureQueriesContext(connection) as captured:
            conversations(as_alice)
        return len(captured)

    send(make_user("peer0"), alice)
    one_peer = queries_for_conversations()
    for n in range(1, 6):
        peer = make_user(f"peer{n}")
        send(peer, alice)
        send(alice, peer)
        ReadMarker.objects.create(user=alice, peer=peer, up_to=0)
    assert queries_for_conversations() == one_peer


def test_the_conversation_list_reads_summaries_messages_and_names_in_two_statements(
    as_alice, alice, bob, carol, send
):
    send(bob, alice, "to alice")
    send(alice, carol, "to carol")
    send(carol, None, "to all")
    ReadMarker.objects.create(user=alice, peer=None, up_to=0)
    with CaptureQueriesContext(connection) as captured:
        listed = conversations(as_alice)
    statements = [query["sql"] for query in captured]
    on_chat = [sql for sql in statements if "chat_conversation" in sql or "chat_message" in sql]
    assert len(on_chat) == 2, on_chat
    assert {row["peer"]: row["last_message"]["sender"] for row in listed} == {
        "bob": "bob",
        "carol": "alice",
        "ALL": "carol",
    }


def queries_for(client: Any, url: str, params: dict[str, Any]) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url, params).status_code == 200
    return [query["sql"] for query in captured]


def test_a_dm_history_page_reads_its_messages_in_one_query(as_alice, alice, bob, send):
    for i in range(30):
        send(alice, bob, f"to bob {i}")
        send(bob, alice, f"to alice {i}")
    statements = queries_for(as_alice, MESSAGES_URL, {"peer": "bob", "limit": 10, "before": 50})
    on_messages = [sql for sql in statements if "chat_message" in sql]
    # Both directions in one statement; the two usernames are known without a query.
    assert len(on_messages) == 1, on_messages
    assert not any("username" in sql and "IN (" in sql for sql in statements), statements


def test_an_all_history_page_reads_messages_and_senders_names_in_one_statement(
    as_alice, alice, bob, carol, send
):
    for i in range(5):
        send(bob, None, f"post {i}")
        send(carol, None, f"reply {i}")
    with CaptureQueriesContext(connection) as captured:
        page = as_alice.get(MESSAGES_URL, {"peer": "ALL"}).json()["messages"]
    statements = [query["sql"] for query in captured]
    assert len([sql for sql in statements if "chat_message" in sql]) == 1, statements
    names_apart = [sql for sql in statements if "IN (" in sql and "chat_message" not in sql]
    assert not names_apart, statements
    assert [(row["sender"], row["text"]) for row in page[:2]] == [
        ("bob", "post 0"),
        ("carol", "reply 0"),
    ]
