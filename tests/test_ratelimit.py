"""The rate-limit decision, then the limiter contract run against both backends."""

import asyncio
from collections.abc import Iterator

import pytest

from chat import ratelimit
from chat.ratelimit import (
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    get_rate_limiter,
    rate_limit_decide,
    reset_rate_limiter,
)
from chat.redis import get_redis


@pytest.fixture(autouse=True)
def fresh_rate_limiter() -> Iterator[None]:
    reset_rate_limiter()
    yield
    reset_rate_limiter()


def decide_many(hits: int, *, now: float, count: int, seconds: float) -> tuple[list[bool], float]:
    """Send `hits` messages at one instant from a fresh state; (allowed each, final tat)."""
    tat = None
    results = []
    for _ in range(hits):
        allowed, tat, _retry_after = rate_limit_decide(
            tat=tat, now=now, count=count, seconds=seconds
        )
        results.append(allowed)
    assert tat is not None
    return results, tat


# The pure decision.


def test_a_burst_of_count_is_allowed_then_refused() -> None:
    results, _ = decide_many(4, now=100.0, count=3, seconds=1)
    assert results == [True, True, True, False]


@pytest.mark.parametrize(("count", "seconds"), [(30, 10), (9, 1), (7, 6), (100, 3600)])
def test_the_whole_burst_is_allowed_despite_float_rounding(count: int, seconds: int) -> None:
    results, _ = decide_many(count + 1, now=1_700_000_000.0, count=count, seconds=seconds)
    assert results == [True] * count + [False]


def test_one_more_is_allowed_after_one_emission_interval() -> None:
    _, tat = decide_many(3, now=100.0, count=3, seconds=1)
    allowed, tat, _ = rate_limit_decide(tat=tat, now=100.0 + 1 / 3, count=3, seconds=1)
    assert allowed is True
    allowed, _, _ = rate_limit_decide(tat=tat, now=100.0 + 1 / 3, count=3, seconds=1)
    assert allowed is False


def test_retry_after_is_the_wait_until_the_next_send() -> None:
    _, tat = decide_many(3, now=100.0, count=3, seconds=1)
    allowed, _, retry_after = rate_limit_decide(tat=tat, now=100.1, count=3, seconds=1)
    assert allowed is False
    assert retry_after == pytest.approx(1 / 3 - 0.1)
    allowed, _, _ = rate_limit_decide(tat=tat, now=100.1 + retry_after, count=3, seconds=1)
    assert allowed is True


def test_an_allowed_send_has_no_retry_after() -> None:
    assert rate_limit_decide(tat=None, now=5.0, count=1, seconds=10) == (True, 15.0, 0.0)


def test_denied_sends_do_not_change_the_state() -> None:
    _, tat = decide_many(2, now=100.0, count=2, seconds=1)
    for now in (100.0, 100.2, 100.4):
        allowed, new_tat, retry_after = rate_limit_decide(tat=tat, now=now, count=2, seconds=1)
        assert (allowed, new_tat) == (False, tat)
        assert retry_after == pytest.approx(100.5 - now)


def test_a_long_idle_user_gets_a_full_burst_not_more() -> None:
    _, tat = decide_many(2, now=100.0, count=2, seconds=1)
    results, _ = decide_many(3, now=10_000.0, count=2, seconds=1)
    assert results == [True, True, False]
    allowed, new_tat, _ = rate_limit_decide(tat=tat, now=10_000.0, count=2, seconds=1)
    assert (allowed, new_tat) == (True, 10_000.5)


# The limiter contract.


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def limiter(request: pytest.FixtureRequest, settings) -> RateLimiter:
    settings.CHAT_RATE_LIMIT = (3, 1)
    if request.param == "memory":
        return MemoryRateLimiter()
    settings.REDIS_URL = request.getfixturevalue("redis_url")
    return RedisRateLimiter(prefix="test:rate")


async def hits(limiter: RateLimiter, times: int, *, user_id: int = 1) -> list[float]:
    return [await limiter.hit(user_id=user_id) for _ in range(times)]


async def test_a_burst_of_count_is_allowed_then_refused_with_retry_after(limiter) -> None:
    results = await hits(limiter, 4)
    assert results[:3] == [0.0, 0.0, 0.0]
    assert results[3] == pytest.approx(1 / 3, abs=0.05)
    assert isinstance(results[3], float)


async def test_users_are_limited_independently(limiter) -> None:
    await hits(limiter, 3, user_id=1)
    assert await limiter.hit(user_id=1) > 0
    assert await hits(limiter, 3, user_id=2) == [0.0, 0.0, 0.0]
    assert await limiter.hit(user_id=2) > 0


async def test_one_more_is_allowed_after_waiting_retry_after(limiter, settings) -> None:
    settings.CHAT_RATE_LIMIT = (2, 0.2)
    assert await hits(limiter, 2) == [0.0, 0.0]
    retry_after = await limiter.hit(user_id=1)
    assert 0 < retry_after <= 0.1
    await asyncio.sleep(retry_after + 0.01)
    assert await limiter.hit(user_id=1) == 0.0
    assert await limiter.hit(user_id=1) > 0


async def test_refused_hits_do_not_use_up_the_budget(limiter, settings) -> None:
    settings.CHAT_RATE_LIMIT = (1, 0.1)
    assert await limiter.hit(user_id=1) == 0.0
    refused = await hits(limiter, 5)
    assert all(retry_after > 0 for retry_after in refused)
    # Each refusal names a shorter wait: they all count down to the same instant.
    assert refused == sorted(refused, reverse=True)
    await asyncio.sleep(refused[-1] + 0.01)
    assert await limiter.hit(user_id=1) == 0.0


async def test_off_allows_everything_and_stores_nothing(limiter, settings) -> None:
    settings.CHAT_RATE_LIMIT = None
    assert await hits(limiter, 50) == [0.0] * 50
    settings.CHAT_RATE_LIMIT = (3, 1)
    assert (await hits(limiter, 4))[:3] == [0.0, 0.0, 0.0]


# Backend specifics.


async def test_memory_limiter_forgets_users_whose_budget_is_full_again(settings) -> None:
    settings.CHAT_RATE_LIMIT = (1, 0.01)
    limiter = MemoryRateLimiter(max_entries=2)
    await limiter.hit(user_id=1)
    await limiter.hit(user_id=2)
    await asyncio.sleep(0.02)
    await limiter.hit(user_id=3)
    await limiter.hit(user_id=4)
    assert set(limiter._tats) == {3, 4}


@pytest.mark.redis
async def test_redis_limiters_share_one_budget_per_user(settings, redis_url: str) -> None:
    settings.REDIS_URL = redis_url
    settings.CHAT_RATE_LIMIT = (3, 1)
    first, second = RedisRateLimiter(prefix="test:rate"), RedisRateLimiter(prefix="test:rate")
    assert await first.hit(user_id=1) == 0.0
    assert await second.hit(user_id=1) == 0.0
    assert await first.hit(user_id=1) == 0.0
    assert await second.hit(user_id=1) > 0
    assert await first.hit(user_id=1) > 0


@pytest.mark.redis
async def test_redis_keys_expire_when_the_budget_is_full_again(settings, redis_url: str) -> None:
    settings.REDIS_URL = redis_url
    settings.CHAT_RATE_LIMIT = (3, 1)
    await RedisRateLimiter(prefix="test:rate").hit(user_id=7)
    assert 0 < await get_redis().pttl("test:rate:7") <= 334


def test_get_rate_limiter_follows_redis_url(settings) -> None:
    settings.REDIS_URL = ""
    limiter = get_rate_limiter()
    assert isinstance(limiter, MemoryRateLimiter)
    assert get_rate_limiter() is limiter
    settings.REDIS_URL = "redis://127.0.0.1:6379/15"
    assert get_rate_limiter() is limiter
    reset_rate_limiter()
    assert isinstance(get_rate_limiter(), RedisRateLimiter)


@pytest.mark.redis
async def test_redis_limiter_loads_its_script_when_redis_lacks_it(
    settings, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.REDIS_URL = redis_url
    settings.CHAT_RATE_LIMIT = (1, 1)
    # A SHA1 Redis has never seen: EVALSHA fails with NOSCRIPT, then the script is sent.
    monkeypatch.setattr(ratelimit._HIT_SCRIPT, "sha", "0" * 40)
    limiter = RedisRateLimiter(prefix="test:rate")
    assert await limiter.hit(user_id=1) == 0.0
    assert await limiter.hit(user_id=1) == pytest.approx(1, abs=0.05)
