"""The HTTP surface: security headers, log-in throttling, deployment checks."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from tests.conftest import PASSWORD, environment_without_settings

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/accounts/login/", "/accounts/signup/", "/admin/login/"])
def test_every_page_has_a_strict_content_security_policy_and_security_headers(client, path):
    response = client.get(path, follow=True)
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "camera=()" in response["Permissions-Policy"]


@pytest.mark.django_db
def test_api_answers_carry_the_headers_too(client, alice):
    client.force_login(alice)
    response = client.get("/api/conversations/")
    assert response["Content-Type"] == "application/json"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" in response


@pytest.mark.django_db
def test_pages_have_no_inline_scripts(client, alice):
    client.force_login(alice)
    for path in ("/", "/accounts/password_change/"):
        html = client.get(path).content.decode()
        assert "<script>" not in html and " onclick=" not in html
        for tag in html.split("<script")[1:]:
            assert "src=" in tag.split(">")[0], tag[:80]


def login(client: Client, username: str, password: str, ip: str = "203.0.113.7"):
    return client.post(
        "/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=ip
    )


@pytest.mark.django_db
def test_repeated_failed_logins_lock_the_username_out_with_a_clear_message(client, alice, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login(client, "alice", "wrong").status_code == 200
    locked = login(client, "alice", "wrong")
    assert locked.status_code == 429
    assert "Too many failed log-ins" in locked.content.decode()
    # Locked for that username even with the right password, from another address.
    assert login(Client(), "alice", PASSWORD, ip="198.51.100.9").status_code == 429


@pytest.mark.django_db
def test_one_address_failing_for_many_usernames_is_locked_out(client, alice, settings):
    for i in range(settings.AXES_FAILURE_LIMIT):
        login(client, f"guess{i}", "wrong")
    assert login(client, "alice", PASSWORD).status_code == 429
    assert login(Client(), "alice", PASSWORD, ip="198.51.100.9").status_code == 302


@pytest.mark.django_db
def test_lockout_does_not_reveal_whether_a_username_exists(alice, settings):
    answers = []
    for username in ("alice", "nobody-by-this-name"):
        client = Client()
        for i in range(settings.AXES_FAILURE_LIMIT + 1):
            response = login(client, username, "wrong", ip=f"192.0.2.{len(answers) * 10 + i}")
        answers.append((response.status_code, response.content.decode()))
    assert answers[0] == answers[1]
    assert answers[0][0] == 429


@pytest.mark.django_db
def test_a_wrong_password_and_an_unknown_username_get_the_same_answer(client, alice):
    def page(response) -> str:
        html = response.content.decode()
        return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", html)

    wrong = page(login(client, "alice", "wrong"))
    unknown = page(login(Client(), "nobody-by-this-name", "wrong", ip="192.0.2.99"))
    assert "Please enter a correct username and password" in wrong
    assert wrong.replace("alice", "X") == unknown.replace("nobody-by-this-name", "X")


@pytest.mark.django_db
def test_a_successful_login_resets_the_failure_count(client, alice, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        login(client, "alice", "wrong")
    assert login(client, "alice", PASSWORD).status_code == 302
    client.post("/accounts/logout/")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login(client, "alice", "wrong").status_code == 200


def test_check_deploy_reports_nothing_with_https_and_production_settings():
    env = environment_without_settings()
    env.update(
        DJANGO_SETTINGS_MODULE="chatsite.settings",
        DJANGO_HTTPS="1",
        DJANGO_SECRET_KEY="x7$Kq!m2Zp#9vL@4rT&8wY^3nB*6cF(1hJ)5dG-0sA+eU=iO.long-enough-1234567890",
        DJANGO_ALLOWED_HOSTS="chat.example.com",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
