"""The chat page in Chromium: two people, live messages, unread counts, presence, typing."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from playwright.sync_api import expect

from chat.models import Message
from tests.browser.conftest import (
    composer,
    connection_status,
    conversation,
    conversation_title,
    message_log,
    new_conversation,
    online_person,
    send_message,
    texts_in_log,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(60),
]


def test_everyone_and_direct_messages_arrive_live_and_unread_counts_follow(
    server, pages, make_user
):
    alice = pages.page(server, make_user("alice"))
    bob = pages.page(server, make_user("bob"))

    send_message(alice, "hello everyone")
    expect(message_log(bob).get_by_text("hello everyone", exact=True)).to_be_visible()
    expect(conversation(bob, "Everyone")).to_have_accessible_description("alice: hello everyone")

    online_person(bob, "alice").click()
    expect(conversation_title(bob, "alice")).to_be_visible()
    send_message(bob, "first direct message")
    composer(bob).fill("second direct message")
    bob.get_by_role("button", name="Send", exact=True).click()
    expect(composer(bob)).to_have_value("")

    # Alice is looking at Everyone: the DMs wait in bob's conversation, counted.
    expect(conversation(alice, "bob")).to_have_accessible_description(
        "2 unread second direct message"
    )
    expect(alice).to_have_title("(2) Chat")
    expect(message_log(alice)).not_to_contain_text("direct message")

    conversation(alice, "bob").click()
    expect(conversation_title(alice, "bob")).to_be_visible()
    expect(message_log(alice).get_by_text("first direct message", exact=True)).to_be_visible()
    expect(message_log(alice).get_by_text("second direct message", exact=True)).to_be_visible()
    expect(conversation(alice, "bob")).to_have_accessible_description("second direct message")
    expect(alice).to_have_title("Chat")

    # Now Everyone is the other conversation: its count rises while bob's DM stays open.
    conversation(bob, "Everyone").click()
    send_message(bob, "to all, from bob")
    expect(conversation(alice, "Everyone")).to_have_accessible_description(
        "1 unread bob: to all, from bob"
    )
    send_message(alice, "a reply to bob")
    expect(conversation(bob, "alice")).to_have_accessible_description("1 unread a reply to bob")
    expect(message_log(bob)).not_to_contain_text("a reply to bob")

    conversation(alice, "Everyone").click()
    expect(message_log(alice).get_by_text("to all, from bob", exact=True)).to_be_visible()
    expect(conversation(alice, "Everyone")).to_have_accessible_description("bob: to all, from bob")

    # What was read stays read: the counts come back from the server at zero.
    alice.reload()
    expect(connection_status(alice)).to_have_text("Connected")
    expect(conversation(alice, "bob")).to_have_accessible_description("You: a reply to bob")
    expect(conversation(alice, "Everyone")).to_have_accessible_description("bob: to all, from bob")
    expect(alice).to_have_title("Chat")
    expect(message_log(alice).get_by_role("article")).to_have_count(2)
    assert texts_in_log(alice) == ["hello everyone", "to all, from bob"]


def test_own_messages_stand_apart_from_others(server, pages, make_user):
    alice = pages.page(server, make_user("alice"))
    bob = pages.page(server, make_user("bob"))
    send_message(bob, "from bob")
    send_message(alice, "from alice")

    log = message_log(alice)
    mine = log.get_by_role("article").filter(has_text="from alice")
    theirs = log.get_by_role("article").filter(has_text="from bob")
    expect(mine).to_be_visible()
    expect(theirs).to_be_visible()
    mine_box, theirs_box, log_box = mine.bounding_box(), theirs.bounding_box(), log.bounding_box()
    # Own messages sit at the right edge, others' at the left, in another colour.
    assert mine_box["x"] + mine_box["width"] > log_box["x"] + log_box["width"] - 24
    assert theirs_box["x"] < log_box["x"] + 24
    background = "el => getComputedStyle(el).backgroundColor"
    assert mine.evaluate(background) != theirs.evaluate(background)


def test_enter_sends_and_shift_enter_starts_a_new_line(server, pages, make_user):
    alice = pages.page(server, make_user("alice"))
    bob = pages.page(server, make_user("bob"))

    box = composer(alice)
    box.click()
    box.press_sequentially("line one")
    box.press("Shift+Enter")
    box.press_sequentially("line two")
    expect(box).to_have_value("line one\nline two")
    expect(message_log(bob)).not_to_contain_text("line one")

    box.press("Enter")

    expect(box).to_have_value("")
    expect(message_log(bob).get_by_role("article")).to_have_count(1)
    assert texts_in_log(bob) == ["line one\nline two"]
    # An empty composer sends nothing.
    box.press("Enter")
    box.press("Shift+Enter")
    box.press("Enter")
    send_message(alice, "after the blanks")
    assert texts_in_log(alice) == ["line one\nline two", "after the blanks"]


def test_people_appear_in_the_online_list_and_leave_it(server, pages, make_user):
    alice = pages.page(server, make_user("alice"))
    bob_user = make_user("bob")
    expect(alice.get_by_text("Nobody else is online.")).to_be_visible()

    bob = pages.page(server, bob_user)

    expect(online_person(alice, "bob")).to_be_visible()
    expect(alice.get_by_text("Nobody else is online.")).to_be_hidden()
    expect(online_person(bob, "alice")).to_be_visible()
    expect(online_person(bob, "bob")).to_have_count(0)

    online_person(alice, "bob").click()
    expect(conversation_title(alice, "bob")).to_be_visible()
    expect(composer(alice)).to_have_attribute("placeholder", "Message bob…")

    bob.close()

    expect(online_person(alice, "bob")).to_have_count(0)
    expect(alice.get_by_text("Nobody else is online.")).to_be_visible()


def test_typing_is_shown_then_cleared_by_the_message_or_after_a_pause(server, pages, make_user):
    alice = pages.page(server, make_user("alice"))
    bob = pages.page(server, make_user("bob"))
    new_conversation(alice, "bob")
    expect(conversation_title(alice, "bob")).to_be_visible()
    new_conversation(bob, "alice")
    expect(conversation_title(bob, "alice")).to_be_visible()
    typing = alice.get_by_text("bob is typing…")

    composer(bob).press_sequentially("hel")
    expect(typing).to_be_visible()
    # Nobody types for a few seconds: the notice goes away by itself (time is under test).
    expect(typing).to_be_hidden(timeout=8_000)

    composer(bob).press_sequentially("lo")
    expect(typing).to_be_visible()
    composer(bob).press("Enter")
    expect(message_log(alice).get_by_text("hello", exact=True)).to_be_visible()
    expect(typing).to_be_hidden(timeout=1_000)


def test_unknown_users_get_a_not_found_note(server, pages, make_user):
    alice = pages.page(server, make_user("alice"))
    carol = make_user("carol")

    new_conversation(alice, "nobody")
    expect(alice.get_by_text("User nobody was not found")).to_be_visible()
    expect(conversation_title(alice, "Everyone")).to_be_visible()
    expect(conversation(alice, "nobody")).to_have_count(0)

    new_conversation(alice, "carol")
    expect(conversation_title(alice, "carol")).to_be_visible()
    expect(alice.get_by_text("User nobody was not found")).to_be_hidden()
    expect(composer(alice)).to_be_focused()

    # Carol's account goes away while her conversation is open: the send is refused.
    get_user_model().objects.filter(pk=carol.pk).update(is_active=False)
    composer(alice).press_sequentially("are you there?")
    composer(alice).press("Enter")

    expect(composer(alice)).to_have_accessible_description(re.compile(r"carol was not found"))
    expect(composer(alice)).to_have_value("are you there?")
    assert not Message.objects.filter(text="are you there?").exists()


def test_message_text_is_shown_as_text_never_as_html(server, pages, make_user):
    alice = pages.page(server, make_user("alice"))
    bob = pages.page(server, make_user("bob"))
    text = (
        '<b>bold</b> <img src="x" onerror="window.pwned = 1"> &amp; '
        "<script>window.pwned = 2</script>"
    )

    send_message(alice, text)

    expect(message_log(bob).get_by_text(text, exact=True)).to_be_visible()
    # The list's preview is cut at 80 characters, as text too.
    expect(conversation(bob, "Everyone")).to_have_accessible_description(f"alice: {text[:80]}…")
    bob.reload()  # the same text again, from the history API
    expect(message_log(bob).get_by_text(text, exact=True)).to_be_visible()
    for page in (alice, bob):
        expect(message_log(page).locator("b, img, script")).to_have_count(0)
        assert page.evaluate("window.pwned") is None


def test_scrolling_up_the_log_loads_older_messages(server, pages, make_user):
    alice_user, bob_user = make_user("alice"), make_user("bob")
    start = timezone.now() - timedelta(hours=3)
    Message.objects.bulk_create(
        Message(
            sender=alice_user if number % 3 else bob_user,
            recipient=None,
            text=f"history {number:03}",
            sent_at=start + timedelta(minutes=number),
        )
        for number in range(1, 121)
    )
    alice = pages.page(server, alice_user)
    log = message_log(alice)
    articles = log.get_by_role("article")
    expect(articles).to_have_count(50)
    expect(log.get_by_text("history 120", exact=True)).to_be_in_viewport()

    for shown in (100, 120):
        log.hover()
        alice.mouse.wheel(0, -50_000)
        expect(articles).to_have_count(shown)

    expect(log.get_by_text("history 001", exact=True)).to_be_attached()
    expect(alice.get_by_role("button", name="Load older messages")).to_be_hidden()
    assert texts_in_log(alice) == [f"history {number:03}" for number in range(1, 121)]


def test_times_are_shown_in_the_readers_time_zone(server, pages, make_user):
    alice_user = make_user("alice")
    Message.objects.create(
        sender=alice_user,
        recipient=None,
        text="new year meeting",
        sent_at=datetime(2026, 1, 15, 23, 30, tzinfo=UTC),
    )
    readers = {
        "Asia/Seoul": r"Jan 16, 2026, 8:30\sAM",
        "America/Los_Angeles": r"Jan 15, 2026, 3:30\sPM",
    }
    for zone, shown in readers.items():
        page = pages.page(server, alice_user, timezone_id=zone)
        article = message_log(page).get_by_role("article").filter(has_text="new year meeting")
        expect(article.locator("time")).to_have_text(re.compile(shown))
        expect(article.locator("time")).to_have_attribute(
            "datetime", re.compile(r"^2026-01-15T23:30:00(\.0+)?Z$")
        )
