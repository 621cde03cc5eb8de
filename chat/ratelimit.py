"""Per-user message rate limit (CHAT_RATE_LIMIT), as GCRA: a token bucket kept in one timestamp.

A pure decision function, then one limiter interface with two backends: Redis when REDIS_URL
is set (one budget shared by every process and machine), memory otherwise (one process). Both
pass the same contract tests.
"""

import time
from typing import Protocol

from django.conf import settings

from .redis import LuaScript

# Summing seconds/count `count` times can overshoot `seconds` by a few ulps, which would refuse
# the last message of a burst sent in one instant; a microsecond of slack is unobservable.
_TOLERANCE = 1e-6


def rate_limit_decide(
    *, tat: float | None, now: float, count: int, seconds: float
) -> tuple[bool, float, float]:
    """GCRA: (allowed, new theoretical arrival time, seconds until the next send is allowed)."""
    interval = seconds / count
    new_tat = max(tat if tat is not None else now, now) + interval
    # A burst of `count` is allowed: the bucket is full while new_tat stays within `seconds`.
    retry_after = new_tat - seconds - now
    if retry_after > _TOLERANCE:
        return False, tat if tat is not None else now, retry_after
    return True, new_tat, 0.0


class RateLimiter(Protocol):
    async def hit(self, *, user_id: int) -> float:
        """Count one message; 0.0 when allowed, else the seconds to wait (nothing counted)."""
        ...


class MemoryRateLimiter:
    """A dict of user id to theoretical arrival time, on this process's monotonic clock."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._tats: dict[int, float] = {}
        self._max_entries = max_entries
        self._prune_at = max_entries

    async def hit(self, *, user_id: int) -> float:
        limit = settings.CHAT_RATE_LIMIT
        if limit is None:
            return 0.0
        count, seconds = limit
        now = time.monotonic()
        allowed, new_tat, retry_after = rate_limit_decide(
            tat=self._tats.get(user_id), now=now, count=count, seconds=seconds
        )
        if not allowed:
            return retry_after
        self._tats[user_id] = new_tat
        if len(self._tats) > self._prune_at:
            self._prune(now)
        return 0.0

    def _prune(self, now: float) -> None:
        """Forget users whose bucket has refilled: a missing entry means the same."""
        self._tats = {user_id: tat for user_id, tat in self._tats.items() if tat > now}
        # Doubling the threshold keeps pruning amortised O(1) when most users are active.
        self._prune_at = max(self._max_entries, 2 * len(self._tats))


# KEYS[1] the user's key; ARGV count, seconds, tolerance. Returns 0 when allowed, else the
# microseconds to wait (an integer: Redis truncates Lua numbers in replies). Redis's own clock,
# so every machine agrees; the key expires when the bucket is full again.
_HIT = """
local count = tonumber(ARGV[1])
local seconds = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + seconds / count
local retry_after = new_tat - seconds - now
if retry_after > tolerance then
  return math.ceil(retry_after * 1000000)
end
local ttl_ms = math.max(1, math.ceil((new_tat - now) * 1000))
redis.call('SET', KEYS[1], string.format('%.17g', new_tat), 'PX', ttl_ms)
return 0
"""
_HIT_SCRIPT = LuaScript(_HIT)


class RedisRateLimiter:
    """One key per user holding the theoretical arrival time, updated by one Lua script."""

    def __init__(self, prefix: str = "chat:rate") -> None:
        self._prefix = prefix

    def _key(self, user_id: int) -> str:
        return f"{self._prefix}:{int(user_id)}"

    async def hit(self, *, user_id: int) -> float:
        limit = settings.CHAT_RATE_LIMIT
        if limit is None:
            return 0.0
        count, seconds = limit
        args = [str(count), repr(float(seconds)), repr(_TOLERANCE)]
        micros = await _HIT_SCRIPT([self._key(user_id)], args)
        return int(micros) / 1_000_000


_limiter: RateLimiter | None = None


def get_rate_limiter() -> RateLimiter:
    """The process's limiter, chosen by REDIS_URL."""
    global _limiter
    if _limiter is None:
        _limiter = RedisRateLimiter() if settings.REDIS_URL else MemoryRateLimiter()
    return _limiter


def reset_rate_limiter() -> None:
    """Forget the chosen limiter (tests switch settings)."""
    global _limiter
    _limiter = None
