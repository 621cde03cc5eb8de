"""Delivery through the channel layer, in as few Redis round trips as the layer allows.

With Redis as the layer, DMs cost one round trip per batch: a script checks, for each DM,
whether the recipient is online, publishes to the recipient's group and, unless the sending
socket is the sender's only one, to the sender's group. DMs whose senders are told of their
commit together (chat/services.py stores them in batches) are delivered together: those that
arrive while one script runs share the next. When the sending socket is the sender's only
one, it is given the frame directly instead of hearing it back from Redis. Publishes go
through the process's pooled Redis client rather than the layer's single locked connection,
so they do not queue behind each other. Subscriptions stay on the layer's connection, which
owns the receiving side; a socket subscribes its channel and its groups with one command
(groups_join).

Any other layer (the in-memory one) gets plain group_send calls and a presence lookup.

On the receiving side, each socket's channel hands what arrives straight to the socket's
inbox (channel_open), instead of to an asyncio.Queue that a task per socket waits on.
"""

import logging
import uuid
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


def _redis_layer(layer: Any = None) -> RedisPubSubChannelLayer | None:
    """The layer given (the default one if None) when it is Redis pub/sub, else None."""
    layer = get_channel_layer() if layer is None else layer
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


async def channel_open(*, put: Callable[[Any], None], layer: Any = None) -> str | None:
    """A new channel whose events go to put(event); None when Redis pub/sub is not the layer.

    Saves each socket a queue and a task (4-5 KiB in all), and each event a task's wake-up.
    Redis hears of the channel in groups_join, in one command with the socket's groups: no
    one can send to it before, since no one knows its name.
    """
    redis_layer = _redis_layer(layer)
    if redis_layer is None:
        return None
    process_layer = redis_layer._get_layer()
    channel = f"{process_layer.prefix}specific.{uuid.uuid4().hex}"
    process_layer.channels[channel] = _InboxChannel(put, redis_layer.deserialize)
    return channel


async def groups_join(channel: str, groups: list[str], *, layer: Any = None) -> None:
    """group_add(group, channel) for each group.

    With Redis, the groups and a channel from channel_open are subscribed with one SUBSCRIBE
    (per shard), where the layer sends one per group and one for the channel: two round trips
    fewer per socket. The sockets that join while one SUBSCRIBE is being sent share the next.
    """
    redis_layer = _redis_layer(layer)
    if redis_layer is None:
        for group in groups:
            await (layer or get_channel_layer()).group_add(group, channel)
        return
    process_layer = redis_layer._get_layer()
    if channel not in process_layer.channels:
        raise RuntimeError(f"groups_join: {channel} is not a channel of this process")
    names = [channel]
    for group in groups:
        group_channel = process_layer._get_group_channel_name(group)
        process_layer.groups.setdefault(group_channel, set()).add(channel)
        names.append(group_channel)
    await _subscribing.submit((process_layer, names))


async def _subscribe_together(joins: list[tuple[Any, list[str]]]) -> list[None]:
    """The SUBSCRIBEs of the sockets that join while one is being sent, as one (per shard)."""
    by_layer: dict[int, tuple[Any, dict[str, None]]] = {}
    for process_layer, names in joins:
        by_layer.setdefault(id(process_layer), (process_layer, {}))[1].update(dict.fromkeys(names))
    for process_layer, names in by_layer.values():
        await _subscriptions(process_layer, list(names), subscribe=True)
    return [None] * len(joins)


_subscribing: Batcher[tuple[Any, list[str]], None] = Batcher(_subscribe_together)


async def groups_leave(channel: str, groups: list[str], *, layer: Any = None) -> None:
    """group_discard(group, channel) for each group; with Redis, one UNSUBSCRIBE (per shard)
    for the groups no other channel of this process is in."""
    redis_layer = _redis_layer(layer)
    if redis_layer is None:
        for group in groups:
            await (layer or get_channel_layer()).group_discard(group, channel)
        return
    process_layer = redis_layer._get_layer()
    emptied = []
    for group in groups:
        group_channel = process_layer._get_group_channel_name(group)
        members = process_layer.groups.get(group_channel)
        if members is None or channel not in members:
            continue
        members.remove(channel)
        if not members:
            del process_layer.groups[group_channel]
            emptied.append(group_channel)
    await _subscriptions(process_layer, emptied, subscribe=False)


async def _subscriptions(process_layer: Any, names: list[str], *, subscribe: bool) -> None:
    """RedisSingleShardConnection.subscribe or unsubscribe, for several names at once: one
    command per shard, for the names whose state changes."""
    shards: dict[Any, list[str]] = {}
    for name in names:
        shards.setdefault(process_layer._get_shard(name), []).append(name)
    for shard, shard_names in shards.items():
        async with shard._lock:
            changing = [n for n in shard_names if (n in shard._subscribed_to) != subscribe]
            if not changing:
                continue
            shard._ensure_redis()
            shard._ensure_receiver()
            if subscribe:
                await shard._pubsub.subscribe(*changing)
                shard._subscribed_to.update(changing)
            else:
                await shard._pubsub.unsubscribe(*changing)
                shard._subscribed_to.difference_update(changing)


async def channel_close(channel: str, *, layer: Any = None) -> None:
    """Stop a channel from channel_open, as the layer does when a receive is cancelled."""
    redis_layer = _redis_layer(layer)
    if redis_layer is None:
        return
    process_layer = redis_layer._get_layer()
    if process_layer.channels.pop(channel, None) is None:
        return  # the layer was flushed meanwhile
    try:
        await process_layer._get_shard(channel).unsubscribe(channel)
    except Exception:
        logger.exception("Could not unsubscribe the closed socket's channel %s", channel)
