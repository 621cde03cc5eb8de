"""The only place channel-layer group names are made (ASCII, from primary keys)."""

import hashlib

GLOBAL_GROUP = "chat.all"


def user_group(user_id: int) -> str:
    """The group every connection of one user joins."""
    return f"chat.user.{int(user_id)}"


def session_group(session_key: str) -> str:
    """The group of one login session's sockets (hashed: session keys stay out of Redis)."""
    return f"chat.session.{hashlib.sha256(session_key.encode()).hexdigest()[:32]}"
