"""Database fixtures for the benchmark, run by bench/run.py with the server's environment.

    python -m bench.fixtures users --prefix bench --count 1000 --out FILE
    python -m bench.fixtures history --prefix hist --users 10000 --messages 1000000
    python -m bench.fixtures explain --user hist00000 --peer hist00001 --out FILE

Users and their sessions go straight into the database in bulk (no log-in form per user).
"""

import argparse
import asyncio
import json
import os
import re
import sys
import time
from datetime import timedelta

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402
from django.contrib.sessions.models import Session  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402
from django.utils.crypto import get_random_string  # noqa: E402

from chat.models import User  # noqa: E402
from chat.summaries import conversations_rebuild  # noqa: E402

PASSWORD = "bench-password-not-secret"
BACKEND = "django.contrib.auth.backends.ModelBackend"


def username(prefix: str, index: int, width: int = 5) -> str:
    return f"{prefix}{index:0{width}d}"


def users_ensure(*, prefix: str, count: int) -> list[User]:
    """The users prefix00000..prefix{count-1}, created in one INSERT where missing."""
    names = [username(prefix, i) for i in range(count)]
    existing = set(User.objects.filter(username__in=names).values_list("username", flat=True))
    missing = [name for name in names if name not in existing]
    if missing:
        password = make_password(PASSWORD)
        User.objects.bulk_create(
            [User(username=name, password=password, is_active=True) for name in missing],
            batch_size=5000,
        )
    by_name = {user.username: user for user in User.objects.filter(username__in=names)}
    return [by_name[name] for name in names]


def sessions_create(users: list[User]) -> list[dict[str, str]]:
    """One logged-in session per user, written in one INSERT; returns their cookies."""
    store = SessionStore()
    expire = timezone.now() + timedelta(days=1)
    rows, cookies = [], []
    for user in users:
        key = get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789")
        data = {
            SESSION_KEY: str(user.pk),
            BACKEND_SESSION_KEY: BACKEND,
            HASH_SESSION_KEY: user.get_session_auth_hash(),
        }
        rows.append(Session(session_key=key, session_data=store.encode(data), expire_date=expire))
        cookies.append({"username": user.username, "cookie": key})
    Session.objects.bulk_create(rows, batch_size=5000)
    return cookies


def command_users(args: argparse.Namespace) -> None:
    users = users_ensure(prefix=args.prefix, count=args.count)
    Session.objects.filter(expire_date__lt=timezone.now()).delete()
    cookies = sessions_create(users)
    with open(args.out, "w") as out:
        json.dump({"cookie_name": settings.SESSION_COOKIE_NAME, "users": cookies}, out)


def command_history(args: argparse.Namespace) -> None:
    """Fill chat_message with `--messages` rows unless it already holds exactly that many."""
    users = users_ensure(prefix=args.prefix, count=args.users)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM chat_message")
        (count,) = cursor.fetchone()
        if count == args.messages:
            print(f"history: {count} messages already there, kept", file=sys.stderr)
            return
        started = time.monotonic()
        print(f"history: generating {args.messages} messages (once)...", file=sys.stderr)
        cursor.execute("TRUNCATE chat_message, chat_readmarker")
        cursor.execute("CREATE TEMP TABLE bench_users (idx int PRIMARY KEY, id bigint)")
        cursor.execute(
            "INSERT INTO bench_users SELECT * FROM unnest(%s::int[], %s::bigint[])",
            [list(range(len(users))), [user.pk for user in users]],
        )
        cursor.execute("SELECT setseed(0.42)")
        # Every tenth message goes to ALL, the rest are DMs. Senders are skewed (user 0 is the
        # busiest, about 1% of all DMs), and each user writes to about 50 nearby users, the
        # closest most often: a realistic mix of long and short conversations. Rows are
        # inserted in id order with sent_at growing one second per message.
        cursor.execute(
            """
            WITH g AS (
                SELECT i,
                       floor(random() ^ 2 * %(users)s)::int AS s,
                       floor(random() ^ 2 * 50)::int AS off
                FROM generate_series(1, %(messages)s) AS i
            )
            INSERT INTO chat_message (sender_id, recipient_id, text, sent_at, client_id)
            SELECT su.id,
                   CASE WHEN g.i %% 10 = 0 THEN NULL ELSE ru.id END,
                   'History message ' || g.i || ': the quick brown fox jumps over the lazy dog',
                   now() - make_interval(secs => (%(messages)s - g.i)),
                   NULL
            FROM g
            JOIN bench_users su ON su.idx = g.s
            JOIN bench_users ru ON ru.idx = (g.s + 1 + g.off) %% %(users)s
            ORDER BY g.i
            """,
            {"users": len(users), "messages": args.messages},
        )
    # Rows written by SQL: the ALL ordinals and conversation summaries are computed after.
    conversations_rebuild()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE chat_message, chat_conversation, chat_user")
    print(f"history: done in {time.monotonic() - started:.0f} s", file=sys.stderr)


def _sync_over_socket(*, session_key: str, after: int) -> int:
    from channels.testing import WebsocketCommunicator

    from chatsite.asgi import application

    async def run() -> int:
        communicator = WebsocketCommunicator(
            application,
            "/ws/chat/",
            headers=[
                (b"origin", b"http://127.0.0.1:8000"),
                (b"host", b"127.0.0.1:8000"),
                (b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_key}".encode()),
            ],
        )
        connected, _ = await communicator.connect(timeout=10)
        assert connected, "the socket was refused"
        hello = await communicator.receive_json_from(timeout=10)
        assert hello["type"] == "hello", hello
        await communicator.send_json_to({"type": "sync", "after": after})
        count = 0
        while True:
            frame = await communicator.receive_json_from(timeout=30)
            if frame["type"] == "message":
                count += 1
            elif frame["type"] == "synced":
                break
        await communicator.disconnect(timeout=10)
        return count

    return asyncio.run(run())


def command_explain(args: argparse.Namespace) -> None:
    """EXPLAIN ANALYZE every query on chat_message or chat_conversation the W4 reads run."""
    from django.db.backends.utils import CursorWrapper
    from django.test import Client

    user = User.objects.get(username=args.user)
    (session,) = sessions_create([user])
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = session["cookie"]
    statements: list[tuple[str, str, object]] = []
    label = ""
    original = CursorWrapper._execute

    # Patched on the class, not one connection: the socket's queries run in another thread.
    def recording(self, sql, params, *rest):
        statements.append((label, sql, params))
        return original(self, sql, params, *rest)

    CursorWrapper._execute = recording
    try:
        reads = {
            "history_dm": f"/api/messages/?peer={args.peer}",
            "history_all": "/api/messages/?peer=ALL",
            "conversations": "/api/conversations/",
        }
        for label, path in reads.items():  # noqa: B007 (read by recording)
            response = client.get(path, headers={"host": "127.0.0.1"})
            assert response.status_code == 200, (path, response.status_code)
        label = ""  # the harness's own query, not one of the reads
        with connection.cursor() as cursor:
            cursor.execute("SELECT max(id) FROM chat_message")
            (newest,) = cursor.fetchone()
        label = "sync"
        synced = _sync_over_socket(
            session_key=session["cookie"], after=max(0, (newest or 0) - args.sync_back)
        )
    finally:
        CursorWrapper._execute = original
    plans, seen = [], set()
    for read, sql, params in statements:
        if not read or not sql.lstrip().upper().startswith("SELECT"):
            continue
        if "chat_message" not in sql and "chat_conversation" not in sql:
            continue
        if (read, sql, repr(params)) in seen:
            continue
        seen.add((read, sql, repr(params)))
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        plans.append(
            {
                "read": read,
                "sql": _inline(sql, params),
                "plan": plan,
                "seq_scan_on_chat_message": "Seq Scan on chat_message" in plan,
                **plan_rows(plan),
            }
        )
    with open(args.out, "w") as out:
        json.dump({"plans": plans, "sync_messages": synced}, out)


_ACTUAL = re.compile(r"actual time=[0-9.]+\.\.[0-9.]+ rows=([0-9]+) loops=([0-9]+)")
_REMOVED = re.compile(r"Rows Removed by (?:Filter|Index Recheck|Join Filter): ([0-9]+)")


def plan_rows(plan: str) -> dict[str, int]:
    """Rows the plan read from chat_message (kept and filtered out) and rows it returned."""
    read = 0
    loops = 0
    in_message_node = False
    lines = plan.splitlines()
    for line in lines:
        actual = _ACTUAL.search(line)
        if actual:
            in_message_node = " on chat_message" in line
            if in_message_node:
                loops = int(actual.group(2))
                read += int(actual.group(1)) * loops
            continue
        removed = _REMOVED.search(line)
        if removed and in_message_node:
            read += int(removed.group(1)) * loops
    top = _ACTUAL.search(lines[0]) if lines else None
    return {"chat_message_rows_read": read, "rows_returned": int(top.group(1)) if top else 0}


def _inline(sql: str, params) -> str:
    if not params:
        return sql
    try:
        return sql % tuple(repr(p) for p in params)
    except (TypeError, ValueError):
        return f"{sql}  -- params {params!r}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fixtures")
    commands = parser.add_subparsers(dest="command", required=True)
    users = commands.add_parser("users")
    users.add_argument("--prefix", default="bench")
    users.add_argument("--count", type=int, required=True)
    users.add_argument("--out", required=True)
    history = commands.add_parser("history")
    history.add_argument("--prefix", default="hist")
    history.add_argument("--users", type=int, required=True)
    history.add_argument("--messages", type=int, required=True)
    explain = commands.add_parser("explain")
    explain.add_argument("--user", required=True)
    explain.add_argument("--peer", required=True)
    explain.add_argument("--sync-back", type=int, default=50000)
    explain.add_argument("--out", required=True)
    args = parser.parse_args()
    {"users": command_users, "history": command_history, "explain": command_explain}[args.command](
        args
    )


if __name__ == "__main__":
    main()
