"""Delivery through the channel layer, in as few Redis round trips as the layer allows.

With Redis as the layer, a DM costs one round trip: a script checks whether the recipient is
online, publishes to the recipient's group and, unless the sending socket is the sender's only
one, to the sender's group. When it is the only one, the sending socket is given the frame
directly instead of hearing it back from Redis. Publishes go through the process's pooled
Redis client rather than the layer's single locked connection, so they do not queue behind
each other. Subscriptions (group_add) stay with the layer, which owns the receiving side.

Any other layer (the in-memory one) gets plain group_send calls and a presence lookup.
"""

from dataclasses import dataclass
from typing import Any

from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer

from .groups import user_group
from .presence import RedisPresenceStore, get_presence_store
from .redis import LuaScript, get_redis

# KEYS: the online set, the sender's connections. ARGV: recipient id, sending channel,
# payload, recipient's group channel ('' when the recipient is the sender), sender's group
# channel. Returns {recipient online (0/1), sender's group skipped (0/1)}.
_DM = LuaScript(
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local online = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '0') > now
if ARGV[4] ~= '' then
  redis.call('PUBLISH', ARGV[4], ARGV[3])
end
local live = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf', 'LIMIT', 0, 2)
if #live == 1 and live[1] == ARGV[2] then
  return {online and 1 or 0, 1}
end
redis.call('PUBLISH', ARGV[5], ARGV[3])
return {online and 1 or 0, 0}
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


async def dm_deliver(
    *, sender_id: int, recipient_id: int, origin_channel: str, event: dict[str, Any]
) -> DmDelivery:
    """Send a stored DM's event to the recipient's and the sender's connections."""
    layer = _redis_layer()
    store = get_presence_store()
    if layer is not None and isinstance(store, RedisPresenceStore):
        group_channel = layer._get_group_channel_name
        online, skipped = await _DM(
            [store.online_key, store.connections_key(sender_id)],
            [
                int(recipient_id),
                origin_channel,
                layer.serialize(event),
                "" if recipient_id == sender_id else group_channel(user_group(recipient_id)),
                group_channel(user_group(sender_id)),
            ],
        )
        return DmDelivery(recipient_online=bool(online), origin_needs_frame=bool(skipped))
    online = await store.is_online(user_id=recipient_id)
    await group_publish(user_group(recipient_id), event)
    if recipient_id != sender_id:
        await group_publish(user_group(sender_id), event)
    return DmDelivery(recipient_online=online, origin_needs_frame=False)
