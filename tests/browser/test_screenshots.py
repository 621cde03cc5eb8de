"""Screenshots of the chat page at desktop and phone widths, saved to docs/screenshots/."""

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from chat.models import Message
from tests.browser.conftest import (
    DESKTOP,
    PHONE,
    composer,
    conversation,
    conversation_title,
    message_log,
    new_conversation,
    online_person,
    open_chat,
    screenshot_path,
    send_message,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(60),
]


# Fixed times, and a fixed clock in the page, so a new run draws the same pictures.
SCENE_START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
PAGE_NOW = SCENE_START + timedelta(minutes=45)


def make_scene(make_user):
    """A few people and conversations, as a screenshot would show a chat in use."""
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    make_user("인혜")
    lines = [
        (carol, None, "Morning all! Stand-up moved to 10:30 today."),
        (bob, None, "Thanks. I'll bring the release notes."),
        (alice, None, "Sounds good. The staging deploy finished overnight, all green."),
        (carol, None, "Nice. Did the reconnect fix make it in?"),
        (alice, None, "It did: restart a server and the page catches up by itself."),
        (bob, alice, "Can you look at my pull request before lunch?"),
        (alice, bob, "Sure, after stand-up."),
        (bob, alice, "Thanks!\nIt's the one about unread badges."),
        (carol, alice, "Lunch at 12?"),
        (carol, alice, "The new place on the corner."),
    ]
    Message.objects.bulk_create(
        Message(
            sender=sender,
            recipient=recipient,
            text=text,
            sent_at=SCENE_START + timedelta(minutes=i),
        )
        for i, (sender, recipient, text) in enumerate(lines)
    )
    return alice, bob, carol


def test_screenshots_of_the_chat_at_desktop_and_phone_widths(server, pages, make_user):
    alice, bob, carol = make_scene(make_user)
    bob_page = pages.page(server, bob)
    pages.page(server, carol)

    def alice_page(**options):
        context = pages.context(server, alice, **options)
        context.clock.set_fixed_time(PAGE_NOW)
        page = pages.new_page(context, "alice")
        open_chat(page)
        return page

    desktop = alice_page(viewport=DESKTOP)
    conversation(desktop, "bob").click()
    expect(message_log(desktop).get_by_role("article")).to_have_count(3)
    expect(conversation(desktop, "carol")).to_have_accessible_description(
        "2 unread The new place on the corner."
    )
    expect(online_person(desktop, "carol")).to_be_visible()
    composer(desktop).fill("On it")
    desktop.screenshot(path=screenshot_path("chat-desktop.png"))

    desktop.close()  # it would read bob's next message for the phone's tab too

    # On a phone the lists come first; tapping a conversation brings it up to fill the screen.
    phone = alice_page(viewport=PHONE, is_mobile=True, has_touch=True)
    expect(conversation(phone, "Everyone")).to_be_in_viewport()
    expect(composer(phone)).not_to_be_in_viewport()
    conversation(phone, "Everyone").tap()
    expect(message_log(phone).get_by_role("article")).to_have_count(5)
    expect(composer(phone)).to_be_in_viewport()
    expect(conversation(phone, "Everyone")).not_to_be_in_viewport()
    expect(phone.get_by_role("link", name="All conversations (2 unread)")).to_be_in_viewport()
    phone.screenshot(path=screenshot_path("chat-phone.png"))

    # News from another conversation shows on the way back to the list.
    new_conversation(bob_page, "alice")
    expect(conversation_title(bob_page, "alice")).to_be_visible()
    send_message(bob_page, "Done, thanks!")
    back = phone.get_by_role("link", name="All conversations (3 unread)")
    expect(back).to_be_in_viewport()
    back.tap()
    expect(conversation(phone, "bob")).to_be_in_viewport()
    expect(conversation(phone, "bob")).to_have_accessible_description("1 unread Done, thanks!")
