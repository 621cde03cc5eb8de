"""Close sockets when what they were opened with stops being true; keep ALL's ordinals exact.

Channels reads the user once, at the handshake (django/channels#1324): without these, a
deactivated or logged-out user would keep chatting on sockets already open.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_delete
from django.dispatch import receiver

from . import selectors, services, summaries
from .models import Message, User
from .protocol import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED

# Set while a view changes the password of the session it serves: that view rechecks the
# sockets itself, knowing which session lives on.
_password_change_handled = ContextVar("password_change_handled", default=False)


@contextmanager
def password_change_handled_by_caller() -> Iterator[None]:
    token = _password_change_handled.set(True)
    try:
        yield
    finally:
        _password_change_handled.reset(token)


@receiver(post_save, sender=User, dispatch_uid="chat.user_saved")
def user_saved(sender: type[User], instance: User, created: bool, **kwargs: Any) -> None:
    selectors.user_active_id_forget(username=instance.get_username())
    if created:
        return
    user_id = instance.pk
    if not instance.is_active:
        transaction.on_commit(
            lambda: services.sockets_close_for_user(user_id=user_id, code=CLOSE_FORBIDDEN)
        )
    # set_password() keeps the raw password in _password until the save completes.
    elif getattr(instance, "_password", None) is not None and not _password_change_handled.get():
        transaction.on_commit(lambda: services.sockets_recheck_sessions(user_id=user_id))


@receiver(user_logged_out, dispatch_uid="chat.user_logged_out")
def user_logged_out_close_sockets(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if session_key:
        services.sockets_close_for_session(session_key=session_key, code=CLOSE_UNAUTHENTICATED)


# Deleting a user deletes their messages in one statement each (the cascade), which leaves
# gaps in the ordinals of ALL messages that would inflate everyone's unread count of ALL.
# Their summaries go with them (the same cascade), and other users' rows with them as peer.


@receiver(pre_delete, sender=User, dispatch_uid="chat.user_deleting")
def user_deleting(sender: type[User], instance: User, **kwargs: Any) -> None:
    # The lock before the cascade deletes any row, as every writer of messages takes it.
    summaries.message_order_lock()
    instance._first_global_post = (  # type: ignore[attr-defined]
        Message.objects.filter(sender=instance, recipient__isnull=True)
        .order_by("id")
        .values_list("id", flat=True)
        .first()
    )


@receiver(post_delete, sender=User, dispatch_uid="chat.user_deleted")
def user_deleted(sender: type[User], instance: User, **kwargs: Any) -> None:
    first_global_post = getattr(instance, "_first_global_post", None)
    if first_global_post is not None:
        summaries.all_seq_renumber(from_id=first_global_post)
