"""Conversation summaries: every write keeps the conversation list exact, and cheap to read."""

import random
import threading
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from chat import selectors, services, summaries
from chat.exceptions import NotFound
from chat.models import Conversation, Message, ReadMarker, User
from chat.summaries import conversations_rebuild
from tests.test_selectors import assert_indexed

pytestmark = pytest.mark.django_db(transaction=True)


def request(sender: User, recipient: str, text: str = "hi", client_id: str | None = None) -> Any:
    return services._ToStore(
        sender=sender, recipient_name=recipient, text=text, client_id=client_id
    )


def store(*requests: Any) -> list[int | None]:
    """Store one batch; the id of each message (the first one's for a resend), None if refused."""
    return [
        None if isinstance(result, Exception) else result.payload["id"]
        for result in services._messages_store(list(requests))
    ]


def mark(user: User, peer: str, up_to: int) -> bool:
    return services._read_mark(user=user, peer_name=peer, up_to=up_to).moved


def unread(user: User) -> dict[str, int]:
    return {row["peer"]: row["unread"] for row in selectors.conversation_list(user=user)}


def listed(user: User) -> list[tuple[str, int | None, int]]:
    """(peer, last message id, unread) of each conversation, as the list shows them."""
    return [
        (row["peer"], row["last_message"]["id"] if row["last_message"] else None, row["unread"])
        for row in selectors.conversation_list(user=user)
    ]


def listed_from_scratch(user: User) -> list[tuple[str, int | None, int]]:
    """The same, computed from every message and read marker, newest conversation first."""
    markers = dict(ReadMarker.objects.filter(user=user).values_list("peer_id", "up_to"))
    lines: dict[int | None, list[int]] = {None: [0, 0]}
    for message in Message.objects.order_by("id"):
        if message.recipient_id is None:
            peer = None
        elif user.pk in (message.sender_id, message.recipient_id):
            peer = message.recipient_id if message.sender_id == user.pk else message.sender_id
        else:
            continue
        line = lines.setdefault(peer, [0, 0])
        line[0] = message.id
        if message.sender_id != user.pk and message.id > markers.get(peer, 0):
            line[1] += 1
    names = dict(User.objects.values_list("id", "username"))
    ordered = sorted(lines.items(), key=lambda item: item[1][0], reverse=True)
    return [
        ("ALL" if peer is None else names[peer], last or None, count)
        for peer, (last, count) in ordered
    ]


def summaries_state() -> tuple[set[tuple], list[tuple[int, int | None]]]:
    rows = set(
        Conversation.objects.values_list(
            "user_id", "peer_id", "last_id", "unread", "own_after_marker"
        )
    )
    return rows, list(Message.objects.order_by("id").values_list("id", "all_seq"))


# Unread counts


def test_unread_counts_each_peers_messages_and_never_ones_own(alice, bob, carol):
    store(request(bob, "alice"), request(bob, "alice"), request(carol, "alice"))
    store(request(alice, "bob"))
    assert unread(alice) == {"bob": 2, "carol": 1, "ALL": 0}
    assert unread(bob) == {"alice": 1, "ALL": 0}
    assert unread(carol) == {"alice": 0, "ALL": 0}


def test_a_batch_with_several_messages_to_one_peer_counts_each_and_keeps_the_newest(
    alice, bob, carol
):
    ids = store(
        request(bob, "alice", "one"),
        request(carol, "alice"),
        request(bob, "alice", "three"),
        request(bob, "alice", "four"),
        request(alice, "bob", "five"),
    )
    assert listed(alice) == [("bob", ids[4], 3), ("carol", ids[1], 1), ("ALL", None, 0)]
    assert listed(bob) == [("alice", ids[4], 1), ("ALL", None, 0)]


def test_a_big_batch_is_counted_with_one_statement_per_kind_whose_text_is_fixed_on_postgresql(
    make_user,
):
    """PostgreSQL gets column arrays: one statement text, parsed once, whatever the batch."""
    users = [make_user(f"user{number}") for number in range(40)]
    statements: list[str] = []

    def capture(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.lstrip().startswith("INSERT INTO") and "conversation" in sql:
            statements.append(sql)
        return execute(sql, params, many, context)

    for size in (2, 39):
        with connection.execute_wrapper(capture):
            store(
                *[request(users[0], users[n].username) for n in range(1, size + 1)],
                *[request(user, "ALL") for user in users[:size]],
            )
    assert len(statements) == 4
    fixed = connection.vendor == "postgresql"
    assert (statements[0] == statements[2]) is fixed
    assert (statements[1] == statements[3]) is fixed
    assert unread(users[1]) == {"user0": 2, "ALL": 1 + 38}
    assert unread(users[39]) == {"user0": 1, "ALL": 2 + 39}
    assert (
        dict(Conversation.objects.filter(peer=None).values_list("user_id", "own_after_marker"))[
            users[0].pk
        ]
        == 2
    )


def test_notes_to_self_are_listed_once_and_never_unread(alice):
    ids = store(request(alice, "alice"), request(alice, "alice"))
    assert listed(alice) == [("alice", ids[1], 0), ("ALL", None, 0)]
    assert Conversation.objects.filter(user=alice).count() == 1


def test_own_posts_to_all_are_never_unread_before_or_after_the_read_marker(alice, bob, carol):
    first = store(request(bob, "ALL"), request(alice, "ALL"), request(carol, "ALL"))
    assert unread(alice)["ALL"] == 2
    assert mark(alice, "ALL", first[1])
    assert unread(alice)["ALL"] == 1
    store(request(alice, "ALL"), request(bob, "ALL"), request(alice, "ALL"))
    assert unread(alice)["ALL"] == 2
    assert unread(bob)["ALL"] == 4
    assert unread(carol)["ALL"] == 5


def test_moving_a_read_marker_forward_recounts_and_it_never_moves_back(alice, bob):
    ids = store(*(request(bob, "alice", f"m{n}") for n in range(5)))
    assert mark(alice, "bob", ids[2])
    assert unread(alice)["bob"] == 2
    assert not mark(alice, "bob", ids[0])
    assert unread(alice)["bob"] == 2
    assert mark(alice, "bob", ids[4] + 100)  # stops at the newest message
    assert unread(alice)["bob"] == 0
    store(request(bob, "alice"))
    assert unread(alice)["bob"] == 1


def test_a_read_marker_saved_directly_recounts_even_backwards(alice, bob, carol):
    ids = store(*(request(bob, "alice") for _ in range(4)), request(carol, "ALL"))
    marker = ReadMarker.objects.create(user=alice, peer=bob, up_to=ids[2])
    assert unread(alice)["bob"] == 1
    marker.up_to = ids[0]
    marker.save()
    assert unread(alice)["bob"] == 3
    ReadMarker.objects.create(user=alice, peer=None, up_to=ids[4])
    assert unread(alice)["ALL"] == 0


def test_a_resend_is_counted_once(alice, bob):
    store(request(bob, "alice", client_id="k"), request(bob, "alice", client_id="k"))
    store(request(bob, "alice", client_id="k"))
    again = services._message_store_one(request(bob, "alice", client_id="k"))
    store(request(bob, "ALL", client_id="p"))
    store(request(bob, "ALL", client_id="p"))
    assert not again.created
    assert unread(alice) == {"ALL": 1, "bob": 1}
    assert list(Message.objects.filter(recipient=None).values_list("all_seq", flat=True)) == [1]


def test_a_deactivated_peers_messages_stay_listed_and_unread(alice, make_user):
    dave = make_user("dave")
    ids = store(request(dave, "alice"), request(dave, "alice"))
    dave.is_active = False
    dave.save()
    assert unread(alice) == {"dave": 2, "ALL": 0}
    [refused] = services._messages_store([request(alice, "dave")])
    assert isinstance(refused, NotFound)
    assert mark(alice, "dave", ids[1])
    assert listed(alice) == [("dave", ids[1], 0), ("ALL", None, 0)]


def test_messages_stored_through_the_orm_are_counted_too(alice, bob, send):
    send(bob, alice)
    post = send(bob, None)
    Message.objects.bulk_create([Message(sender=bob, recipient=alice, text="bulk")])
    assert unread(alice) == {"bob": 2, "ALL": 1}
    assert post.all_seq == 1


def test_bulk_create_refuses_to_skip_conflicting_rows(alice, bob):
    with pytest.raises(ValueError, match="summaries"):
        Message.objects.bulk_create(
            [Message(sender=alice, recipient=bob, text="x")], ignore_conflicts=True
        )


# Deletes


def test_deleting_a_user_keeps_the_unread_count_of_all_exact(alice, bob, carol):
    posts = store(
        request(bob, "ALL"),
        request(carol, "ALL"),
        request(bob, "ALL"),
        request(alice, "ALL"),
        request(carol, "ALL"),
        request(bob, "ALL"),
    )
    assert mark(alice, "ALL", posts[1])
    assert unread(alice)["ALL"] == 3
    bob.delete()
    assert unread(alice)["ALL"] == 1
    assert unread(carol)["ALL"] == 1
    store(request(carol, "ALL"))
    assert unread(alice)["ALL"] == 2
    assert list(Message.objects.filter(recipient=None).values_list("all_seq", flat=True)) == [
        1,
        2,
        3,
        4,
    ]


def test_deleting_a_user_removes_their_conversations_from_every_list(alice, bob, carol):
    store(request(bob, "alice"), request(alice, "bob"), request(carol, "alice"))
    store(request(bob, "bob"))
    bob.delete()
    assert [peer for peer, _, _ in listed(alice)] == ["carol", "ALL"]
    assert set(Conversation.objects.values_list("user__username", "peer__username")) == {
        ("alice", "carol"),
        ("carol", "alice"),
    }


def test_deleting_messages_keeps_the_last_message_and_unread_count_exact(alice, bob, carol):
    ids = store(request(bob, "alice"), request(carol, "alice"), request(bob, "alice"))
    Message.objects.get(pk=ids[2]).delete()
    assert listed(alice) == [("carol", ids[1], 1), ("bob", ids[0], 1), ("ALL", None, 0)]
    Message.objects.filter(pk=ids[0]).delete()
    assert listed(alice) == [("carol", ids[1], 1), ("ALL", None, 0)]
    assert listed(bob) == [("ALL", None, 0)]


def test_deleting_posts_to_all_keeps_the_unread_count_of_all_exact(alice, bob, carol):
    posts = store(
        request(bob, "ALL"),
        request(carol, "ALL"),
        request(alice, "ALL"),
        request(bob, "ALL"),
        request(alice, "ALL"),
        request(carol, "ALL"),
    )
    assert mark(alice, "ALL", posts[1])
    assert mark(bob, "ALL", posts[3])
    Message.objects.filter(pk__in=[posts[0], posts[3], posts[4]]).delete()
    assert unread(alice)["ALL"] == 1
    assert unread(bob)["ALL"] == 1
    assert unread(carol)["ALL"] == 1
    assert listed(carol)[0] == ("ALL", posts[5], 1)


def test_deleting_many_messages_at_once_rebuilds_the_summaries(alice, bob, carol, monkeypatch):
    ids = store(
        request(bob, "alice"),
        request(carol, "ALL"),
        request(alice, "ALL"),
        request(bob, "ALL"),
        request(carol, "alice"),
        request(bob, "alice"),
    )
    assert mark(alice, "ALL", ids[2])
    rebuilds = []
    monkeypatch.setattr(summaries, "RECOUNT_LIMIT", 2)
    monkeypatch.setattr(
        summaries,
        "conversations_rebuild",
        lambda rebuild=summaries.conversations_rebuild: rebuilds.append(rebuild()),
    )
    Message.objects.filter(pk__in=[ids[0], ids[1], ids[5]]).delete()
    assert len(rebuilds) == 1
    assert listed(alice) == [("carol", ids[4], 1), ("ALL", ids[3], 1)]
    assert listed(alice) == listed_from_scratch(alice)


# Rebuilding


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rebuilding_gives_the_summaries_kept_write_by_write(make_user, seed):
    rng = random.Random(seed)
    users = [make_user(f"user{n}") for n in range(5)]
    alive = list(users)

    def someone() -> User:
        return rng.choice(alive)

    def newest_id() -> int:
        return Message.objects.order_by("-id").values_list("id", flat=True).first() or 0

    for _ in range(120):
        action = rng.random()
        names = [user.username for user in alive] + ["ALL", "ALL"]
        if action < 0.45:
            store(
                *(
                    request(someone(), rng.choice(names), client_id=rng.choice([None, "a", "b"]))
                    for _ in range(rng.randint(1, 4))
                )
            )
        elif action < 0.55:
            recipient = rng.choice([*alive, None])
            Message.objects.create(sender=someone(), recipient=recipient, text="orm")
        elif action < 0.75:
            mark(someone(), rng.choice(names), rng.randint(0, newest_id() + 2))
        elif action < 0.82:
            peer = rng.choice([*alive, None])
            ReadMarker.objects.update_or_create(
                user=someone(), peer=peer, defaults={"up_to": rng.randint(0, newest_id())}
            )
        elif action < 0.93:
            doomed = list(Message.objects.values_list("id", flat=True))
            if doomed:
                if rng.random() < 0.5:
                    Message.objects.get(pk=rng.choice(doomed)).delete()
                else:
                    Message.objects.filter(pk__in=rng.sample(doomed, min(3, len(doomed)))).delete()
        elif action < 0.97:
            user = someone()
            user.is_active = not user.is_active
            user.save()
        elif len(alive) > 3:
            user = someone()
            alive.remove(user)
            user.delete()
        for user in alive:
            assert listed(user) == listed_from_scratch(user)
    kept = summaries_state()
    conversations_rebuild()
    assert summaries_state() == kept


def test_concurrent_sends_and_read_marks_keep_the_summaries_exact(make_user):
    users = [make_user(f"user{n}") for n in range(4)]
    names = [user.username for user in users] + ["ALL"]
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(25):
                if rng.random() < 0.6:
                    store(
                        *(
                            request(rng.choice(users), rng.choice(names))
                            for _ in range(rng.randint(1, 3))
                        )
                    )
                else:
                    newest = Message.objects.order_by("-id").values_list("id", flat=True).first()
                    mark(rng.choice(users), rng.choice(names), newest or 0)
        except BaseException as error:  # noqa: B036 (reported by the test thread)
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for user in users:
        assert listed(user) == listed_from_scratch(user)
    kept = summaries_state()
    conversations_rebuild()
    assert summaries_state() == kept


def test_the_rebuild_command_counts_messages_written_by_sql(alice, bob, carol):
    now = timezone.now()
    rows = [(bob.pk, alice.pk), (carol.pk, None), (bob.pk, alice.pk), (alice.pk, None)]
    with connection.cursor() as cursor:
        for sender, recipient in rows:
            cursor.execute(
                "INSERT INTO chat_message (sender_id, recipient_id, text, sent_at) "
                "VALUES (%s, %s, 'imported', %s)",
                [sender, recipient, now],
            )
    first = Message.objects.order_by("id").first()
    ReadMarker.objects.create(user=alice, peer=bob, up_to=first.id)
    out = StringIO()
    call_command("chat_rebuild_conversations", stdout=out)
    assert "Rebuilt 2 direct-message summaries" in out.getvalue()
    assert listed(alice) == listed_from_scratch(alice)
    assert unread(alice) == {"ALL": 1, "bob": 1}
    assert unread(bob) == {"ALL": 2, "alice": 0}


def test_the_migration_fills_the_summaries_of_existing_messages(alice, bob, carol):
    call_command("migrate", "chat", "0001", verbosity=0)
    try:
        now = timezone.now()
        with connection.cursor() as cursor:
            for sender, recipient in [(bob, alice), (carol, None), (alice, alice), (bob, None)]:
                cursor.execute(
                    "INSERT INTO chat_message (sender_id, recipient_id, text, sent_at) "
                    "VALUES (%s, %s, 'old', %s)",
                    [sender.pk, recipient.pk if recipient else None, now],
                )
            cursor.execute("SELECT min(id) FROM chat_message WHERE recipient_id IS NULL")
            (first_post,) = cursor.fetchone()
            cursor.execute(
                "INSERT INTO chat_readmarker (user_id, peer_id, up_to) VALUES (%s, NULL, %s)",
                [alice.pk, first_post],
            )
    finally:
        call_command("migrate", "chat", verbosity=0)
    for user in (alice, bob, carol):
        assert listed(user) == listed_from_scratch(user)
    assert unread(alice) == {"ALL": 1, "bob": 1, "alice": 0}


# Indexes


def test_storing_and_marking_read_use_indexes(alice, bob, carol, send):
    for n in range(20):
        send(bob, alice, f"dm {n}")
        send(carol, None, f"post {n}")
    newest = Message.objects.order_by("-id").first().id
    assert_indexed(
        lambda: store(request(alice, "bob"), request(bob, "alice"), request(alice, "ALL"))
    )
    assert_indexed(lambda: mark(alice, "bob", newest - 5))
    assert_indexed(lambda: mark(alice, "ALL", newest - 3))
    assert_indexed(lambda: mark(alice, "ALL", newest))
