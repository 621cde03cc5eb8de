"""Writes: every change is committed first, then delivered through the channel layer."""

import logging
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import IntegrityError, connection, transaction

from . import delivery, protocol, selectors, summaries
from .batching import Batcher
from .exceptions import ChatError, NotFound, RateLimited
from .groups import GLOBAL_GROUP, session_group, user_group
from .models import Message, ReadMarker, User
from .presence import get_presence_store
from .ratelimit import get_rate_limiter

logger = logging.getLogger(__name__)

# Any constant: the key of the PostgreSQL advisory lock that orders message commits.
_MESSAGE_LOCK_KEY = 0x636861744D5347


@dataclass(frozen=True, slots=True)
class MessageSent:
    """What the sender's connection is told: the stored message and whether it is new."""

    code: int
    detail: str
    payload: dict[str, Any]
    created: bool
    # The frame the sending socket must send itself (nothing was published for it), or None.
    origin_frame: str | None = None


@dataclass(frozen=True, slots=True)
class _Stored:
    payload: dict[str, Any]
    created: bool
    recipient_id: int | None


def _lock_message_order() -> None:
    # Ids come from a sequence when the INSERT runs, but rows become visible at COMMIT.
    # Holding one lock from INSERT to COMMIT makes commit order equal id order, so a
    # client's `sync` after the last id it saw can never skip a message committed later
    # with a smaller id. SQLite already serialises writers.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_MESSAGE_LOCK_KEY])


@dataclass(frozen=True, slots=True)
class _ToStore:
    sender: User
    recipient_name: str
    text: str
    client_id: str | None


def _stored(
    message: Message, *, sender: User, recipient: tuple[int, str] | None, created: bool
) -> _Stored:
    """The result for one message; recipient is (id, username), None for ALL."""
    payload = protocol.message_payload(
        id=message.pk,
        sender=sender.get_username(),
        recipient=recipient[1] if recipient is not None else None,
        text=message.text,
        sent_at=message.sent_at,
    )
    return _Stored(
        payload=payload,
        created=created,
        recipient_id=recipient[0] if recipient is not None else None,
    )


def _recipient_of(message: Message) -> tuple[int, str] | None:
    if message.recipient is None:
        return None
    return message.recipient.pk, message.recipient.get_username()


def _messages_store(requests: list[_ToStore]) -> list[_Stored | Exception]:
    """Store a batch of messages in one transaction; one result or error per request."""
    names = {r.recipient_name for r in requests if r.recipient_name != protocol.GLOBAL_PEER}
    recipients = selectors.users_active_ids(usernames=names)
    results: list[_Stored | Exception | None] = [None] * len(requests)
    new: list[tuple[int, Message, tuple[int, str] | None]] = []
    first_of: dict[tuple[int, str], int] = {}
    try:
        with transaction.atomic():
            _lock_message_order()
            # Inside the lock no other writer runs, so this read of earlier client ids holds.
            earlier = selectors.messages_by_client_id(
                keys={(r.sender.pk, r.client_id) for r in requests if r.client_id}
            )
            for index, request in enumerate(requests):
                if request.recipient_name == protocol.GLOBAL_PEER:
                    recipient = None
                elif request.recipient_name in recipients:
                    recipient = (recipients[request.recipient_name], request.recipient_name)
                else:
                    results[index] = NotFound(
                        f"No active user is named {request.recipient_name[:40]!r}."
                    )
                    continue
                key = (request.sender.pk, request.client_id or "")
                if request.client_id and key in earlier:
                    message = earlier[key]
                    results[index] = _stored(
                        message,
                        sender=request.sender,
                        recipient=_recipient_of(message),
                        created=False,
                    )
                    continue
                if request.client_id and key in first_of:
                    continue  # the same resend twice in one batch: filled in below
                message = Message(
                    sender=request.sender,
                    recipient_id=recipient[0] if recipient is not None else None,
                    text=request.text,
                    client_id=request.client_id,
                )
                new.append((index, message, recipient))
                if request.client_id:
                    first_of[key] = index
            # Also numbers the ALL messages and counts them all into the conversation summaries.
            Message.objects.bulk_create([message for _, message, _ in new], order_locked=True)
    except IntegrityError:
        # Another process stored one of these client ids meanwhile (SQLite only: PostgreSQL
        # writers hold the lock): store them one by one, each resend resolved on its own.
        return [_message_store_one(request) for request in requests]
    for index, message, recipient in new:
        results[index] = _stored(
            message, sender=requests[index].sender, recipient=recipient, created=True
        )
    for index, request in enumerate(requests):
        if results[index] is None:
            first = results[first_of[(request.sender.pk, request.client_id or "")]]
            assert isinstance(first, _Stored)
            results[index] = _Stored(
                payload=first.payload, created=False, recipient_id=first.recipient_id
            )
    return results  # type: ignore[return-value]


def _message_store_one(request: _ToStore) -> _Stored | Exception:
    try:
        recipient = (
            None
            if request.recipient_name == protocol.GLOBAL_PEER
            else selectors.user_get_active(username=request.recipient_name)
        )
        with transaction.atomic():
            _lock_message_order()
            message = Message.objects.create(
                sender=request.sender,
                recipient=recipient,
                text=request.text,
                client_id=request.client_id,
            )
        recipient_of = _recipient_of(message)
        return _stored(message, sender=request.sender, recipient=recipient_of, created=True)
    except IntegrityError:
        message = Message.objects.select_related("recipient").get(
            sender=request.sender, client_id=request.client_id
        )
        return _stored(
            message, sender=request.sender, recipient=_recipient_of(message), created=False
        )
    except ChatError as error:
        return error


_message_writer: Batcher[_ToStore, _Stored] = Batcher(_messages_store)


async def message_send(
    *,
    sender: User,
    recipient: str,
    text: str,
    client_id: str | None,
    origin_channel: str = "",
) -> MessageSent:
    """Store a message, then deliver it to the recipient's and the sender's connections.

    origin_channel is the sending socket's channel: when it is the sender's only socket, the
    result carries the frame for it (origin_frame) instead of a round trip through Redis.
    """
    retry_after = await get_rate_limiter().hit(user_id=sender.pk)
    if retry_after:
        count, seconds = settings.CHAT_RATE_LIMIT
        raise RateLimited(
            f"Too many messages: at most {count} every {seconds} s. "
            f"Retry in {retry_after:.1f} s; nothing was stored.",
            retry_after=round(retry_after, 3),
        )
    stored = await _message_writer.submit(
        _ToStore(sender=sender, recipient_name=recipient, text=text, client_id=client_id)
    )
    online = True
    origin_frame = None
    if stored.created:
        frame = protocol.encode(protocol.message_frame(stored.payload, client_id))
        event = {"type": "chat.message", "frame": frame}
        if stored.recipient_id is None:
            await delivery.group_publish(GLOBAL_GROUP, event)
        else:
            delivered = await delivery.dm_deliver(
                sender_id=sender.pk,
                recipient_id=stored.recipient_id,
                origin_channel=origin_channel,
                event=event,
            )
            online = delivered.recipient_online
            origin_frame = frame if delivered.origin_needs_frame else None
    elif stored.recipient_id is not None:
        online = await get_presence_store().is_online(user_id=stored.recipient_id)
    if online:
        code, detail = 200, "Delivered."
    else:
        code, detail = 202, "Stored; the recipient is offline and gets it on their next sync."
    if not stored.created:
        detail = f"Already stored (same client_id). {detail}"
    return MessageSent(
        code=code,
        detail=detail,
        payload=stored.payload,
        created=stored.created,
        origin_frame=origin_frame,
    )


@dataclass(frozen=True, slots=True)
class _Marked:
    moved: bool
    up_to: int
    peer_id: int | None


def _read_mark(*, user: User, peer_name: str, up_to: int) -> _Marked:
    peer = selectors.peer_resolve(peer=peer_name)
    # A marker never points past the conversation's newest message.
    up_to = min(up_to, selectors.conversation_last_id(user=user, peer=peer))
    peer_id = peer.pk if peer is not None else None
    if up_to <= 0:
        return _Marked(moved=False, up_to=0, peer_id=peer_id)
    markers = ReadMarker.objects.filter(user=user, peer=peer)
    if markers.filter(up_to__gte=up_to).exists():
        return _Marked(moved=False, up_to=up_to, peer_id=peer_id)
    with transaction.atomic():
        # The lock before any row, as every writer of messages and markers takes it: while it
        # is held no message is being inserted, so the recount below counts every message
        # stored so far and no insert's increment of the same row is lost under it.
        _lock_message_order()
        # Only ever forward: the UPDATE's condition makes concurrent marks safe.
        moved = bool(markers.filter(up_to__lt=up_to).update(up_to=up_to))
        if moved:
            summaries.conversation_recount(user_id=user.pk, peer_id=peer_id)
        elif not markers.exists():
            ReadMarker.objects.create(user=user, peer=peer, up_to=up_to)  # recounts as it saves
            moved = True
    return _Marked(moved=moved, up_to=up_to, peer_id=peer_id)


async def read_mark(*, user: User, peer: str, up_to: int, origin_channel: str) -> bool:
    """Move the user's read marker forward and tell their other connections and the peer."""
    marked = await database_sync_to_async(_read_mark)(user=user, peer_name=peer, up_to=up_to)
    if not marked.moved:
        return False
    frame = protocol.read_frame(reader=user.get_username(), peer=peer, up_to=marked.up_to)
    event = {"type": "chat.read", "frame": protocol.encode(frame), "origin": origin_channel}
    await delivery.group_publish(user_group(user.pk), event)
    if marked.peer_id is not None and marked.peer_id != user.pk:
        await delivery.group_publish(user_group(marked.peer_id), event)
    return True


async def typing_send(*, sender: User, recipient: str) -> None:
    """Tell the recipient's connections that the sender is typing; nothing is stored."""
    target_id = selectors.user_active_id_peek(username=recipient)
    if target_id is None:
        target_id = await database_sync_to_async(selectors.user_active_id_cached)(
            username=recipient
        )
    frame = protocol.typing_frame(sender=sender.get_username())
    await delivery.group_publish(
        user_group(target_id), {"type": "chat.typing", "frame": protocol.encode(frame)}
    )


# Closing other sockets. These run in synchronous code (signals, views, the shell) after the
# change is committed; a failure to reach the channel layer is logged, never raised, so a
# logout or an admin save still succeeds (sockets the layer cannot reach are closed by their
# process's Redis watchdog instead).


def _group_send_now(group: str, event: dict) -> None:
    try:
        async_to_sync(get_channel_layer().group_send)(group, event)
    except Exception:
        logger.exception("Could not send %s to %s", event["type"], group)


def sockets_close_for_user(*, user_id: int, code: int) -> None:
    """Close every socket of a user, on every process (deactivated: 4403)."""
    _group_send_now(user_group(user_id), {"type": "chat.kick", "code": code})


def sockets_close_for_session(*, session_key: str, code: int) -> None:
    """Close every socket of one login session (logged out: 4401)."""
    _group_send_now(session_group(session_key), {"type": "chat.kick", "code": code})


def sockets_recheck_sessions(
    *, user_id: int, kept_session_key: str | None = None, new_session_key: str | None = None
) -> None:
    """After a password change, close the sockets of sessions it invalidated.

    The session that made the change lives on under a new key: its sockets adopt it.
    """
    event: dict = {"type": "chat.session.check"}
    if kept_session_key and new_session_key:
        event["keep_group"] = session_group(kept_session_key)
        event["keep_key"] = new_session_key
    _group_send_now(user_group(user_id), event)
