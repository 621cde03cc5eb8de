"""Sign-up, log-in and log-out through the real forms, in Chromium."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import connection_status

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(60),
]

PASSWORD = "a long and unusual passphrase 42"


def test_sign_up_log_out_and_log_in_again(server, pages):
    page = pages.page(server)

    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.get_by_role("link", name="Sign up").click()

    expect(page.get_by_role("heading", name="Sign up")).to_be_visible()
    page.get_by_label("Username").fill("인혜")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()

    expect(page).to_have_url(f"{server.url}/")
    expect(connection_status(page)).to_have_text("Connected")
    expect(page.get_by_role("navigation", name="Account")).to_contain_text("인혜")

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))

    page.get_by_label("Username").fill("인혜")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("enter a correct username and password")

    page.get_by_label("Username").fill("인혜")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{server.url}/")
    expect(connection_status(page)).to_have_text("Connected")


def test_sign_up_refuses_a_weak_password_and_says_why(server, pages):
    page = pages.page(server)
    page.goto("/accounts/signup/")

    page.get_by_label("Username").fill("dave")
    page.get_by_label("Password", exact=True).fill("12345678")
    page.get_by_label("Password confirmation").fill("12345678")
    page.get_by_role("button", name="Sign up").click()

    expect(page.get_by_role("heading", name="Sign up")).to_be_visible()
    expect(page.get_by_text("This password is too common.")).to_be_visible()
    expect(page.get_by_label("Username")).to_have_value("dave")


def test_logging_out_in_one_tab_signs_the_other_tab_out(server, pages, alice):
    first = pages.page(server, alice)
    second = pages.new_page(first.context, "alice, second tab")
    second.goto("/")
    expect(connection_status(second)).to_have_text("Connected")

    first.get_by_role("button", name="Log out").click()

    expect(connection_status(second)).to_have_text("Signed out")
    expect(second.get_by_role("alert")).to_contain_text("You have been signed out.")
    expect(second.get_by_role("link", name="Log in")).to_be_visible()


def style(locator, name):
    return locator.evaluate("(el, name) => getComputedStyle(el)[name]", name)


def test_the_admin_looks_like_the_rest_of_the_site(server, pages, make_user):
    page = pages.page(server, make_user("root", is_staff=True, is_superuser=True))
    bar = page.get_by_role("banner")
    brand = bar.get_by_role("link", name="Chat", exact=True)
    site_look = [
        style(bar, "backgroundColor"),
        style(brand, "color"),
        style(page.locator("body"), "fontFamily"),
    ]

    page.get_by_role("link", name="Admin").click()

    brand = page.get_by_role("link", name="Chat admin")
    expect(brand).to_be_visible()
    admin_look = [
        style(page.locator("#header"), "backgroundColor"),
        style(brand, "color"),
        style(page.locator("body"), "fontFamily"),
    ]
    assert admin_look == site_look
