"""Reads are served by indexes: no query scans a table that grows with the messages."""

import asyncio
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat import selectors
from chat.models import Message, ReadMarker

pytestmark = pytest.mark.django_db(transaction=True)

# The tables that grow with the messages and the users: the messages themselves, read markers
# and the conversation summaries.
GROWING_TABLES = ("chat_message", "chat_readmarker", "chat_conversation")


def _postgres_full_scans(plan: dict) -> list[str]:
    """Scan nodes on a growing table that no index condition bounds."""
    found = []
    if plan.get("Relation Name") in GROWING_TABLES and "Scan" in plan["Node Type"]:
        bounded = "Index Cond" in plan or plan["Node Type"] == "Bitmap Heap Scan"
        if not bounded:
            found.append(f"{plan['Node Type']} {plan.get('Index Name', '')}".strip())
    if plan["Node Type"] == "Bitmap Index Scan" and "Index Cond" not in plan:
        found.append(f"Bitmap Index Scan {plan['Index Name']}")
    for child in plan.get("Plans", []):
        found.extend(_postgres_full_scans(child))
    return found


def full_scans(sql: str) -> list[str]:
    """The plan steps that read a whole growing table or a whole index of one."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Forbid sequential scans, so that only a query no index can bound shows one
            # (as a Seq Scan or as an Index Scan without an Index Cond).
            cursor.execute("SET enable_seqscan = off")
            cursor.execute("EXPLAIN (FORMAT JSON) " + sql)
            [[[plan]]] = cursor.fetchall()
            cursor.execute("RESET enable_seqscan")
            return _postgres_full_scans(plan["Plan"])
        cursor.execute("EXPLAIN QUERY PLAN " + sql)
        lines = [row[-1] for row in cursor.fetchall()]
        tables = "|".join(GROWING_TABLES)
        return [line for line in lines if re.match(rf"SCAN ({tables}|U0|T\d)\b", line)]


def assert_indexed(run) -> None:
    with CaptureQueriesContext(connection) as captured:
        run()
    assert captured.captured_queries
    for query in captured.captured_queries:
        sql = query["sql"]
        if not any(table in sql for table in GROWING_TABLES):
            continue
        # Re-run each captured statement's plan; the captured SQL has its values inlined.
        scans = full_scans(sql)
        assert not scans, f"{sql}\n{scans}"


@pytest.fixture
def history(alice, bob, carol, send):
    for i in range(30):
        send(alice, bob, f"dm {i}")
        send(bob, alice, f"reply {i}")
        send(carol, None, f"post {i}")
        send(carol, bob, f"other {i}")


def test_history_pages_use_indexes(history, alice, bob):
    assert_indexed(
        lambda: selectors.message_history_list(user=alice, peer=bob, before=50, limit=10)
    )
    assert_indexed(
        lambda: selectors.message_history_list(user=alice, peer=None, before=None, limit=10)
    )


def test_sync_and_last_id_use_indexes(history, alice):
    assert_indexed(lambda: selectors.message_sync_list(user_id=alice.pk, after=20))
    assert_indexed(lambda: selectors.message_last_visible_id(user_id=alice.pk))


def test_last_ids_of_many_users_read_together_match_each_read_alone(
    alice, bob, carol, make_user, send
):
    dave = make_user("dave")  # sees only the posts to everyone
    send(alice, bob, "dm")
    send(carol, None, "post")
    send(bob, alice, "reply")
    send(carol, bob, "newest, only carol and bob see it")
    users = [alice.pk, bob.pk, carol.pk, dave.pk, alice.pk]
    alone = [selectors.message_last_visible_id(user_id=user_id) for user_id in users]
    assert selectors.message_last_visible_ids(users) == alone
    assert alone[0] < alone[1] == alone[2] and alone[3] < alone[0] and alone[4] == alone[0]
    assert selectors.message_last_visible_ids([]) == []


def test_last_ids_with_no_messages_are_zero(alice, bob):
    assert selectors.message_last_visible_ids([alice.pk, bob.pk]) == [0, 0]


def test_last_ids_of_many_users_use_indexes(history, alice, bob, carol):
    assert_indexed(lambda: selectors.message_last_visible_ids([alice.pk, bob.pk, carol.pk]))


def test_conversation_list_uses_indexes(history, alice):
    assert_indexed(lambda: selectors.conversation_list(user=alice))


def test_conversation_list_uses_indexes_with_read_markers(history, alice, bob):
    last = Message.objects.order_by("-id").first().id
    ReadMarker.objects.create(user=alice, peer=bob, up_to=last - 20)
    ReadMarker.objects.create(user=alice, peer=None, up_to=last - 10)
    assert_indexed(lambda: selectors.conversation_list(user=alice))


def plan_text(sql: str) -> str:
    with connection.cursor() as cursor:
        prefix = "EXPLAIN " if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN "
        cursor.execute(prefix + sql)
        return "\n".join(str(row[-1]) for row in cursor.fetchall())


def test_looking_up_resent_client_ids_probes_only_those_keys(make_user, bob):
    # Statistics gathered when each sender had a few messages, then thousands more (as after
    # a bulk load): the lookup must still go straight to the (sender, client id) keys instead
    # of reading every message of those senders.
    senders = [make_user(f"sender{n}") for n in range(14)]

    def write(count: int, start: int) -> None:
        Message.objects.bulk_create(
            Message(sender=sender, recipient=bob, text="x", client_id=f"{sender.pk}-{n}")
            for sender in senders
            for n in range(start, start + count)
        )

    write(5, 0)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE chat_message")
    write(400, 5)
    keys = {(sender.pk, f"new-{sender.pk}") for sender in senders} | {
        (senders[0].pk, f"{senders[0].pk}-7")
    }
    with CaptureQueriesContext(connection) as captured:
        found = selectors.messages_by_client_id(keys=keys)
    assert set(found) == {(senders[0].pk, f"{senders[0].pk}-7")}
    lookup = next(q["sql"] for q in captured if "client_id" in q["sql"].split("WHERE")[1])
    plan = plan_text(lookup)
    assert "message_unique_sender_client_id" in plan, plan
    assert "message_pair_id" not in plan and "message_sender_id" not in plan, plan


def pooled_connections_in_use() -> int:
    """Connections taken from PostgreSQL's pool and not given back (0 on SQLite: no pool)."""
    from django.db import connections

    pool = getattr(connections["default"], "pool", None)
    if pool is None:
        return 0
    stats = pool.get_stats()
    return stats["pool_size"] - stats["pool_available"]


def test_sockets_in_fresh_event_loops_give_their_database_connections_back(alice):
    from channels.testing import WebsocketCommunicator

    from chat.runtime import get_runtime
    from chatsite.asgi import application
    from tests.conftest import session_cookie, socket_headers

    async def open_and_close() -> None:
        cookie = await session_cookie(alice)
        for _ in range(2):
            socket = WebsocketCommunicator(
                application, "/ws/chat/", headers=socket_headers(cookie=cookie)
            )
            assert (await socket.connect(timeout=5))[0]
            assert (await socket.receive_json_from(timeout=5))["type"] == "hello"
            await socket.disconnect()
        await get_runtime().stop()

    in_use = pooled_connections_in_use()
    # Each server process, and each test, runs its own event loop with its own pool of threads.
    for _ in range(3):
        asyncio.run(open_and_close())
    # A connection left open would be held for good: 20 of them exhaust PostgreSQL's pool.
    # (Fewer is fine: one an earlier test's thread held may have gone back meanwhile.)
    assert pooled_connections_in_use() <= in_use
