"""Django's PostgreSQL backend, reading timestamps with psycopg's compiled parser.

Django registers a timestamptz loader of its own so that datetimes come back in its time zone.
It subclasses psycopg's pure-Python loader, which parses every value with a regular expression:
about 10 µs a value on a small machine, most of the cost of reading a page of 500 messages.
When Django's time zone for the connection is UTC (USE_TZ and no per-database TIME_ZONE), the
connection's session time zone is UTC too, and psycopg's compiled loader returns exactly what
Django's does: an aware datetime in `datetime.timezone.utc`. This backend registers that one.
Anything else keeps Django's loader.

It also gives the statements the chat writes for batches of column arrays a cursor that sends
their parameters to the server in binary (binary_cursor).
"""

import datetime
from typing import Any

import psycopg
from django.db.backends.postgresql import base, operations
from django.utils.asyncio import async_unsafe
from psycopg.adapt import AdaptersMap, Loader
from psycopg.postgres import types
from psycopg.pq import Format

TIMESTAMPTZ_OID = types["timestamptz"].oid
# The loader psycopg itself registers: compiled when psycopg's C extension is installed.
_PSYCOPG_LOADER = psycopg.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)


class UtcTimestamptzLoader(Loader):
    """psycopg's own timestamptz loader, with the `timezone` Django checks on each cursor."""

    # Django compares this with the connection's time zone and registers its own loader on
    # every cursor when they differ (chat.postgresql.base.DatabaseWrapper installs it only
    # when they are equal).
    timezone = datetime.UTC

    def __init__(self, oid: int, context: Any = None) -> None:
        super().__init__(oid, context)
        self._load = _PSYCOPG_LOADER(oid, context).load

    def load(self, data: Any) -> datetime.datetime:
        return self._load(data)


class DatabaseOperations(operations.DatabaseOperations):
    def last_executed_query(self, cursor: Any, sql: str, params: Any) -> str | None:
        """The statement with its values, as Django shows its own cursors' statements.

        A binary_cursor's statement reaches the server as $1, $2...; the debug log and
        captured queries (plans re-run in tests) get it with the values written in.
        """
        if not isinstance(cursor, psycopg.ClientCursor) and params:
            try:
                return psycopg.ClientCursor(cursor.connection).mogrify(sql, params)
            except psycopg.Error:
                pass  # Django's own answer: the statement as sent, $1, $2...
        return super().last_executed_query(cursor, sql, params)


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations

    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        if self.timezone is datetime.UTC and "context" in params:
            # A copy: Django's map is shared by every connection of every alias.
            context = AdaptersMap(params["context"])
            context.register_loader(TIMESTAMPTZ_OID, UtcTimestamptzLoader)
            params["context"] = context
        return params

    @async_unsafe
    def binary_cursor(self) -> Any:
        """A cursor for statements whose parameters are written %b: sent in binary, apart
        from the statement's text.

        Django's cursors bind on the client: psycopg quotes each parameter into the text of
        the statement, in Python, element by element for an array. A batch of 14 DMs' column
        arrays cost 370-395 µs of CPU that way and 172-204 µs in binary, on the thread every
        commit waits for. The cursor is wrapped as Django wraps its own (errors as Django's,
        the debug log, execute wrappers).
        """
        self.close_if_health_check_failed()
        self.ensure_connection()
        with self.wrap_database_errors:
            return self._prepare_cursor(psycopg.Cursor(self.connection))
