"""Conversation summaries: what the conversation list reads, kept with every write.

Computed from the messages, a user's conversation list grows with their history, and the
unread count of ALL with the whole table. So the writes keep what the list shows:

- a Conversation row per user and DM peer holds the newest message id and the unread count;
- every ALL message has an ordinal (Message.all_seq, 1, 2, 3, ... in id order), so the ALL
  messages after a read marker are the newest ordinal minus the ordinal at the marker: two
  index probes. The user's own posts among them, which are never unread, are counted in the
  user's ALL row (peer None).

Each change happens in the transaction of the write that causes it, under the message order
lock (services.py), which every writer of messages and read markers takes before any row.
While it is held no message is being inserted, so a recount sees every committed message and
no concurrent insert adds to a count the recount then overwrites. chat/models.py calls these
for every ORM write; conversations_rebuild() (also `manage.py chat_rebuild_conversations`)
recomputes everything after messages are written by SQL.
"""

from collections import Counter
from typing import Any

from django.db import connection, transaction

from .models import Conversation, Message, ReadMarker
from .selectors import posts_newest_first, sql_tables

# (id, sender id, recipient id) of a message.
MessageRow = tuple[int, int, int | None]
# Past this many deleted messages, recomputing everything set-based beats recounting each
# conversation they were part of (a retention job deleting a year of messages, say).
RECOUNT_LIMIT = 1000


def message_order_lock() -> None:
    """Take the message order lock until the transaction ends (a no-op on SQLite)."""
    from .services import _lock_message_order  # services.py imports this module

    _lock_message_order()


def all_seq_assign(*, messages: list[Message]) -> None:
    """Number the unsaved ALL messages among these after the newest stored one (lock held)."""
    posts = [message for message in messages if message.recipient_id is None]
    if not posts:
        return
    newest = posts_newest_first().values_list("all_seq", flat=True).first()
    for ordinal, post in enumerate(posts, start=(newest or 0) + 1):
        post.all_seq = ordinal


# The sender's row takes the newest id; the recipient's row also counts the message as unread:
# a new id is above every read marker, as markers never pass a stored message. {rows} is
# either VALUES or, on PostgreSQL, a SELECT from column arrays: one constant statement text,
# which psycopg parses once, where a VALUES list of a batch's 100-odd parameters was parsed
# again for every batch (0.1 ms of a batch of 14 DMs, on the thread every commit waits for).
_ADD_DIRECT = """
    INSERT INTO {conversation} (user_id, peer_id, last_id, unread, own_after_marker)
    {rows}
    ON CONFLICT (user_id, peer_id) DO UPDATE SET
        last_id = {greatest}({conversation}.last_id, excluded.last_id),
        unread = {conversation}.unread + excluded.unread
"""
_ADD_OWN_POSTS = """
    INSERT INTO {conversation} (user_id, peer_id, last_id, unread, own_after_marker)
    {rows}
    ON CONFLICT (user_id) WHERE peer_id IS NULL DO UPDATE SET
        own_after_marker = {conversation}.own_after_marker + excluded.own_after_marker
"""
_DIRECT_ARRAYS = """
    SELECT user_id, peer_id, last_id, unread, 0
    FROM unnest(%b::bigint[], %b::bigint[], %b::bigint[], %b::integer[])
        AS batch (user_id, peer_id, last_id, unread)
"""
_OWN_POSTS_ARRAYS = """
    SELECT user_id, NULL::bigint, 0, 0, own
    FROM unnest(%b::bigint[], %b::integer[]) AS batch (user_id, own)
"""


def _upsert(
    cursor: Any, statement: str, rows: list[tuple[int, ...]], *, arrays: str, row: str
) -> None:
    """Run an upsert of rows: from column arrays on PostgreSQL (sent in binary: the cursor is
    chat.postgresql's binary_cursor), from VALUES elsewhere."""
    if connection.vendor == "postgresql":
        cursor.execute(
            statement.format(greatest="GREATEST", rows=arrays, **sql_tables()),
            [list(column) for column in zip(*rows, strict=True)],
        )
        return
    cursor.execute(
        statement.format(
            greatest="MAX", rows="VALUES " + ", ".join([row] * len(rows)), **sql_tables()
        ),
        [value for values in rows for value in values],
    )


def conversations_add(*, messages: list[Message]) -> None:
    """Count newly stored messages into the summaries: one statement per kind (lock held)."""
    direct: dict[tuple[int, int], list[int]] = {}  # (user, peer) -> [last id, unread]
    own_posts: Counter[int] = Counter()
    for message in messages:
        sender, recipient = message.sender_id, message.recipient_id
        if recipient is None:
            own_posts[sender] += 1
            continue
        for key in ((sender, recipient), (recipient, sender)):
            row = direct.setdefault(key, [0, 0])
            row[0] = max(row[0], message.pk)
        if sender != recipient:
            direct[(recipient, sender)][1] += 1
    binary = connection.vendor == "postgresql"
    with connection.binary_cursor() if binary else connection.cursor() as cursor:
        if direct:
            _upsert(
                cursor,
                _ADD_DIRECT,
                [(user, peer, last, unread) for (user, peer), (last, unread) in direct.items()],
                arrays=_DIRECT_ARRAYS,
                row="(%s, %s, %s, %s, 0)",
            )
        if own_posts:
            _upsert(
                cursor,
                _ADD_OWN_POSTS,
                list(own_posts.items()),
                arrays=_OWN_POSTS_ARRAYS,
                row="(%s, NULL, 0, 0, %s)",
            )


def conversation_recount(*, user_id: int, peer_id: int | None) -> None:
    """Recompute one summary row from the messages after the read marker (lock held)."""
    markers = ReadMarker.objects.filter(user_id=user_id, peer_id=peer_id)
    marker = next(iter(markers.values_list("up_to", flat=True)[:1]), 0)
    rows = Conversation.objects.filter(user_id=user_id, peer_id=peer_id)
    if peer_id is None:
        own = Message.objects.filter(
            sender_id=user_id, recipient__isnull=True, id__gt=marker
        ).count()
        if own:
            Conversation.objects.update_or_create(
                user_id=user_id, peer_id=None, defaults={"own_after_marker": own}
            )
        else:
            rows.delete()
        return
    directions = [(user_id, peer_id), (peer_id, user_id)]
    newest = max(
        Message.objects.filter(sender_id=sender, recipient_id=recipient)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
        or 0
        for sender, recipient in directions
    )
    if not newest:
        rows.delete()
        return
    unread = (
        0
        if peer_id == user_id
        else Message.objects.filter(sender_id=peer_id, recipient_id=user_id, id__gt=marker).count()
    )
    Conversation.objects.update_or_create(
        user_id=user_id, peer_id=peer_id, defaults={"last_id": newest, "unread": unread}
    )


def messages_removed(*, rows: list[MessageRow]) -> None:
    """Correct the summaries and ALL ordinals after these messages were deleted (lock held).

    More than RECOUNT_LIMIT rows (the caller may stop listing there) rebuild everything.
    """
    if len(rows) > RECOUNT_LIMIT:
        conversations_rebuild()
        return
    first_post = min((id_ for id_, _, recipient in rows if recipient is None), default=None)
    if first_post is not None:
        all_seq_renumber(from_id=first_post)
    touched: set[tuple[int, int | None]] = set()
    for _, sender, recipient in rows:
        touched.add((sender, recipient))
        if recipient is not None:
            touched.add((recipient, sender))
    for user_id, peer_id in touched:
        conversation_recount(user_id=user_id, peer_id=peer_id)


_RENUMBER = """
    UPDATE {message} SET all_seq = numbered.all_seq
    FROM (
        SELECT id, %s + row_number() OVER (ORDER BY id) AS all_seq
        FROM {message}
        WHERE recipient_id IS NULL AND id >= %s
    ) AS numbered
    WHERE {message}.id = numbered.id
        AND ({message}.all_seq IS NULL OR {message}.all_seq <> numbered.all_seq)
"""


def all_seq_renumber(*, from_id: int = 0) -> None:
    """Renumber the ALL messages from id from_id on, after the ordinals before it (lock held).

    Reads every ALL message from from_id on and rewrites those whose ordinal changes.
    """
    before = posts_newest_first().filter(id__lt=from_id).values_list("all_seq", flat=True).first()
    with connection.cursor() as cursor:
        cursor.execute(_RENUMBER.format(**sql_tables()), [before or 0, from_id])


def conversations_rebuild() -> dict[str, int]:
    """Recompute every ALL ordinal and summary row from the messages and read markers.

    Set-based (a few statements, whatever the number of messages); run it after writing
    messages or read markers by SQL. Returns how many rows of each kind it wrote.
    """
    tables = sql_tables()
    with transaction.atomic(), connection.cursor() as cursor:
        message_order_lock()
        all_seq_renumber()
        cursor.execute(
            "UPDATE {message} SET all_seq = NULL "
            "WHERE recipient_id IS NOT NULL AND all_seq IS NOT NULL".format(**tables)
        )
        cursor.execute("DELETE FROM {conversation}".format(**tables))
        # Both sides of each DM: the sender's row takes the newest id, the recipient's row
        # also counts the messages after the recipient's read marker (none with oneself).
        # Inserted in the unique index's order, which halves the time of a large rebuild.
        cursor.execute(
            """
            INSERT INTO {conversation} (user_id, peer_id, last_id, unread, own_after_marker)
            SELECT user_id, peer_id, MAX(last_id), SUM(unread), 0
            FROM (
                SELECT sender_id AS user_id, recipient_id AS peer_id, MAX(id) AS last_id,
                       0 AS unread
                FROM {message}
                WHERE recipient_id IS NOT NULL
                GROUP BY sender_id, recipient_id
                UNION ALL
                SELECT received.recipient_id, received.sender_id, MAX(received.id),
                       SUM(CASE WHEN received.id > COALESCE(marker.up_to, 0) THEN 1 ELSE 0 END)
                FROM {message} AS received
                LEFT JOIN {marker} AS marker
                    ON marker.user_id = received.recipient_id
                    AND marker.peer_id = received.sender_id
                WHERE received.recipient_id IS NOT NULL
                    AND received.recipient_id <> received.sender_id
                GROUP BY received.recipient_id, received.sender_id
            ) AS sides
            GROUP BY user_id, peer_id
            ORDER BY user_id, peer_id
            """.format(**tables)
        )
        direct = cursor.rowcount
        cursor.execute(
            """
            INSERT INTO {conversation} (user_id, peer_id, last_id, unread, own_after_marker)
            SELECT post.sender_id, NULL, 0, 0, COUNT(*)
            FROM {message} AS post
            LEFT JOIN {marker} AS marker
                ON marker.user_id = post.sender_id AND marker.peer_id IS NULL
            WHERE post.recipient_id IS NULL AND post.id > COALESCE(marker.up_to, 0)
            GROUP BY post.sender_id
            """.format(**tables)
        )
        return {"direct": direct, "global": cursor.rowcount}
