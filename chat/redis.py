"""One asyncio Redis client per event loop, from settings.REDIS_URL, and Lua scripts."""

import asyncio
import hashlib
import weakref
from typing import Any

import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import NoScriptError

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis]" = (
    weakref.WeakKeyDictionary()
)


def get_redis() -> aioredis.Redis:
    """The client for the running loop; redis.asyncio connections cannot cross loops."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = aioredis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=None, max_connections=10000
        )
        _clients[loop] = client
    return client


class LuaScript:
    """A Lua script run by its SHA1 (EVALSHA), sent in full only when Redis lacks it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        client = get_redis()
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            # The first call on this Redis, or after a restart or SCRIPT FLUSH.
            return await client.eval(self.source, len(keys), *keys, *args)
