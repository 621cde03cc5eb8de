"""The chat page with the keyboard alone: focus order, lists, starting and sending."""

import pytest
from playwright.sync_api import expect

from chat.models import Message
from tests.browser.conftest import (
    composer,
    conversation,
    conversation_title,
    message_log,
    online_person,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(60),
]


def test_tab_walks_the_page_in_reading_order(server, pages, make_user):
    alice_user, bob_user = make_user("alice"), make_user("bob")
    Message.objects.create(sender=bob_user, recipient=alice_user, text="hi alice")
    pages.page(server, bob_user)
    page = pages.page(server, alice_user)
    expect(online_person(page, "bob")).to_be_visible()

    order = [
        page.get_by_role("link", name="Skip to content"),
        page.get_by_role("link", name="Chat", exact=True),
        page.get_by_role("link", name="Change password"),
        page.get_by_role("button", name="Log out"),
        conversation(page, "bob"),  # the newest conversation first
        conversation(page, "Everyone"),
        page.get_by_role("textbox", name="New conversation"),
        online_person(page, "bob"),
        page.get_by_role("button", name="Enable notifications"),
        message_log(page),  # focusable, so the keyboard can scroll it
        composer(page),
        page.get_by_role("button", name="Send", exact=True),
    ]
    for expected in order:
        page.keyboard.press("Tab")
        expect(expected).to_be_focused()

    # The skip link jumps over the header to the conversations.
    page.keyboard.press("Shift+Tab")
    for _ in order[:-2]:
        page.keyboard.press("Shift+Tab")
    expect(order[0]).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(conversation(page, "bob")).to_be_focused()


def test_choosing_and_writing_with_the_keyboard_alone(server, pages, make_user):
    alice_user, bob_user = make_user("alice"), make_user("bob")
    Message.objects.create(sender=bob_user, recipient=alice_user, text="hi alice")
    bob = pages.page(server, bob_user)
    page = pages.page(server, alice_user)

    conversation(page, "bob").focus()
    page.keyboard.press("ArrowDown")
    expect(conversation(page, "Everyone")).to_be_focused()
    page.keyboard.press("ArrowUp")
    expect(conversation(page, "bob")).to_be_focused()
    page.keyboard.press("End")
    expect(conversation(page, "Everyone")).to_be_focused()
    page.keyboard.press("Home")
    expect(conversation(page, "bob")).to_be_focused()

    # Enter opens the conversation and puts the cursor in the composer.
    page.keyboard.press("Enter")
    expect(conversation_title(page, "bob")).to_be_visible()
    expect(message_log(page).get_by_text("hi alice", exact=True)).to_be_visible()
    expect(composer(page)).to_be_focused()
    page.keyboard.type("hello bob")
    page.keyboard.press("Enter")
    expect(composer(page)).to_have_value("")

    # A new conversation from the keyboard: type a name, Enter, write, Enter.
    page.get_by_role("textbox", name="New conversation").focus()
    page.keyboard.type("bob")
    page.keyboard.press("Enter")
    expect(composer(page)).to_be_focused()
    page.keyboard.type("and again")
    page.keyboard.press("Enter")

    conversation(bob, "alice").click()
    log = message_log(bob)
    expect(log.get_by_text("hello bob", exact=True)).to_be_visible()
    expect(log.get_by_text("and again", exact=True)).to_be_visible()
