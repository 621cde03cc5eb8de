"""GET /healthz checks the database and the channel layer with real round trips."""

import socket

import pytest
from django.db import OperationalError
from django.test import AsyncClient

from chat import health
from chatsite.settings import redis_channel_layer

pytestmark = pytest.mark.django_db(transaction=True)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_healthz_is_ok_when_database_and_channel_layer_answer():
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "channel_layer": "ok"},
    }


async def test_healthz_is_503_naming_the_channel_layer_when_redis_is_down(settings):
    settings.CHANNEL_LAYERS = {
        "default": redis_channel_layer(f"redis://127.0.0.1:{closed_port()}/0")
    }
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["failed"] == ["channel_layer"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["channel_layer"] != "ok"


async def test_healthz_is_503_naming_the_database_when_it_fails(monkeypatch):
    def broken() -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(health, "_database_ping", broken)
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["database"]
    assert "connection refused" in response.json()["checks"]["database"]


async def test_healthz_needs_no_login_and_says_nothing_secret():
    response = await AsyncClient().get("/healthz")
    assert set(response.json()) == {"status", "checks"}
