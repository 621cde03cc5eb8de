"""Close sockets when what they were opened with stops being true.

Channels reads the user once, at the handshake (django/channels#1324): without these, a
deactivated or logged-out user would keep chatting on sockets already open.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from . import selectors, services
from .models import User
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
