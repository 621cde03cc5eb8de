"""Reads: users, history, conversations and sync. Every query is served by an index.

Each function is synchronous; consumers call them through database_sync_to_async, or
in_thread_pool.
"""

import functools
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from importlib import import_module
from typing import Any, ParamSpec, TypeVar

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.db import connection, connections
from django.db.models.expressions import RawSQL
from django.utils.crypto import constant_time_compare

from . import protocol
from .exceptions import NotFound
from .models import Conversation, Message, ReadMarker, User

SYNC_LIMIT = 500

P = ParamSpec("P")
R = TypeVar("R")


def in_thread_pool(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """func through database_sync_to_async, in the event loop's pool of threads.

    database_sync_to_async runs every call of the process in one thread, one at a time
    (thread_sensitive), each waiting for the database and then for the event loop to let go
    of the GIL. Reads that depend on no other call (a socket's session and user, last_id, a
    sync page) run in the pool instead, so their waits overlap; writes stay in the one
    thread.
    """

    @functools.wraps(func)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        finally:
            # The connection was opened in the caller's copied context, where the close that
            # database_sync_to_async does outside it cannot see it: back to the pool here.
            connections.close_all()

    return database_sync_to_async(run, thread_sensitive=False)


USERNAME_MAX_LENGTH = User._meta.get_field("username").max_length
# No joins: with the users table joined, PostgreSQL sometimes reads a whole conversation to
# sort it instead of walking the index; usernames come from one small query per page or from
# a scalar subquery per row (one primary-key probe each).
_FIELDS = ("id", "sender_id", "recipient_id", "text", "sent_at", "client_id")


def _could_be_username(name: str) -> bool:
    """False for names no user can have: no query is needed to know they do not exist."""
    return len(name) <= USERNAME_MAX_LENGTH and protocol.is_storable_text(name)


def user_get_active(*, username: str) -> User:
    """The active user with this exact username, or NotFound."""
    user = (
        User.objects.filter(username=username, is_active=True).first()
        if _could_be_username(username)
        else None
    )
    if user is None:
        raise NotFound(f"No active user is named {username[:40]!r}.")
    return user


# username -> (user id or None, expires at): typing frames may come on every keystroke and
# DMs go to the same few people, and neither should cost a query each. A save clears the
# entry in its own process; other processes see a deactivation within _ACTIVE_ID_SECONDS.
_active_ids: dict[str, tuple[int | None, float]] = {}
_ACTIVE_ID_SECONDS = 5.0
_UNKNOWN_SECONDS = 5.0
_ACTIVE_ID_ENTRIES = 10_000


def user_active_id_cached(*, username: str) -> int:
    """The id of the active user with this username, from a short-lived cache, or NotFound."""
    found = users_active_ids(usernames={username})
    if username not in found:
        raise NotFound(f"No active user is named {username[:40]!r}.")
    return found[username]


def user_active_id_forget(*, username: str) -> None:
    """Drop a username from the cache (the user was saved)."""
    _active_ids.pop(username, None)


def user_active_id_peek(*, username: str) -> int | None:
    """The cached id, without a query; None when not cached or expired."""
    cached = _active_ids.get(username)
    if cached is None or cached[1] <= time.monotonic():
        return None
    return cached[0]


def session_close_code(*, session_key: str | None, user_id: int) -> int | None:
    """None while the session still logs this user in; else the close code (4401 or 4403)."""
    if not session_key:
        return 4401
    data = import_module(settings.SESSION_ENGINE).SessionStore(session_key).load()
    if str(data.get(SESSION_KEY)) != str(user_id):
        return 4401
    user = User.objects.filter(pk=user_id).first()
    if user is None or not user.is_active:
        return 4403
    stored = data.get(HASH_SESSION_KEY) or ""
    valid = [user.get_session_auth_hash()] + [
        user._get_session_auth_hash(secret=key) for key in settings.SECRET_KEY_FALLBACKS
    ]
    if not any(constant_time_compare(stored, known) for known in valid):
        return 4401
    return None


def users_active_ids(*, usernames: set[str]) -> dict[str, int]:
    """The ids of the active users among these usernames: cached, the rest in one query."""
    now = time.monotonic()
    found: dict[str, int] = {}
    missing = []
    for name in usernames:
        cached = _active_ids.get(name)
        if cached is not None and cached[1] > now:
            if cached[0] is not None:
                found[name] = cached[0]
        elif _could_be_username(name):
            missing.append(name)
    if missing:
        if len(_active_ids) >= _ACTIVE_ID_ENTRIES:
            _active_ids.clear()
        ids = dict(
            User.objects.filter(username__in=missing, is_active=True).values_list("username", "id")
        )
        for name in missing:
            user_id = ids.get(name)
            ttl = _ACTIVE_ID_SECONDS if user_id is not None else _UNKNOWN_SECONDS
            _active_ids[name] = (user_id, now + ttl)
        found.update(ids)
    return found


def messages_by_client_id(*, keys: set[tuple[int, str]]) -> dict[tuple[int, str], Message]:
    """The stored messages among these (sender id, client id) pairs."""
    if not keys:
        return {}
    # Plain SQL with one row value per key: one probe of the unique (sender, client id) index
    # each, whatever the statistics. With a list of senders and a list of client ids, a
    # planner with stale statistics (after a bulk load) read every message of those senders.
    table = connection.ops.quote_name(Message._meta.db_table)
    pairs = ", ".join(["(%s, %s)"] * len(keys))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {table} WHERE client_id IS NOT NULL "
            f"AND (sender_id, client_id) IN ({pairs})",
            [value for key in keys for value in key],
        )
        ids = [row[0] for row in cursor.fetchall()]
    if not ids:
        return {}
    found = Message.objects.filter(id__in=ids).select_related("recipient")
    return {(m.sender_id, m.client_id): m for m in found}


def peer_resolve(*, peer: str) -> User | None:
    """A conversation peer: None for ALL, else any existing user (active or not)."""
    if peer == protocol.GLOBAL_PEER:
        return None
    user = User.objects.filter(username=peer).first() if _could_be_username(peer) else None
    if user is None:
        raise NotFound(f"No user is named {peer[:40]!r}.")
    return user


def _user_ids(rows: list[dict[str, Any]]) -> set[int]:
    return {row["sender_id"] for row in rows} | {
        row["recipient_id"] for row in rows if row["recipient_id"] is not None
    }


def _usernames(user_ids: set[int]) -> dict[int, str]:
    return dict(User.objects.filter(id__in=user_ids).values_list("id", "username"))


def _payloads(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """MESSAGE for each row, with the usernames of all its users from one query."""
    names = _usernames(_user_ids(rows))
    return [
        protocol.message_payload(
            id=row["id"],
            sender=names[row["sender_id"]],
            recipient=names[row["recipient_id"]] if row["recipient_id"] is not None else None,
            text=row["text"],
            sent_at=row["sent_at"],
        )
        for row in rows
    ]


# A query and the columns it is ordered by (ascending; each reversed for newest first).
_Ordered = tuple[Any, tuple[str, ...]]


def _posts() -> _Ordered:
    # Ordered by recipient too: PostgreSQL treats IS NULL as no equality, so ordered by id
    # alone it may walk the primary key back, reading every DM in between, instead of the
    # (recipient, id) index.
    return Message.objects.filter(recipient__isnull=True), ("recipient_id", "id")


def posts_newest_first() -> Any:
    """Every ALL message, newest first, in the order of the (recipient, id) index."""
    query, order = _posts()
    return query.order_by(*(f"-{field}" for field in order))


# _posts in plain SQL: the condition, and newest first in the (recipient, id) index's order.
_POSTS_WHERE = "recipient_id IS NULL"
_POSTS_NEWEST_FIRST = "recipient_id DESC, id DESC"

# One index range of a conversation, in plain SQL: (condition, its parameters, the index's
# order newest first).
_Range = tuple[str, list[Any], str]


def _conversation_ranges(*, user: User, peer: User | None) -> list[_Range]:
    if peer is None:
        return [(_POSTS_WHERE, [], _POSTS_NEWEST_FIRST)]
    if peer.pk == user.pk:
        return [("sender_id = %s AND recipient_id = %s", [user.pk, user.pk], "id DESC")]
    # One range per direction, each a range scan of the (sender, recipient, id) index.
    return [
        ("sender_id = %s AND recipient_id = %s", [user.pk, peer.pk], "id DESC"),
        ("sender_id = %s AND recipient_id = %s", [peer.pk, user.pk], "id DESC"),
    ]


def _newest_ids(ranges: list[_Range], *, before: int | None, limit: int) -> RawSQL:
    """The ids of the newest `limit` messages of each range, from the indexes alone.

    Ids first, then those rows: fetching whole rows, the planner may read a whole
    conversation and sort it when it expects it to be short. Plain SQL, since the ORM cannot
    limit the parts of a UNION on SQLite, and building the subqueries cost more than running
    them.
    """
    table = connection.ops.quote_name(Message._meta.db_table)
    parts: list[str] = []
    params: list[Any] = []
    for number, (condition, values, order) in enumerate(ranges):
        if before is not None:
            condition, values = f"{condition} AND id < %s", [*values, before]
        parts.append(
            f"SELECT id FROM (SELECT id FROM {table} WHERE {condition} "
            f"ORDER BY {order} LIMIT %s) AS range{number}"
        )
        params += [*values, limit]
    return RawSQL(" UNION ALL ".join(parts), params)


def message_history_list(
    *, user: User, peer: User | None, before: int | None, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """The newest `limit` messages of one conversation with id < before, ascending.

    One statement: the ids from the indexes, then those rows by primary key, with the
    sender's name for an ALL page (a DM page's two users are known). Plain SQL: the ORM cost
    more than the statement for a page of 50.
    """
    ids = _newest_ids(_conversation_ranges(user=user, peer=peer), before=before, limit=limit + 1)
    tables = sql_tables()
    sender_name = (
        f"(SELECT username FROM {tables['user']} WHERE id = m.sender_id)"
        if peer is None
        else "NULL"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT m.id, m.sender_id, m.text, m.sent_at, {sender_name} "
            f"FROM {tables['message']} AS m WHERE m.id IN ({ids.sql}) "
            "ORDER BY m.id DESC LIMIT %s",
            [*ids.params, limit + 1],
        )
        rows = cursor.fetchall()
    has_more = len(rows) > limit
    # A DM page's messages are between its two users: the recipient is the other one.
    names = {} if peer is None else {user.pk: user.get_username(), peer.pk: peer.get_username()}
    recipient_of = (
        {} if peer is None else {user.pk: peer.get_username(), peer.pk: user.get_username()}
    )
    return [
        protocol.message_payload(
            id=message_id,
            sender=name if peer is None else names[sender_id],
            recipient=None if peer is None else recipient_of[sender_id],
            text=text,
            sent_at=_db_datetime(sent_at),
        )
        for message_id, sender_id, text, sent_at, name in reversed(rows[:limit])
    ], has_more


def _visible_queries(*, user_id: int) -> list[_Ordered]:
    # A user sees every ALL message and every message they sent or received.
    return [
        _posts(),
        (Message.objects.filter(sender_id=user_id), ("id",)),
        (Message.objects.filter(recipient_id=user_id), ("id",)),
    ]


def message_sync_list(
    *, user_id: int, after: int, limit: int = SYNC_LIMIT
) -> tuple[list[dict[str, Any]], bool]:
    """Messages visible to the user with id > after, ascending, at most `limit`."""
    after = min(after, protocol.MAX_ID)
    rows: dict[int, dict[str, Any]] = {}
    for query, order in _visible_queries(user_id=user_id):
        oldest = query.filter(id__gt=after).order_by(*order)
        for row in oldest.values(*_FIELDS)[: limit + 1]:
            rows[row["id"]] = row
    ordered = sorted(rows.values(), key=lambda row: row["id"])
    page = ordered[:limit]
    frames = [
        # The sender's own client_id lets another tab match the message to its pending send.
        protocol.message_frame(payload, row["client_id"] if row["sender_id"] == user_id else None)
        for row, payload in zip(page, _payloads(page), strict=True)
    ]
    return frames, len(ordered) > limit


def _last_visible_id_columns(user: str) -> str:
    """The newest ids of the three parts of _visible_queries for the user id `user` (a
    placeholder or a column), each one probe of an index."""
    table = connection.ops.quote_name(Message._meta.db_table)
    parts = [
        f"{_POSTS_WHERE} ORDER BY {_POSTS_NEWEST_FIRST}",
        f"sender_id = {user} ORDER BY id DESC",
        f"recipient_id = {user} ORDER BY id DESC",
    ]
    return ", ".join(f"(SELECT id FROM {table} WHERE {part} LIMIT 1)" for part in parts)


def message_last_visible_id(*, user_id: int) -> int:
    """The newest message id the user can see, 0 when there is none (one query).

    Plain SQL: it runs for every new socket and every ping, and building the same statement
    with the ORM cost five times as much as running it.
    """
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {_last_visible_id_columns('%s')}", [user_id, user_id])
        row = cursor.fetchone()
    return max((value for value in row if value is not None), default=0)


def message_last_visible_ids(user_ids: list[int]) -> list[int]:
    """message_last_visible_id for each user (in order; repeats allowed), in one statement.

    Every handshake and ping reads its user's last_id; the sockets that ask together share
    one trip to a thread and, on PostgreSQL, one statement: the newest post once, and per
    user the two probes of message_last_visible_id.
    """
    if connection.vendor != "postgresql":
        return [message_last_visible_id(user_id=user_id) for user_id in user_ids]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {_last_visible_id_columns('u.id')}"
            " FROM unnest(%s::bigint[]) WITH ORDINALITY AS u(id, n) ORDER BY u.n",
            [list(user_ids)],
        )
        rows = cursor.fetchall()
    return [max((value for value in row if value is not None), default=0) for row in rows]


def conversation_last_id(*, user: User, peer: User | None) -> int:
    """The newest message id in one conversation, 0 when it is empty (one query)."""
    newest = _newest_ids(_conversation_ranges(user=user, peer=peer), before=None, limit=1)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MAX(id) FROM ({newest.sql}) AS newest", newest.params)
        (found,) = cursor.fetchone()
    return found or 0


# A user's DM conversations: each summary row with its newest message and the peer's name,
# the message by primary key and the name by a scalar subquery (a join to the users table
# made PostgreSQL hash all users).
_CONVERSATIONS_SQL = """
    SELECT c.peer_id, c.unread, c.own_after_marker,
           m.id, m.sender_id, m.recipient_id, m.text, m.sent_at,
           (SELECT username FROM {user} WHERE id = c.peer_id)
    FROM {conversation} AS c LEFT JOIN {message} AS m ON m.id = c.last_id
    WHERE c.user_id = %s
"""

# The newest ALL message with its sender's name and ordinal, and the ordinal at the user's
# ALL marker: index probes in the (recipient, id) index's order (see _posts). One row, even
# when there is no ALL message.
_GLOBAL_FIGURES_SQL = """
    SELECT newest.id, newest.sender_id, newest.text, newest.sent_at, newest.all_seq,
           (SELECT username FROM {user} WHERE id = newest.sender_id),
           (SELECT all_seq FROM {message}
            WHERE {posts}
              AND id <= (SELECT up_to FROM {marker} WHERE user_id = %s AND peer_id IS NULL)
            ORDER BY {newest} LIMIT 1)
    FROM (SELECT 1 AS one) AS one LEFT JOIN (
        SELECT id, sender_id, text, sent_at, all_seq FROM {message}
        WHERE {posts} ORDER BY {newest} LIMIT 1
    ) AS newest ON 1 = 1
"""


def sql_tables() -> dict[str, str]:
    """The chat's quoted table names, to format plain SQL with (`{message}`, ...)."""
    quote = connection.ops.quote_name
    return {
        "user": quote(User._meta.db_table),
        "message": quote(Message._meta.db_table),
        "conversation": quote(Conversation._meta.db_table),
        "marker": quote(ReadMarker._meta.db_table),
    }


def _sql(template: str) -> str:
    return template.format(**sql_tables(), posts=_POSTS_WHERE, newest=_POSTS_NEWEST_FIRST)


def _db_datetime(value: Any) -> datetime:
    """A datetime column read with plain SQL: PostgreSQL gives datetimes, SQLite text."""
    if isinstance(value, datetime):
        return value
    return connection.ops.convert_datetimefield_value(value, None, connection)


def conversation_list(*, user: User) -> list[dict[str, Any]]:
    """Every conversation of the user with its last message and unread count, newest first.

    Read from the summaries (chat/summaries.py) in two statements, whatever the history's
    size. Plain SQL: built with the ORM, the four queries this took cost more than running
    them.
    """
    # (peer name or ALL, last id, unread, last message payload or None)
    conversations: list[tuple[str, int, int, dict[str, Any] | None]] = []
    own_posts_unread = 0
    with connection.cursor() as cursor:
        cursor.execute(_sql(_CONVERSATIONS_SQL), [user.pk])
        for row in cursor.fetchall():
            peer_id, unread, own_after_marker, last_id, sender_id, recipient_id = row[:6]
            text, sent_at, peer_name = row[6:]
            if peer_id is None:
                own_posts_unread = own_after_marker
                continue
            # A DM's two users are the user and the peer.
            names = {user.pk: user.get_username(), peer_id: peer_name}
            last = None
            if last_id is not None:
                last = protocol.message_payload(
                    id=last_id,
                    sender=names[sender_id],
                    recipient=names[recipient_id],
                    text=text,
                    sent_at=_db_datetime(sent_at),
                )
            conversations.append((peer_name, last_id or 0, unread, last))
        cursor.execute(_sql(_GLOBAL_FIGURES_SQL), [user.pk])
        last_id, sender_id, text, sent_at, newest, sender_name, at_marker = cursor.fetchone()
    last = None
    if last_id is not None:
        last = protocol.message_payload(
            id=last_id,
            sender=sender_name,
            recipient=None,
            text=text,
            sent_at=_db_datetime(sent_at),
        )
    # ALL messages after the marker, less the user's own posts among them.
    global_unread = (newest or 0) - (at_marker or 0) - own_posts_unread
    conversations.append((protocol.GLOBAL_PEER, last_id or 0, global_unread, last))
    conversations.sort(key=lambda conversation: conversation[1], reverse=True)
    return [
        {"peer": peer, "last_message": last, "unread": unread}
        for peer, _, unread, last in conversations
    ]
