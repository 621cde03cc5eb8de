"""manage.py chat_rebuild_conversations: recompute the conversation summaries from the messages."""

from typing import Any

from django.core.management.base import BaseCommand

from chat.summaries import conversations_rebuild


class Command(BaseCommand):
    help = (
        "Recompute every conversation summary and ALL ordinal from the messages and read "
        "markers. Run it after writing messages or read markers by SQL."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        written = conversations_rebuild()
        self.stdout.write(
            f"Rebuilt {written['direct']} direct-message summaries and "
            f"{written['global']} summaries of own posts to ALL."
        )
