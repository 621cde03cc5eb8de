"""Settings come from the environment; a bad value stops start-up and names the fix."""

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from chatsite.settings import parse_rate_limit
from tests.conftest import environment_without_settings

REPO = Path(__file__).resolve().parent.parent


def load_settings(**env: str) -> subprocess.CompletedProcess:
    """Import the settings in a fresh interpreter with exactly these chat variables."""
    clean = environment_without_settings()
    code = (
        "import chatsite.settings as s; "
        "print(s.DEBUG, s.ALLOWED_HOSTS, s.CHAT_MAX_MESSAGE_LENGTH, s.CHAT_RATE_LIMIT, "
        "s.CHANNEL_LAYERS['default']['BACKEND'], s.DATABASES['default']['ENGINE'])"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("30/10", (30, 10)), ("1/1", (1, 1)), ("0", None), (" 5/60 ", (5, 60)), ("0/10", None)],
)
def test_rate_limit_parses_n_per_s_or_off(raw, expected):
    assert parse_rate_limit(raw) == expected


@pytest.mark.parametrize("raw", ["", "30", "30/0", "a/b", "-1/10", "3.5/10", "10/"])
def test_rate_limit_refuses_anything_else_and_names_the_setting(raw):
    with pytest.raises(ImproperlyConfigured, match="CHAT_RATE_LIMIT"):
        parse_rate_limit(raw)


def test_secret_key_is_required_when_debug_is_off():
    result = load_settings()
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_defaults_are_the_contracts():
    result = load_settings(DJANGO_SECRET_KEY="k" * 50)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0] == (
        "False ['localhost', '127.0.0.1'] 4000 (30, 10) "
        "channels.layers.InMemoryChannelLayer django.db.backends.sqlite3"
    )


def test_environment_selects_redis_postgres_and_limits():
    result = load_settings(
        DJANGO_DEBUG="1",
        DJANGO_ALLOWED_HOSTS="chat.example.com, .example.org",
        CHAT_MAX_MESSAGE_LENGTH="100",
        CHAT_RATE_LIMIT="0",
        REDIS_URL="redis://127.0.0.1:6379/3",
        DATABASE_URL="postgres://u@127.0.0.1:5432/chat",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0] == (
        "True ['chat.example.com', '.example.org'] 100 None "
        "channels_redis.pubsub.RedisPubSubChannelLayer chat.postgresql"
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CHAT_MAX_MESSAGE_LENGTH", "lots"),
        ("CHAT_MAX_SOCKETS_PER_USER", "0"),
        ("DJANGO_DEBUG", "maybe"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(name, value):
    result = load_settings(DJANGO_SECRET_KEY="k" * 50, **{name: value})
    assert result.returncode != 0
    assert name in result.stderr


def test_frame_rate_limit_is_named_in_its_error():
    with pytest.raises(ImproperlyConfigured, match="CHAT_FRAME_RATE_LIMIT"):
        parse_rate_limit("fast", name="CHAT_FRAME_RATE_LIMIT")


def test_deployments_on_one_redis_server_get_their_own_pubsub_channels():
    from chatsite.settings import redis_channel_layer

    first = redis_channel_layer("redis://127.0.0.1:6379/1")["CONFIG"]["prefix"]
    second = redis_channel_layer("rediss://:secret@127.0.0.1:6380/2")["CONFIG"]["prefix"]
    assert first != second
    assert redis_channel_layer("redis://127.0.0.1:6379")["CONFIG"]["prefix"] == "chat0:"
