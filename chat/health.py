"""Health checks: the database and the channel layer, each a real round trip with a timeout."""

import asyncio
import logging

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connection

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2.0


def _database_ping() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


async def _check_database() -> None:
    await database_sync_to_async(_database_ping)()


async def _check_channel_layer() -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel("health.")
    await layer.send(channel, {"type": "health.ping"})
    message = await layer.receive(channel)
    if message.get("type") != "health.ping":
        raise RuntimeError(f"the channel layer returned {message!r}")


async def health_check() -> dict[str, str]:
    """Each part's state: "ok" or what went wrong."""
    checks = {"database": _check_database, "channel_layer": _check_channel_layer}
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT_SECONDS)
            results[name] = "ok"
        except TimeoutError:
            results[name] = f"no answer within {CHECK_TIMEOUT_SECONDS:g} s"
        except Exception as error:
            logger.warning("Health check %s failed: %s", name, error)
            results[name] = f"{type(error).__name__}: {error}"[:200]
    return results
