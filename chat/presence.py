"""Who is online: a user is online while they hold at least one live connection.

Every connection has an expiry that its process renews with heartbeats. A process that dies
(SIGKILL, power loss) stops renewing, its connections expire, and the next sweep by any live
process takes their users offline: nothing needs every process to be alive or to shut down
cleanly. One store interface, two backends: Redis when REDIS_URL is set (shared by every
process), memory otherwise (one process). Both pass the same contract tests.
"""

import json
import time
from typing import Protocol

from django.conf import settings

from .redis import LuaScript, get_redis

# A process renews its connections every HEARTBEAT_SECONDS; a connection not renewed for
# TTL_SECONDS is dead. With sweeps every SWEEP_SECONDS and announcements coalesced for 1 s,
# a crashed process's users are reported offline within TTL + SWEEP + 1 = 36 s (< 45 s).
HEARTBEAT_SECONDS = 10.0
TTL_SECONDS = 30.0
SWEEP_SECONDS = 5.0


class PresenceStore(Protocol):
    async def connect(self, *, user_id: int, username: str, channel_name: str) -> int:
        """Record a live connection; the user's live connections now (1: they just came online)."""
        ...

    async def connect_listing(
        self, *, connections: list[tuple[int, str, str]]
    ) -> tuple[list[int], list[str]]:
        """connect each (user_id, username, channel_name) in order, then online_usernames.

        One step for all of them: each one's count as connect returns it, and who is online
        (these users among them).
        """
        ...

    async def disconnect(self, *, user_id: int, channel_name: str) -> bool:
        """Forget a connection; True when it was the user's last live one."""
        ...

    async def heartbeat(self, *, connections: list[tuple[int, str, str]]) -> list[int]:
        """Renew (user_id, username, channel_name) connections; the users that were offline."""
        ...

    async def sweep(self) -> list[int]:
        """Take users whose connections all expired offline; each is returned to one caller."""
        ...

    async def online_ids(self, *, user_ids: list[int]) -> set[int]:
        """Which of these users are online."""
        ...

    async def is_online(self, *, user_id: int) -> bool: ...

    async def online_usernames(self) -> list[str]: ...

    async def usernames(self, *, user_ids: list[int]) -> dict[int, str]: ...


class MemoryPresenceStore:
    """One process's presence: channel expiry per user, on the monotonic clock."""

    def __init__(self, *, ttl: float = TTL_SECONDS) -> None:
        self._ttl = ttl
        self._connections: dict[int, dict[str, float]] = {}
        self._usernames: dict[int, str] = {}

    def _live(self, user_id: int, now: float) -> bool:
        return any(expires > now for expires in self._connections.get(user_id, {}).values())

    async def connect(self, *, user_id: int, username: str, channel_name: str) -> int:
        now = time.monotonic()
        channels = self._connections.setdefault(user_id, {})
        channels[channel_name] = now + self._ttl
        self._usernames[user_id] = username
        return sum(1 for expires in channels.values() if expires > now)

    async def connect_listing(
        self, *, connections: list[tuple[int, str, str]]
    ) -> tuple[list[int], list[str]]:
        counts = [
            await self.connect(user_id=user_id, username=username, channel_name=channel_name)
            for user_id, username, channel_name in connections
        ]
        return counts, await self.online_usernames()

    async def disconnect(self, *, user_id: int, channel_name: str) -> bool:
        channels = self._connections.get(user_id)
        if channels is None or channels.pop(channel_name, None) is None:
            return False
        if self._live(user_id, time.monotonic()):
            return False
        del self._connections[user_id]
        return True

    async def heartbeat(self, *, connections: list[tuple[int, str, str]]) -> list[int]:
        came_online = []
        now = time.monotonic()
        for user_id, username, channel_name in connections:
            if not self._live(user_id, now):
                came_online.append(user_id)
            await self.connect(user_id=user_id, username=username, channel_name=channel_name)
        return came_online

    async def sweep(self) -> list[int]:
        now = time.monotonic()
        gone = [user_id for user_id in self._connections if not self._live(user_id, now)]
        for user_id in gone:
            del self._connections[user_id]
        return gone

    async def online_ids(self, *, user_ids: list[int]) -> set[int]:
        now = time.monotonic()
        return {user_id for user_id in user_ids if self._live(user_id, now)}

    async def is_online(self, *, user_id: int) -> bool:
        return self._live(user_id, time.monotonic())

    async def online_usernames(self) -> list[str]:
        now = time.monotonic()
        return sorted(self._usernames[u] for u in self._connections if self._live(u, now))

    async def usernames(self, *, user_ids: list[int]) -> dict[int, str]:
        return {u: self._usernames[u] for u in user_ids if u in self._usernames}


# Redis keys: {prefix}:conns:{user_id} is a sorted set of channel names scored by expiry;
# {prefix}:online a sorted set of user ids scored by their latest connection's expiry;
# {prefix}:names a hash of user id to username. Times come from Redis's own clock, so
# processes on several machines agree. Each script is one atomic round trip.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# KEYS: the user's conns, online, names; ARGV: channel name, user id, username, ttl.
_CONNECT_STEP = """
local ttl = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZADD', KEYS[2], 'GT', now + ttl, ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
local count = redis.call('ZCARD', KEYS[1])
"""

# The online users' names as one JSON string (one value to parse instead of one per user),
# from the keys online_key and names_key.
_ONLINE_NAMES_STEP = """
local ids = redis.call('ZRANGEBYSCORE', online_key, '(' .. now, '+inf')
local names = {}
for start = 1, #ids, 1000 do
  local found = redis.call('HMGET', names_key, unpack(ids, start, math.min(start + 999, #ids)))
  for _, name in ipairs(found) do
    if name then table.insert(names, name) end
  end
end
local names_json = #names == 0 and '[]' or cjson.encode(names)
"""

_CONNECT = LuaScript(_NOW + _CONNECT_STEP + "return count")

# Handshakes: their connections (_CONNECT_STEP for each), then who is online, in one round
# trip. KEYS: online, names, then one conns key per connection; ARGV: ttl, then per
# connection its channel name, user id and username.
_CONNECT_LISTING = LuaScript(
    _NOW
    + """
local online_key, names_key = KEYS[1], KEYS[2]
local ttl = tonumber(ARGV[1])
local counts = {}
for i = 3, #KEYS do
  local a = 2 + (i - 3) * 3
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  redis.call('ZADD', KEYS[i], now + ttl, ARGV[a])
  redis.call('ZADD', online_key, 'GT', now + ttl, ARGV[a + 1])
  redis.call('HSET', names_key, ARGV[a + 1], ARGV[a + 2])
  counts[#counts + 1] = redis.call('ZCARD', KEYS[i])
end
"""
    + _ONLINE_NAMES_STEP
    + "return {counts, names_json}"
)

_DISCONNECT = LuaScript(
    _NOW
    + """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #newest > 0 then
  redis.call('ZADD', KEYS[2], newest[2], ARGV[2])
  return 0
end
redis.call('DEL', KEYS[1])
return redis.call('ZREM', KEYS[2], ARGV[2])
"""
)

# KEYS: online, names, then one conns key per connection; ARGV: ttl, then per connection
# user id, username, channel name.
_HEARTBEAT = LuaScript(
    _NOW
    + """
local ttl = tonumber(ARGV[1])
local came = {}
for i = 3, #KEYS do
  local base = (i - 3) * 3 + 1
  local user_id, username, channel = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  local previous = tonumber(redis.call('ZSCORE', KEYS[1], user_id) or '0')
  redis.call('ZADD', KEYS[i], now + ttl, channel)
  redis.call('ZADD', KEYS[1], 'GT', now + ttl, user_id)
  redis.call('HSET', KEYS[2], user_id, username)
  if previous <= now then table.insert(came, user_id) end
end
return came
"""
)

_SWEEP = LuaScript(
    _NOW
    + """
local gone = {}
for _, user_id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  redis.call('ZREM', KEYS[1], user_id)
  redis.call('DEL', ARGV[1] .. user_id)
  table.insert(gone, user_id)
end
return gone
"""
)

_ONLINE_IDS = LuaScript(
    _NOW
    + """
local live = {}
for _, user_id in ipairs(ARGV) do
  if tonumber(redis.call('ZSCORE', KEYS[1], user_id) or '0') > now then
    table.insert(live, user_id)
  end
end
return live
"""
)

_ONLINE_ALL = LuaScript(
    _NOW
    + "local online_key, names_key = KEYS[1], KEYS[2]"
    + _ONLINE_NAMES_STEP
    + "return names_json"
)

# Connections per script call: a heartbeat or a batch of handshakes of any size stays a
# bounded amount of work for Redis at a time.
_CHUNK = 500


class RedisPresenceStore:
    """Presence shared by every process through Redis."""

    def __init__(self, *, prefix: str = "chat:presence", ttl: float = TTL_SECONDS) -> None:
        self._prefix = prefix
        self._ttl = ttl
        self._online_key = f"{prefix}:online"
        self._names_key = f"{prefix}:names"
        self._conns_prefix = f"{prefix}:conns:"

    @property
    def online_key(self) -> str:
        """The sorted set of online user ids, scored by expiry (for scripts elsewhere)."""
        return self._online_key

    def connections_key(self, user_id: int) -> str:
        """The sorted set of one user's channel names, scored by expiry."""
        return f"{self._conns_prefix}{int(user_id)}"

    async def connect(self, *, user_id: int, username: str, channel_name: str) -> int:
        keys = [self.connections_key(user_id), self._online_key, self._names_key]
        args = [channel_name, int(user_id), username, self._ttl]
        return int(await _CONNECT(keys, args))

    async def connect_listing(
        self, *, connections: list[tuple[int, str, str]]
    ) -> tuple[list[int], list[str]]:
        counts: list[int] = []
        names = "[]"
        # At least one call, so that a list is read even for no connections.
        for start in range(0, max(len(connections), 1), _CHUNK):
            chunk = connections[start : start + _CHUNK]
            keys = [self._online_key, self._names_key] + [
                self.connections_key(user_id) for user_id, _, _ in chunk
            ]
            args: list[str | int | float] = [self._ttl]
            for user_id, username, channel_name in chunk:
                args += [channel_name, int(user_id), username]
            chunk_counts, names = await _CONNECT_LISTING(keys, args)
            counts += [int(count) for count in chunk_counts]
        return counts, sorted(json.loads(names))

    async def disconnect(self, *, user_id: int, channel_name: str) -> bool:
        keys = [self.connections_key(user_id), self._online_key]
        return bool(await _DISCONNECT(keys, [channel_name, int(user_id)]))

    async def heartbeat(self, *, connections: list[tuple[int, str, str]]) -> list[int]:
        came_online: list[int] = []
        for start in range(0, len(connections), _CHUNK):
            chunk = connections[start : start + _CHUNK]
            keys = [self._online_key, self._names_key] + [
                self.connections_key(u) for u, _, _ in chunk
            ]
            args: list[str | int | float] = [self._ttl]
            for user_id, username, channel_name in chunk:
                args += [int(user_id), username, channel_name]
            came = await _HEARTBEAT(keys, args)
            came_online += [int(user_id) for user_id in came]
        return came_online

    async def sweep(self) -> list[int]:
        gone = await _SWEEP([self._online_key], [self._conns_prefix])
        return [int(user_id) for user_id in gone]

    async def online_ids(self, *, user_ids: list[int]) -> set[int]:
        if not user_ids:
            return set()
        live = await _ONLINE_IDS([self._online_key], [int(u) for u in user_ids])
        return {int(user_id) for user_id in live}

    async def is_online(self, *, user_id: int) -> bool:
        return bool(await self.online_ids(user_ids=[user_id]))

    async def online_usernames(self) -> list[str]:
        names = await _ONLINE_ALL([self._online_key, self._names_key], [])
        return sorted(json.loads(names))

    async def usernames(self, *, user_ids: list[int]) -> dict[int, str]:
        if not user_ids:
            return {}
        names = await get_redis().hmget(self._names_key, [int(u) for u in user_ids])
        return {u: n.decode() for u, n in zip(user_ids, names, strict=True) if n is not None}


_store: PresenceStore | None = None


def get_presence_store() -> PresenceStore:
    """The process's store, chosen by REDIS_URL."""
    global _store
    if _store is None:
        _store = RedisPresenceStore() if settings.REDIS_URL else MemoryPresenceStore()
    return _store


def reset_presence_store() -> None:
    """Forget the chosen store (tests switch settings)."""
    global _store
    _store = None
