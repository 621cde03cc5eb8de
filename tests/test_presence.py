"""The presence store contract, run against both backends."""

import pytest

from chat.presence import MemoryPresenceStore, RedisPresenceStore


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store(request, settings):
    if request.param == "memory":
        return MemoryPresenceStore()
    settings.REDIS_URL = request.getfixturevalue("redis_url")
    return RedisPresenceStore(prefix="test:presence")


async def test_first_connection_brings_a_user_online(store):
    assert await store.connect(user_id=1, username="alice", channel_name="c1") is True
    assert await store.is_online(user_id=1) is True
    assert await store.online_usernames() == ["alice"]


async def test_second_connection_changes_nothing(store):
    await store.connect(user_id=1, username="alice", channel_name="c1")
    assert await store.connect(user_id=1, username="alice", channel_name="c2") is False
    assert await store.disconnect(user_id=1, channel_name="c2") is False
    assert await store.is_online(user_id=1) is True


async def test_last_disconnection_takes_a_user_offline(store):
    await store.connect(user_id=1, username="alice", channel_name="c1")
    await store.connect(user_id=1, username="alice", channel_name="c2")
    await store.disconnect(user_id=1, channel_name="c1")
    assert await store.disconnect(user_id=1, channel_name="c2") is True
    assert await store.is_online(user_id=1) is False
    assert await store.online_usernames() == []


async def test_disconnecting_an_unknown_connection_is_harmless(store):
    assert await store.disconnect(user_id=9, channel_name="never") is False
    await store.connect(user_id=1, username="alice", channel_name="c1")
    assert await store.disconnect(user_id=1, channel_name="other") is False
    assert await store.is_online(user_id=1) is True


async def test_online_usernames_are_sorted_and_unicode_safe(store):
    for user_id, name in enumerate(["인혜", "bob", "a.b+c@d-e_f"], start=1):
        await store.connect(user_id=user_id, username=name, channel_name=f"c{user_id}")
    assert await store.online_usernames() == sorted(["인혜", "bob", "a.b+c@d-e_f"])
