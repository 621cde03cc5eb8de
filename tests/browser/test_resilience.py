"""The page against a server that restarts or refuses: it catches up by itself, it keeps text."""

import re

import pytest
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
    pytest.mark.timeout(90),
]


def everyone_texts_in_database():
    return list(
        Message.objects.filter(recipient=None).order_by("id").values_list("text", flat=True)
    )


def test_a_restarted_server_is_rejoined_and_nothing_is_missed_or_doubled(
    two_servers, pages, make_user
):
    # Alice's page talks to the first server, bob's to the second; both share Redis and the
    # database, as two processes behind one proxy do.
    first, second = two_servers
    alice_user = make_user("alice")
    alice = pages.page(first, alice_user)
    bob = pages.page(second, make_user("bob"))
    expect(online_person(bob, "alice")).to_be_visible()
    send_message(bob, "before the restart")
    expect(message_log(alice).get_by_text("before the restart", exact=True)).to_be_visible()

    first.terminate()  # SIGTERM: the server closes its sockets with 1012 and exits

    expect(connection_status(alice)).to_have_text("Reconnecting…")
    expect(online_person(bob, "alice")).to_have_count(0)
    for number in (1, 2, 3):
        send_message(bob, f"while it is down {number}")
    new_conversation(bob, "alice")
    expect(conversation_title(bob, "alice")).to_be_visible()
    send_message(bob, "a direct message while it is down")
    conversation(bob, "Everyone").click()
    # Alice writes while disconnected: the composer keeps the text and says why.
    composer(alice).fill("alice, offline")
    composer(alice).press("Enter")
    expect(composer(alice)).to_have_accessible_description(re.compile("Not connected"))
    expect(composer(alice)).to_have_value("alice, offline")

    first.spawn()  # the same port; bob keeps writing while it starts and the page reconnects
    send_message(bob, "while it starts")
    first.wait_ready()
    send_message(bob, "as soon as it is up")

    expect(connection_status(alice)).to_have_text("Connected", timeout=30_000)
    expect(composer(alice)).to_have_value("")  # resent after reconnecting, and accepted
    expect(online_person(bob, "alice")).to_be_visible()
    send_message(bob, "after the reconnect")

    expected = everyone_texts_in_database()
    assert len(expected) == 8 and len(set(expected)) == 8, expected
    assert "alice, offline" in expected
    for page in (alice, bob):
        log = message_log(page)
        expect(log.get_by_role("article")).to_have_count(len(expected))
        for text in expected:
            expect(log.get_by_text(text, exact=True)).to_have_count(1)
        assert texts_in_log(page) == expected

    expect(conversation(alice, "bob")).to_have_accessible_description(
        "1 unread a direct message while it is down"
    )
    conversation(alice, "bob").click()
    expect(message_log(alice).get_by_role("article")).to_have_count(1)
    assert texts_in_log(alice) == ["a direct message while it is down"]


def test_a_refused_send_keeps_the_text_and_says_why(start_server, pages, make_user):
    server = start_server(env={"CHAT_MAX_MESSAGE_LENGTH": "20", "CHAT_RATE_LIMIT": "2/60"})
    alice = pages.page(server, make_user("alice"))
    box = composer(alice)

    too_long = "twenty characters are not enough for this"
    box.fill(too_long)
    box.press("Enter")
    expect(box).to_have_accessible_description(
        re.compile(r"^Message is too long: at most 20 characters, this one has 41\.")
    )
    expect(box).to_have_value(too_long)

    send_message(alice, "first")
    expect(box).to_have_accessible_description("")
    send_message(alice, "second")
    box.fill("third, too soon")
    box.press("Enter")
    expect(box).to_have_accessible_description(
        re.compile(r"^Sending too fast: wait \d+ s and retry")
    )
    expect(box).to_have_value("third, too soon")

    assert texts_in_log(alice) == ["first", "second"]
    assert everyone_texts_in_database() == ["first", "second"]
