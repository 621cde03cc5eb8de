"""The Django admin: adding users (ALL is reserved); listing, searching and deleting messages."""

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from chat.models import Message
from chat.selectors import conversation_list
from tests.conftest import PASSWORD

USER_ADD_URL = "/admin/chat/user/add/"
MESSAGES_URL = "/admin/chat/message/"
NOV_27 = datetime(2026, 11, 27, 5, 0, tzinfo=UTC)
NOV_28 = datetime(2026, 11, 28, 23, 30, tzinfo=UTC)


@pytest.fixture
def admin_client(client: Any, make_user: Callable[..., Any]) -> Any:
    """The test client logged in as a superuser."""
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def listed_ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.status_code
    return sorted(message.id for message in response.context["cl"].result_list)


def column(response: Any, field: str) -> list[str]:
    """The text of each cell in one column of the changelist, top to bottom."""
    assert response.status_code == 200, response.status_code
    cell = re.compile(rf'<td class="field-{field}(?: [^"]*)?">(.*?)</td>', re.DOTALL)
    return cell.findall(response.text)


def add_user(client: Any, username: str) -> Any:
    return client.post(
        USER_ADD_URL,
        {
            "username": username,
            "usable_password": "true",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )


def usernames() -> set[str]:
    return set(get_user_model().objects.values_list("username", flat=True))


# Users


def test_admin_adds_a_user(admin_client):
    response = add_user(admin_client, "인혜")
    assert response.status_code == 302
    assert get_user_model().objects.get(username="인혜").check_password(PASSWORD)


@pytest.mark.parametrize("username", ["ALL", "all", "All"])
def test_admin_refuses_to_add_a_user_named_all_in_any_case(admin_client, username):
    response = add_user(admin_client, username)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["username"]
    assert any("reserved" in error for error in errors), errors
    assert "reserved" in response.text
    assert usernames() == {"root"}


def test_admin_refuses_to_add_a_username_differing_only_in_case(admin_client, alice):
    response = add_user(admin_client, "ALICE")
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["username"]
    assert usernames() == {"root", "alice"}


def test_admin_refuses_to_rename_a_user_to_all(admin_client, alice):
    response = admin_client.post(
        f"/admin/chat/user/{alice.pk}/change/",
        {
            "username": "all",
            "is_active": "on",
            "date_joined_0": "2026-11-27",
            "date_joined_1": "05:00:00",
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["username"]
    assert any("reserved" in error for error in errors), errors
    alice.refresh_from_db()
    assert alice.username == "alice"


def test_admin_is_closed_to_users_who_are_not_staff(client, alice):
    client.force_login(alice)
    response = client.get(MESSAGES_URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


# Messages: the list


def test_message_list_shows_sender_recipient_time_and_text(admin_client, alice, bob, send):
    send(alice, bob, "hi bob", sent_at=NOV_27)
    response = admin_client.get(MESSAGES_URL)
    assert column(response, "sender") == ["alice"]
    assert column(response, "recipient_name") == ["bob"]
    assert column(response, "sent_at") == ["Nov. 27, 2026, 5 a.m."]
    assert column(response, "excerpt") == ["hi bob"]


def test_message_list_names_the_recipient_of_a_global_message_all(admin_client, alice, send):
    send(alice, None, "hello everyone")
    assert column(admin_client.get(MESSAGES_URL), "recipient_name") == ["ALL"]


def test_message_list_shortens_long_text_to_an_excerpt(admin_client, alice, bob, send):
    send(alice, bob, "x" * 79 + "y" * 200)
    send(alice, bob, "z" * 80)
    assert column(admin_client.get(MESSAGES_URL), "excerpt") == ["z" * 80, "x" * 79 + "…"]


def test_message_list_escapes_html_in_the_text(admin_client, alice, bob, send):
    send(alice, bob, "<script>alert(1)</script>")
    response = admin_client.get(MESSAGES_URL)
    assert column(response, "excerpt") == ["&lt;script&gt;alert(1)&lt;/script&gt;"]
    assert "<script>alert(1)</script>" not in response.text


def test_message_list_shows_the_newest_message_first(admin_client, alice, bob, send):
    older = send(alice, bob)
    newer = send(bob, alice)
    listed = [m.id for m in admin_client.get(MESSAGES_URL).context["cl"].result_list]
    assert listed == [newer.id, older.id]


def test_message_list_with_a_unicode_username(admin_client, alice, make_user, send):
    send(make_user("인혜"), alice, "안녕")
    response = admin_client.get(MESSAGES_URL)
    assert column(response, "sender") == ["인혜"]
    assert column(response, "excerpt") == ["안녕"]


# Messages: search and filter


def test_message_search_finds_text(admin_client, alice, bob, send):
    wanted = send(alice, bob, "the pineapple is ripe")
    send(alice, bob, "nothing to see")
    assert listed_ids(admin_client.get(MESSAGES_URL, {"q": "pineapple"})) == [wanted.id]


def test_message_search_finds_messages_sent_or_received_by_a_username(
    admin_client, alice, bob, carol, send
):
    sent = send(carol, alice)
    received = send(bob, carol)
    send(alice, bob)
    send(bob, None)
    assert listed_ids(admin_client.get(MESSAGES_URL, {"q": "carol"})) == [sent.id, received.id]


def test_message_date_hierarchy_filters_by_day(admin_client, alice, bob, send):
    on_27th = send(alice, bob, sent_at=NOV_27)
    send(alice, bob, sent_at=NOV_28)
    params = {"sent_at__year": 2026, "sent_at__month": 11, "sent_at__day": 27}
    assert listed_ids(admin_client.get(MESSAGES_URL, params)) == [on_27th.id]


def test_message_date_filter_keeps_messages_in_the_range(admin_client, alice, bob, send):
    send(alice, bob, sent_at=NOV_27)
    on_28th = send(alice, None, sent_at=NOV_28)
    params = {
        "sent_at__gte": "2026-11-28 00:00:00+00:00",
        "sent_at__lt": "2026-11-29 00:00:00+00:00",
    }
    assert listed_ids(admin_client.get(MESSAGES_URL, params)) == [on_28th.id]


def test_message_date_filter_offers_today_and_the_past_week(admin_client, alice, bob, send):
    today = send(alice, bob)
    send(alice, bob, sent_at=datetime(2020, 1, 1, tzinfo=UTC))
    response = admin_client.get(MESSAGES_URL)
    assert "Today" in response.text and "Past 7 days" in response.text
    today_filter = next(
        choice
        for spec in response.context["cl"].filter_specs
        for choice in spec.choices(response.context["cl"])
        if choice["display"] == "Today"
    )
    assert listed_ids(admin_client.get(MESSAGES_URL + today_filter["query_string"])) == [today.id]


# Messages: delete


def test_deleting_a_message_in_the_admin_removes_only_that_message(admin_client, alice, bob, send):
    doomed = send(alice, bob, "oops")
    kept = send(alice, bob, "fine")
    confirm = admin_client.get(f"{MESSAGES_URL}{doomed.pk}/delete/")
    assert confirm.status_code == 200
    response = admin_client.post(f"{MESSAGES_URL}{doomed.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert list(Message.objects.values_list("id", flat=True)) == [kept.id]


def test_deleting_selected_messages_from_the_list_removes_them(admin_client, alice, bob, send):
    doomed = [send(alice, bob).pk, send(bob, None).pk]
    kept = send(alice, bob)
    response = admin_client.post(
        MESSAGES_URL,
        {"action": "delete_selected", "_selected_action": doomed, "post": "yes"},
    )
    assert response.status_code == 302
    assert list(Message.objects.values_list("id", flat=True)) == [kept.id]


def test_deleting_messages_in_the_admin_keeps_the_conversation_list_exact(
    admin_client, alice, bob, carol, send
):
    first = send(alice, bob, "first")
    doomed = [send(alice, bob, "second").pk, send(carol, None).pk]
    send(carol, None)
    admin_client.post(
        MESSAGES_URL, {"action": "delete_selected", "_selected_action": doomed, "post": "yes"}
    )
    rows = {row["peer"]: row for row in conversation_list(user=bob)}
    assert rows["alice"]["last_message"]["id"] == first.pk
    assert (rows["alice"]["unread"], rows["ALL"]["unread"]) == (1, 1)


# Messages: change


def test_a_stored_messages_sender_and_recipient_cannot_be_changed(
    admin_client, alice, bob, carol, send
):
    message = send(alice, bob, "hi")
    url = f"{MESSAGES_URL}{message.pk}/change/"
    form = admin_client.get(url).context["adminform"].form
    assert "sender" not in form.fields and "recipient" not in form.fields
    response = admin_client.post(url, {"text": "edited", "sender": carol.pk, "recipient": carol.pk})
    assert response.status_code == 302
    message.refresh_from_db()
    assert (message.text, message.sender_id, message.recipient_id) == ("edited", alice.pk, bob.pk)
