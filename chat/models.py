"""Users, messages and read markers."""

from django.contrib.auth.models import AbstractUser
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.db import models
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


class User(AbstractUser):
    username = models.CharField(
        "username",
        max_length=150,
        unique=True,
        help_text="Required. 150 characters or fewer. Letters, digits and @/./+/-/_ only.",
        validators=[UnicodeUsernameValidator(), validate_not_reserved],
        error_messages={"unique": "A user with that username already exists."},
    )


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


class ReadMarker(models.Model):
    """How far a user has read one conversation; peer None is the global one."""

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
