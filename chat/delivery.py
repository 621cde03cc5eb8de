"""Delivery through the channel layer, in as few Redis round trips as the layer allows.

With Redis as the layer, DMs cost one round trip per batch: a script checks, for each DM,
whether the recipient is online, publishes to the recipient's group and, unless the sending
socket is the sender's only one, to the sender's group. DMs whose senders are told of their
commit together (chat/services.py stores them in batches) are delivered together: those that
arrive while one script runs share the next. When the sending socket is the sender's only
one, it is given the frame directly instead of hearing it back from Redis. Publishes go
through the process's pooled Redis client rather than the layer's single locked connection,
so they do not queue behind each other. Subscriptions (group_add) stay with the layer, which
owns the receiving side.

Any other layer (the in-memory one) gets plain group_send calls and a presence lookup.

On the receiving side, each socket's channel hands what arrives straight to the socket's
inbox (channel_open), instead of to an asyncio.Queue that a task per socket waits on.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer

from .batching import Batcher
from .groups import user_group
from .presence import RedisPresenceStore, get_presence_store
from .redis import LuaScript, get_redis

logger = logging.getLogger(__name__)

# For the i-th DM: KEYS[2i-1] the online set, KEYS[2i] the sender's connections; ARGV[5i-4..5i]
# the recipient id, the sending channel, the payload, the recipient's group channel ('' when
# the recipient is the sender) and the sender's group channel. Returns, for each DM in order,
# recipient online (0/1) and sender's group skipped (0/1).
_DMS = LuaScript(
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local results = {}
for i = 1, #KEYS / 2 do
  local arg = (i - 1) * 5
  local online = tonumber(redis.call('ZSCORE', KEYS[2 * i - 1], ARGV[arg + 1]) or '0') > now
  if ARGV[arg + 4] ~= '' then
    redis.call('PUBLISH', ARGV[arg + 4], ARGV[arg + 3])
  end
  local live = redis.call('ZRANGEBYSCORE', KEYS[2 * i], '(' .. now, '+inf', 'LIMIT', 0, 2)
  local skipped = #live == 1 and live[1] == ARGV[arg + 2]
  if not skipped then
    redis.call('PUBLISH', ARGV[arg + 5], ARGV[arg + 3])
  end
  results[#results + 1] = online and 1 or 0
  results[#results + 1] = skipped and 1 or 0
end
return results
"""
)


@dataclass(frozen=True, slots=True)
class DmDelivery:
    recipient_online: bool
    # True when nothing was published for the sending socket: its consumer sends the frame.
    origin_needs_frame: bool


def _redis_layer() -> RedisPubSubChannelLayer | None:
    layer = get_channel_layer()
    return layer if isinstance(layer, RedisPubSubChannelLayer) else None


async def group_publish(group: str, event: dict[str, Any]) -> None:
    """group_send, without waiting for the layer's lock when Redis is the layer."""
    layer = _redis_layer()
    if layer is None:
        await get_channel_layer().group_send(group, event)
        return
    await get_redis().publish(layer._get_group_channel_name(group), layer.serialize(event))


@dataclass(frozen=True, slots=True)
class _Dm:
    keys: tuple[str, str]
    args: tuple[Any, ...]


async def _dms_deliver(dms: list[_Dm]) -> list[DmDelivery | Exception]:
    flags = await _DMS(
        [key for dm in dms for key in dm.keys], [arg for dm in dms for arg in dm.args]
    )
    return [
        DmDelivery(recipient_online=bool(online), origin_needs_frame=bool(skipped))
        for online, skipped in zip(flags[::2], flags[1::2], strict=True)
    ]


_dm_publisher: Batcher[_Dm, DmDelivery] = Batcher(_dms_deliver)


async def dm_deliver(
    *, sender_id: int, recipient_id: int, origin_channel: str, event: dict[str, Any]
) -> DmDelivery:
    """Send a stored DM's event to the recipient's and the sender's connections."""
    layer = _redis_layer()
    store = get_presence_store()
    if layer is not None and isinstance(store, RedisPresenceStore):
        group_channel = layer._get_group_channel_name
        return await _dm_publisher.submit(
            _Dm(
                keys=(store.online_key, store.connections_key(sender_id)),
                args=(
                    int(recipient_id),
                    origin_channel,
                    layer.serialize(event),
                    "" if recipient_id == sender_id else group_channel(user_group(recipient_id)),
                    group_channel(user_group(sender_id)),
                ),
            )
        )
    online = await store.is_online(user_id=recipient_id)
    await group_publish(user_group(recipient_id), event)
    if recipient_id != sender_id:
        await group_publish(user_group(sender_id), event)
    return DmDelivery(recipient_online=online, origin_needs_frame=False)


class _InboxChannel:
    """Stands in for the pub/sub layer's asyncio.Queue of one channel: each message goes
    straight to the socket's inbox, deserialized, in arrival order."""

    __slots__ = ("deserialize", "put")

    def __init__(self, put: Callable[[Any], None], deserialize: Callable[[bytes], Any]) -> None:
        self.put = put
        self.deserialize = deserialize

    def put_nowait(self, data: bytes) -> None:
        # Called from the layer's receive loop, which serves every socket of the process: a
        # message that cannot be read ends this socket, never the loop.
        try:
            event = self.deserialize(data)
        except Exception as error:
            event = error
        self.put(event)


async def channel_open(*, put: Callable[[Any], None]) -> str | None:
    """A new channel whose events go to put(event); None when Redis pub/sub is not the layer.

    Saves each socket a queue and a task (4-5 KiB in all), and each event a task's wake-up.
    """
    layer = _redis_layer()
    if layer is None:
        return None
    process_layer = layer._get_layer()
    channel = await process_layer.new_channel()
    # Nothing can arrive yet: no one knows the new name, and no group holds it.
    process_layer.channels[channel] = _InboxChannel(put, layer.deserialize)
    return channel


async def channel_close(channel: str) -> None:
    """Stop a channel from channel_open, as the layer does when a receive is cancelled."""
    layer = _redis_layer()
    if layer is None:
        return
    process_layer = layer._get_layer()
    if process_layer.channels.pop(channel, None) is None:
        return  # the layer was flushed meanwhile
    try:
        await process_layer._get_shard(channel).unsubscribe(channel)
    except Exception:
        logger.exception("Could not unsubscribe the closed socket's channel %s", channel)
