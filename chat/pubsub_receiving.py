"""The Redis channel layer's receive loop, reading published messages straight off the wire.

channels_redis's pub/sub layer reads every message through redis-py's PubSub.get_message with
a 0.1 s timeout: a health check, a retry wrapper, a timeout context, a dict built for the
message and a metrics call, for every message. For a DM that is the recipient's one message,
and those steps cost more than handing it to the socket. Here a connected, subscribed
connection is read with read_response, which the compiled parser answers from its buffer
while messages are waiting: a "message" reply goes to the layer's own dispatch
(_receive_message) at once. Everything else (subscribe and unsubscribe confirmations, which
redis-py's PubSub counts) goes through PubSub.handle_message as before, and whenever the
connection is not up, one step of the layer's own loop runs: get_message connects again and
subscribes to every channel the layer holds (and a REDIS_URL that sets socket_timeout or
health_check_interval is read by it throughout).
"""

import asyncio
import logging
from typing import Any

logger = logging.getLogger(__name__)


def enable_direct_receiving() -> None:
    """Patch RedisSingleShardConnection._do_receiving once; a no-op without channels_redis."""
    try:
        from channels_redis.pubsub import RedisSingleShardConnection
    except ImportError:
        return
    if getattr(RedisSingleShardConnection._do_receiving, "receives_directly", False):
        return

    async def do_receiving(self: Any) -> None:
        while True:
            try:
                pubsub = self._pubsub
                if pubsub is None or not pubsub.subscribed:
                    await asyncio.sleep(0.1)
                    continue
                connection = pubsub.connection
                if (
                    connection is None
                    or not connection.is_connected
                    or connection.socket_timeout is not None
                    or connection.health_check_interval
                ):
                    # The layer's own step: it connects and subscribes again, and it handles
                    # read timeouts and health checks set in REDIS_URL.
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
                    self._receive_message(message)
                    continue
                response = await connection.read_response(push_request=True)
                if type(response) is list and len(response) == 3 and response[0] == b"message":
                    self._receive_message({"channel": response[1], "data": response[2]})
                else:
                    message = await pubsub.handle_message(response, ignore_subscribe_messages=True)
                    self._receive_message(message)
            except (TimeoutError, asyncio.CancelledError, GeneratorExit):
                raise
            except BaseException:
                # As the layer's loop does: a lost connection is read again by get_message,
                # which reconnects.
                logger.exception("Unexpected exception in receive task")
                await asyncio.sleep(1)

    do_receiving.receives_directly = True  # type: ignore[attr-defined]
    RedisSingleShardConnection._do_receiving = do_receiving
