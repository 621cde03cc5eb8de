"""Accounts: sign-up, log-in, log-out, password change, and the chat page behind log-in."""

from typing import Any

import pytest
from django.contrib.auth import SESSION_KEY, get_user_model
from django.test import Client

from tests.conftest import PASSWORD

SIGNUP_URL = "/accounts/signup/"
LOGIN_URL = "/accounts/login/"
LOGOUT_URL = "/accounts/logout/"
PASSWORD_CHANGE_URL = "/accounts/password_change/"
NEW_PASSWORD = "a different horse battery staple"

pytestmark = pytest.mark.django_db


def sign_up(client: Any, username: str, password: str = PASSWORD, confirm: str | None = None):
    return client.post(
        SIGNUP_URL,
        {"username": username, "password1": password, "password2": confirm or password},
    )


def logged_in_user_id(client: Any) -> str | None:
    return client.session.get(SESSION_KEY)


def usernames() -> list[str]:
    return list(get_user_model().objects.order_by("id").values_list("username", flat=True))


def field_errors(response: Any, field: str) -> list[str]:
    return response.context["form"].errors.get(field, [])


@pytest.fixture
def logged_in(client: Any, alice: Any) -> Any:
    client.force_login(alice)
    return client


# Sign-up


def test_signup_page_shows_the_three_fields(client):
    response = client.get(SIGNUP_URL)
    assert response.status_code == 200
    for name in ("username", "password1", "password2"):
        assert f'name="{name}"' in response.text


def test_signup_creates_the_user_logs_them_in_and_redirects_to_the_chat(client):
    response = sign_up(client, "dave")
    assert response.status_code == 302
    assert response["Location"] == "/"
    dave = get_user_model().objects.get(username="dave")
    assert dave.check_password(PASSWORD)
    assert logged_in_user_id(client) == str(dave.pk)
    assert client.get("/").status_code == 200


@pytest.mark.parametrize("username", ["ALL", "all", "All", "aLL", " ALL ", "\uff21\uff2c\uff2c"])
def test_signup_refuses_the_reserved_username_all_in_any_case(client, username):
    response = sign_up(client, username)
    assert response.status_code == 200
    errors = field_errors(response, "username")
    assert any("reserved" in error for error in errors), errors
    assert "reserved" in response.text
    assert usernames() == []
    assert logged_in_user_id(client) is None


@pytest.mark.parametrize(
    ("username", "password"),
    [("dave", "123"), ("dave", "password"), ("dave", "12345678901"), ("davidson", "davidson1")],
    ids=["too-short", "too-common", "all-digits", "like-the-username"],
)
def test_signup_applies_djangos_password_validators(client, username, password):
    response = sign_up(client, username, password)
    assert response.status_code == 200
    assert field_errors(response, "password2")
    assert usernames() == []


def test_signup_refuses_passwords_that_do_not_match(client):
    response = sign_up(client, "dave", PASSWORD, confirm=NEW_PASSWORD)
    assert response.status_code == 200
    assert field_errors(response, "password2")
    assert usernames() == []


@pytest.mark.parametrize("username", ["인혜", "a.b+c@d-e_f", "allison", "ALL_of_us"])
def test_signup_accepts_unicode_and_punctuated_usernames(client, username):
    response = sign_up(client, username)
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert usernames() == [username]


def test_signup_refuses_a_username_that_is_taken(client, alice):
    response = sign_up(client, "alice")
    assert response.status_code == 200
    assert field_errors(response, "username")
    assert usernames() == ["alice"]


@pytest.mark.parametrize("username", ["Alice", "ALICE", "aLiCe"])
def test_signup_refuses_a_username_differing_only_in_case(client, alice, username):
    response = sign_up(client, username)
    assert response.status_code == 200
    assert field_errors(response, "username")
    assert usernames() == ["alice"]


def test_signup_refuses_a_username_with_characters_django_does_not_allow(client):
    response = sign_up(client, "has space")
    assert response.status_code == 200
    assert field_errors(response, "username")
    assert usernames() == []


# Log-in and log-out


def test_login_page_shows_the_form(client):
    response = client.get(LOGIN_URL)
    assert response.status_code == 200
    assert 'name="username"' in response.text
    assert 'name="password"' in response.text
    assert 'name="csrfmiddlewaretoken"' in response.text


def test_login_with_the_right_password_redirects_to_the_chat(client, alice):
    response = client.post(LOGIN_URL, {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert logged_in_user_id(client) == str(alice.pk)


def test_login_with_a_wrong_password_shows_the_form_again(client, alice):
    response = client.post(LOGIN_URL, {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    assert response.context["form"].non_field_errors()
    assert logged_in_user_id(client) is None


def test_login_works_for_a_unicode_username(client, make_user):
    user = make_user("인혜")
    response = client.post(LOGIN_URL, {"username": "인혜", "password": PASSWORD})
    assert response.status_code == 302
    assert logged_in_user_id(client) == str(user.pk)


def test_a_deactivated_user_cannot_log_in(client, make_user):
    make_user("dave", is_active=False)
    response = client.post(LOGIN_URL, {"username": "dave", "password": PASSWORD})
    assert response.status_code == 200
    assert logged_in_user_id(client) is None


def test_logout_by_post_ends_the_session(logged_in):
    response = logged_in.post(LOGOUT_URL)
    assert response.status_code == 302
    assert logged_in_user_id(logged_in) is None
    assert logged_in.get("/")["Location"] == "/accounts/login/?next=/"


def test_logout_by_get_is_refused_and_keeps_the_session(logged_in, alice):
    assert logged_in.get(LOGOUT_URL).status_code == 405
    assert logged_in_user_id(logged_in) == str(alice.pk)


def test_logout_checks_the_csrf_token(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(LOGOUT_URL).status_code == 403
    assert client.session.get(SESSION_KEY) == str(alice.pk)


# Password change


def test_password_change_page_shows_the_form_when_logged_in(logged_in):
    response = logged_in.get(PASSWORD_CHANGE_URL)
    assert response.status_code == 200
    for name in ("old_password", "new_password1", "new_password2"):
        assert f'name="{name}"' in response.text


def test_password_change_page_sends_anonymous_visitors_to_log_in(client):
    response = client.get(PASSWORD_CHANGE_URL)
    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN_URL}?next={PASSWORD_CHANGE_URL}"


def test_password_change_sets_the_new_password_and_keeps_the_session(logged_in, alice):
    response = logged_in.post(
        PASSWORD_CHANGE_URL,
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert response["Location"] == "/accounts/password_change/done/"
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)
    assert logged_in_user_id(logged_in) == str(alice.pk)
    assert logged_in.get(response["Location"]).status_code == 200


def test_password_change_refuses_a_wrong_old_password(logged_in, alice):
    response = logged_in.post(
        PASSWORD_CHANGE_URL,
        {"old_password": "wrong", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 200
    assert field_errors(response, "old_password")
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


def test_password_change_applies_djangos_password_validators(logged_in, alice):
    response = logged_in.post(
        PASSWORD_CHANGE_URL,
        {"old_password": PASSWORD, "new_password1": "123", "new_password2": "123"},
    )
    assert response.status_code == 200
    assert field_errors(response, "new_password2")
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


# The chat page


def test_the_chat_page_sends_anonymous_visitors_to_log_in(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_the_chat_page_is_served_to_a_logged_in_user(logged_in):
    response = logged_in.get("/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
