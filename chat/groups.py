"""The only place channel-layer group names are made (ASCII, from primary keys)."""

GLOBAL_GROUP = "chat.all"


def user_group(user_id: int) -> str:
    """The group every connection of one user joins."""
    return f"chat.user.{int(user_id)}"
