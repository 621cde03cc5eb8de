"""Desktop notifications for new direct messages while the tab is hidden, once allowed.

Headless Chromium shows no desktop notifications and its tabs are always visible, so the page
gets a stand-in Notification API and a switch for document.visibilityState, installed before
its scripts run (an init script is not subject to the page's Content-Security-Policy).
"""

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import (
    composer,
    conversation,
    conversation_title,
    message_log,
    new_conversation,
    open_chat,
    send_message,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(60),
]

STAND_INS = """
(() => {
  let permission = 'default';
  const shown = [];
  class StandInNotification extends EventTarget {
    static get permission() { return permission; }
    static async requestPermission() { permission = 'granted'; return permission; }
    constructor(title, options = {}) {
      super();
      this.title = title;
      this.body = options.body;
      this.tag = options.tag;
      shown.push(this);
    }
    close() {}
  }
  window.Notification = StandInNotification;
  window.shownNotifications = () => shown.map(({ title, body, tag }) => ({ title, body, tag }));
  window.clickNotification = (index) => shown[index].dispatchEvent(new Event('click'));

  let hidden = false;
  Object.defineProperty(Document.prototype, 'visibilityState', {
    configurable: true,
    get() { return hidden ? 'hidden' : 'visible'; },
  });
  Object.defineProperty(Document.prototype, 'hidden', {
    configurable: true,
    get() { return hidden; },
  });
  window.setTabHidden = (value) => {
    hidden = value;
    document.dispatchEvent(new Event('visibilitychange'));
  };
})();
"""


def test_direct_messages_notify_while_the_tab_is_hidden_once_allowed(server, pages, make_user):
    alice_user, bob_user = make_user("alice"), make_user("bob")
    context = pages.context(server, alice_user)
    context.add_init_script(STAND_INS)
    alice = pages.new_page(context, "alice")
    open_chat(alice)
    bob = pages.page(server, bob_user)

    enable = alice.get_by_role("button", name="Enable notifications")
    expect(enable).to_be_visible()
    enable.click()
    expect(enable).to_be_hidden()
    expect(composer(alice)).to_be_focused()

    alice.evaluate("setTabHidden(true)")
    send_message(bob, "to everyone, no notice")
    new_conversation(bob, "alice")
    expect(conversation_title(bob, "alice")).to_be_visible()
    send_message(bob, "are you there?\nlunch?")

    alice.wait_for_function("shownNotifications().length > 0")
    assert alice.evaluate("shownNotifications()") == [
        {"title": "bob", "body": "are you there? lunch?", "tag": "chat-dm-bob"}
    ]
    # Hidden, Everyone is open but unread: the count waits for the reader to come back.
    expect(conversation(alice, "Everyone")).to_have_accessible_description(
        "1 unread bob: to everyone, no notice"
    )
    expect(alice).to_have_title("(2) Chat")

    alice.evaluate("setTabHidden(false)")
    expect(conversation(alice, "Everyone")).to_have_accessible_description(
        "bob: to everyone, no notice"
    )
    send_message(bob, "now you can see it")
    expect(conversation(alice, "bob")).to_have_accessible_description("2 unread now you can see it")
    assert len(alice.evaluate("shownNotifications()")) == 1

    # Clicking the notification opens the conversation it is about.
    alice.evaluate("clickNotification(0)")
    expect(conversation_title(alice, "bob")).to_be_visible()
    expect(message_log(alice).get_by_text("now you can see it", exact=True)).to_be_visible()
    expect(alice).to_have_title("Chat")
