"""Who is online: a user is online while they hold at least one live connection.

One store interface, two backends: Redis when REDIS_URL is set (shared by every process),
memory otherwise (one process). Both pass the same contract tests.
"""

from typing import Protocol

from django.conf import settings

from .redis import get_redis


class PresenceStore(Protocol):
    async def connect(self, *, user_id: int, username: str, channel_name: str) -> bool:
        """Record a connection; True when it is the user's first."""
        ...

    async def disconnect(self, *, user_id: int, channel_name: str) -> bool:
        """Forget a connection; True when it was the user's last."""
        ...

    async def is_online(self, *, user_id: int) -> bool: ...

    async def online_usernames(self) -> list[str]: ...


class MemoryPresenceStore:
    def __init__(self) -> None:
        self._connections: dict[int, set[str]] = {}
        self._usernames: dict[int, str] = {}

    async def connect(self, *, user_id: int, username: str, channel_name: str) -> bool:
        channels = self._connections.setdefault(user_id, set())
        channels.add(channel_name)
        self._usernames[user_id] = username
        return len(channels) == 1

    async def disconnect(self, *, user_id: int, channel_name: str) -> bool:
        channels = self._connections.get(user_id)
        if channels is None or channel_name not in channels:
            return False
        channels.discard(channel_name)
        if channels:
            return False
        del self._connections[user_id]
        del self._usernames[user_id]
        return True

    async def is_online(self, *, user_id: int) -> bool:
        return user_id in self._connections

    async def online_usernames(self) -> list[str]:
        return sorted(self._usernames.values())


_CONNECT = """
local added = redis.call('SADD', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
if added == 1 and redis.call('SCARD', KEYS[1]) == 1 then return 1 end
return 0
"""

_DISCONNECT = """
local removed = redis.call('SREM', KEYS[1], ARGV[1])
if removed == 1 and redis.call('SCARD', KEYS[1]) == 0 then
  redis.call('HDEL', KEYS[2], ARGV[2])
  return 1
end
return 0
"""


class RedisPresenceStore:
    """A set of channel names per user and a hash of online user ids to usernames."""

    def __init__(self, prefix: str = "chat:presence") -> None:
        self._online_key = f"{prefix}:online"
        self._prefix = prefix

    def _connections_key(self, user_id: int) -> str:
        return f"{self._prefix}:conns:{int(user_id)}"

    async def connect(self, *, user_id: int, username: str, channel_name: str) -> bool:
        keys = [self._connections_key(user_id), self._online_key]
        first = await get_redis().eval(_CONNECT, 2, *keys, channel_name, user_id, username)
        return bool(first)

    async def disconnect(self, *, user_id: int, channel_name: str) -> bool:
        keys = [self._connections_key(user_id), self._online_key]
        last = await get_redis().eval(_DISCONNECT, 2, *keys, channel_name, user_id)
        return bool(last)

    async def is_online(self, *, user_id: int) -> bool:
        return bool(await get_redis().hexists(self._online_key, str(int(user_id))))

    async def online_usernames(self) -> list[str]:
        names = await get_redis().hvals(self._online_key)
        return sorted(name.decode() for name in names)


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
