"""Logging filters."""

import logging


class CapacityDropsAsWarnings(logging.Filter):
    """Raise channels_redis's "over capacity" INFO lines to WARNING and drop its other INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        if "over capacity" in record.getMessage():
            record.levelno = logging.WARNING
            record.levelname = logging.getLevelName(logging.WARNING)
            return True
        return False
