"""axe-core finds no serious or critical accessibility problems on the site's pages.

axe runs through page.evaluate, which the page's Content-Security-Policy does not govern, so
the pages are checked with the policy they really have (no bypass_csp). The vendored copy is
described in tests/browser/vendor/README.md.
"""

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from chat.models import Message
from tests.browser.conftest import (
    PHONE,
    composer,
    connection_status,
    conversation,
    message_log,
    online_person,
    send_message,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(90),
]

AXE_SOURCE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text()
# WCAG 2.0-2.2 A and AA, and axe's best practices.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
RUN_AXE = """async (tags) => {
  const results = await axe.run(document, {
    runOnly: { type: 'tag', values: tags },
    resultTypes: ['violations'],
  });
  return results.violations.map((violation) => ({
    id: violation.id,
    impact: violation.impact,
    help: violation.help,
    nodes: violation.nodes.map((node) => `${node.target.join(' ')}: ${node.failureSummary}`),
  }));
}"""


def serious_violations(page: Page) -> list[dict]:
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(AXE_SOURCE)
    violations = page.evaluate(RUN_AXE, AXE_TAGS)
    return [v for v in violations if v["impact"] in ("serious", "critical")]


def assert_no_serious_violations(page: Page, where: str) -> None:
    found = serious_violations(page)
    report = "\n".join(
        f"- {v['id']} ({v['impact']}): {v['help']}\n    " + "\n    ".join(v["nodes"]) for v in found
    )
    assert not found, f"axe on {where}:\n{report}"


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_login_and_sign_up_pages_have_no_serious_violations(server, pages, color_scheme):
    page = pages.page(server, color_scheme=color_scheme)
    page.goto("/accounts/login/")
    assert_no_serious_violations(page, f"the log-in page ({color_scheme})")

    page.get_by_label("Username").fill("someone")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    assert_no_serious_violations(page, f"the log-in page with an error ({color_scheme})")

    page.goto("/accounts/signup/")
    assert_no_serious_violations(page, f"the sign-up page ({color_scheme})")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_text("This field is required.").first).to_be_visible()
    assert_no_serious_violations(page, f"the sign-up page with errors ({color_scheme})")


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_chat_page_has_no_serious_violations(server, pages, make_user, color_scheme):
    alice_user, bob_user = make_user("alice"), make_user("bob")
    Message.objects.create(sender=bob_user, recipient=None, text="a message to everyone")
    Message.objects.create(sender=bob_user, recipient=alice_user, text="one unread for alice")
    bob = pages.page(server, bob_user)
    send_message(bob, "a live message")
    alice = pages.page(server, alice_user, color_scheme=color_scheme)
    expect(online_person(alice, "bob")).to_be_visible()
    expect(conversation(alice, "bob")).to_have_accessible_description(
        "1 unread one unread for alice"
    )
    send_message(alice, "my own message")
    # Notes on show too: their colours count.
    new = alice.get_by_role("textbox", name="New conversation")
    new.fill("nobody")
    new.press("Enter")
    expect(alice.get_by_text("User nobody was not found")).to_be_visible()
    assert_no_serious_violations(alice, f"the chat page ({color_scheme})")

    phone = pages.page(server, alice_user, viewport=PHONE, color_scheme=color_scheme)
    expect(message_log(phone).get_by_text("my own message", exact=True)).to_be_visible()
    composer(phone).fill("x")
    assert_no_serious_violations(phone, f"the chat page at phone width ({color_scheme})")


def test_chat_page_while_reconnecting_has_no_serious_violations(server, pages, make_user):
    page = pages.page(server, make_user("alice"))
    server.terminate()
    expect(connection_status(page)).to_have_text("Reconnecting…")
    composer(page).fill("unsent")
    composer(page).press("Enter")
    expect(composer(page)).to_have_accessible_description(
        "Not connected — will retry when reconnected"
    )
    assert_no_serious_violations(page, "the chat page while reconnecting")
