"""Users, messages, read markers and the conversation summaries kept from them."""

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import AbstractUser
from django.contrib.auth.models import UserManager as DjangoUserManager
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.db import connections, models, transaction
from django.db.models import Q
from django.utils import timezone

GLOBAL_PEER = "ALL"


def validate_not_reserved(value: str) -> None:
    """Refuse the username ALL in any case: it names the global conversation."""
    if value.casefold() == GLOBAL_PEER.casefold():
        raise ValidationError(
            "The username %(value)s is reserved for the conversation with everyone; "
            "choose another.",
            code="reserved",
            params={"value": value},
        )


class UserManager(DjangoUserManager):
    # (model, database alias) -> what _by_pk builds
    _by_pk_cache: dict[tuple[type, str], tuple[str, list[tuple[int, Any, Any]]]] = {}

    def get(self, *args: Any, **kwargs: Any) -> "User":
        """`User.objects.get(pk=...)` in one plain statement; any other lookup as Django does."""
        # Django's auth backend loads every request's and every handshake's user this way:
        # building the ORM query cost about 0.6 ms, this statement about 0.2 ms.
        if args or kwargs.keys() != {"pk"}:
            return super().get(*args, **kwargs)
        users = self._by_pks([kwargs["pk"]])
        if not users:
            meta = self.model._meta
            raise self.model.DoesNotExist(f"{meta.object_name} matching query does not exist.")
        return users[0]

    def in_bulk(self, id_list: Any = None, *, field_name: str = "pk") -> dict[Any, "User"]:
        """`User.objects.in_bulk(ids)` in one plain statement; anything else as Django does."""
        # The users of the sockets that open together (chat.socket_auth), often just one.
        if id_list is None or field_name != "pk":
            return super().in_bulk(id_list, field_name=field_name)
        return {user.pk: user for user in self._by_pks(list(id_list))} if id_list else {}

    def _by_pks(self, pks: list[Any]) -> list["User"]:
        meta = self.model._meta
        connection = connections[self.db]
        select, converters = self._by_pk(connection)
        with connection.cursor() as cursor:
            cursor.execute(
                f"{select} = %s"
                if len(pks) == 1
                else f"{select} IN ({', '.join(['%s'] * len(pks))})",
                [meta.pk.get_prep_value(pk) for pk in pks],
            )
            rows = cursor.fetchall()
        attnames = [field.attname for field in meta.concrete_fields]
        users = []
        for row in rows:
            values = list(row)
            for index, column, convert in converters:
                values[index] = convert(values[index], column, connection)
            users.append(self.model.from_db(self.db, attnames, values))
        return users

    def _by_pk(self, connection: Any) -> tuple[str, list[tuple[int, Any, Any]]]:
        """The statement up to its primary key condition, and the ORM's converters of its
        columns, built once per database."""
        # The converters turn SQLite's text datetimes and integer booleans into Python values.
        key = (self.model, connection.alias)
        cached = self._by_pk_cache.get(key)
        if cached is None:
            meta = self.model._meta
            quote = connection.ops.quote_name
            fields = meta.concrete_fields
            select = (
                f"SELECT {', '.join(quote(field.column) for field in fields)} "
                f"FROM {quote(meta.db_table)} WHERE {quote(meta.pk.column)}"
            )
            converters = []
            for index, field in enumerate(fields):
                column = field.get_col(meta.db_table)
                for convert in connection.ops.get_db_converters(column) + column.get_db_converters(
                    connection
                ):
                    converters.append((index, column, convert))
            cached = self._by_pk_cache[key] = (select, converters)
        return cached


class User(AbstractUser):
    objects = UserManager()

    username = models.CharField(
        "username",
        max_length=150,
        unique=True,
        help_text="Required. 150 characters or fewer. Letters, digits and @/./+/-/_ only.",
        validators=[UnicodeUsernameValidator(), validate_not_reserved],
        error_messages={"unique": "A user with that username already exists."},
    )


# Every way the ORM writes messages or read markers keeps the summaries of chat/summaries.py
# in the same transaction, under the message order lock; summaries.py imports this module,
# so these methods import it when they run.


class MessageQuerySet(models.QuerySet):
    def bulk_create(
        self, objs: Iterable["Message"], *args: Any, order_locked: bool = False, **kwargs: Any
    ) -> list["Message"]:
        """Insert messages; ALL messages get their ordinals and the summaries count them.

        order_locked: the caller's transaction holds the message order lock already (taking
        it again would cost a round trip per batch on the path of every message).
        """
        from . import summaries

        if kwargs.get("ignore_conflicts") or kwargs.get("update_conflicts"):
            raise ValueError(
                "Message.objects.bulk_create() cannot skip or update conflicting rows: the "
                "conversation summaries must count exactly the rows inserted."
            )
        objs = list(objs)
        with transaction.atomic(using=self.db, savepoint=False):
            if not order_locked:
                summaries.message_order_lock()
            summaries.all_seq_assign(messages=objs)
            connection = connections[self.db]
            plain = not args and not kwargs and all(obj.pk is None for obj in objs)
            if connection.vendor == "postgresql" and plain and objs:
                created = _insert_unnest(objs, connection=connection)
            else:
                created = super().bulk_create(objs, *args, **kwargs)
            summaries.conversations_add(messages=created)
        return created

    def delete(self) -> tuple[int, dict[str, int]]:
        """Delete messages and correct the summaries and ALL ordinals they were part of."""
        from . import summaries

        with transaction.atomic(using=self.db, savepoint=False):
            summaries.message_order_lock()
            # Past the limit the summaries are rebuilt: no need to list every row.
            listed = self.values_list("id", "sender_id", "recipient_id")
            removed = list(listed[: summaries.RECOUNT_LIMIT + 1])
            deleted = super().delete()
            summaries.messages_removed(rows=removed)
        return deleted


# Every column of chat_message but id, with its PostgreSQL type, in the order _insert_unnest
# inserts them (tests check that it names every field).
MESSAGE_INSERT_COLUMNS = (
    ("sender_id", "bigint"),
    ("recipient_id", "bigint"),
    ("text", "text"),
    ("sent_at", "timestamptz"),
    ("client_id", "varchar"),
    ("all_seq", "bigint"),
)


def _insert_unnest(objs: list["Message"], *, connection: Any) -> list["Message"]:
    """Insert new messages in one constant statement of column arrays; set their ids."""
    # Django 5.2 inserts through UNNEST too, but builds the statement and prepares every
    # value field by field for each batch: about 0.7 ms of a batch of 14 DMs, on the thread
    # every DM's commit waits for. These values need no preparing.
    # The arrays go to the server in binary (chat.postgresql's binary_cursor).
    quote = connection.ops.quote_name
    names = ", ".join(quote(name) for name, _ in MESSAGE_INSERT_COLUMNS)
    arrays = ", ".join(f"%b::{kind}[]" for _, kind in MESSAGE_INSERT_COLUMNS)
    with connection.binary_cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(Message._meta.db_table)} ({names}) "
            f"SELECT * FROM unnest({arrays}) RETURNING id",
            [[getattr(obj, name) for obj in objs] for name, _ in MESSAGE_INSERT_COLUMNS],
        )
        ids = [row[0] for row in cursor.fetchall()]
    for obj, pk in zip(objs, ids, strict=True):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = connection.alias
    return objs


class Message(models.Model):
    """One chat message; recipient None means the global conversation (ALL)."""

    # No single-column indexes: the composite ones below start with these columns.
    sender = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="sent_messages", db_index=False
    )
    recipient = models.ForeignKey(
        User,
        on_delete=models.CASCADE,
        related_name="received_messages",
        db_index=False,
        null=True,
        blank=True,
        help_text="Empty for a message to everyone.",
    )
    text = models.TextField()
    sent_at = models.DateTimeField(default=timezone.now)
    # NULL, not "", when absent: the unique (sender, client_id) constraint skips NULLs.
    client_id = models.CharField(max_length=64, null=True, blank=True, editable=False)  # noqa: DJ001
    # 1, 2, 3, ... over ALL messages in id order, NULL for DMs: the ALL messages after a read
    # marker are the newest ordinal minus the ordinal at the marker, two index probes.
    all_seq = models.BigIntegerField(null=True, blank=True, editable=False)

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["sender", "client_id"],
                condition=Q(client_id__isnull=False),
                name="message_unique_sender_client_id",
            ),
        ]
        indexes = [
            # Global history, inbound DMs and the inbound part of sync: recipient, then id.
            models.Index(fields=["recipient", "id"], name="message_recipient_id"),
            # Outbound part of sync and last_id: sender, then id.
            models.Index(fields=["sender", "id"], name="message_sender_id"),
            # One direction of a DM conversation, newest first.
            models.Index(fields=["sender", "recipient", "id"], name="message_pair_id"),
        ]

    def __str__(self) -> str:
        return f"{self.sender_id} -> {self.recipient_id or GLOBAL_PEER}: {self.text[:40]}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save; a new message gets its ALL ordinal and the summaries count it."""
        if not self._state.adding:
            # Sender and recipient never change once stored (the admin shows them read-only),
            # so an edit leaves the summaries as they are.
            super().save(*args, **kwargs)
            return
        from . import summaries

        with transaction.atomic():
            summaries.message_order_lock()
            summaries.all_seq_assign(messages=[self])
            super().save(*args, **kwargs)
            summaries.conversations_add(messages=[self])

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        """Delete; the summaries and ALL ordinals it was part of are corrected."""
        from . import summaries

        with transaction.atomic():
            summaries.message_order_lock()
            removed = [(self.pk, self.sender_id, self.recipient_id)]
            deleted = super().delete(*args, **kwargs)
            summaries.messages_removed(rows=removed)
        return deleted


class ReadMarker(models.Model):
    """How far a user has read one conversation; peer None is the global one.

    Move it with save() or services' read marking: both recount the conversation's summary.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="read_markers")
    peer = models.ForeignKey(User, on_delete=models.CASCADE, null=True, related_name="+")
    up_to = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "peer"],
                condition=Q(peer__isnull=False),
                name="readmarker_unique_user_peer",
            ),
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(peer__isnull=True),
                name="readmarker_unique_user_global",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} read {self.peer_id or GLOBAL_PEER} up to {self.up_to}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save; the conversation's unread count is recounted in the same transaction."""
        from . import summaries

        with transaction.atomic():
            summaries.message_order_lock()
            super().save(*args, **kwargs)
            summaries.conversation_recount(user_id=self.user_id, peer_id=self.peer_id)


class Conversation(models.Model):
    """One line of a user's conversation list, kept with every write (chat/summaries.py).

    A DM row (peer set) exists while the conversation holds a message: its newest message id,
    either way, and how many of the peer's messages are after the user's read marker (0 with
    oneself). The ALL row (peer None) exists while the user has posted to ALL after their ALL
    read marker, and counts those posts, which the unread count of ALL leaves out.
    """

    # No index on user alone: the unique (user, peer) index starts with it.
    user = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="conversations", db_index=False
    )
    peer = models.ForeignKey(User, on_delete=models.CASCADE, null=True, related_name="+")
    last_id = models.BigIntegerField(default=0)
    unread = models.IntegerField(default=0)
    own_after_marker = models.IntegerField(default=0)

    class Meta:
        constraints = [
            # Not partial: besides the upsert of DM rows it serves the read of a user's rows.
            models.UniqueConstraint(fields=["user", "peer"], name="conversation_unique_user_peer"),
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(peer__isnull=True),
                name="conversation_unique_user_global",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} with {self.peer_id or GLOBAL_PEER}: {self.unread} unread"
