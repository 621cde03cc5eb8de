"""Sockets close when what they were opened with stops being true."""

import pytest
from channels.db import database_sync_to_async

from tests.conftest import PASSWORD, cookie_of, logged_in_client, socket_headers
from tests.test_consumers import handshake

pytestmark = pytest.mark.django_db(transaction=True)


async def still_open(socket) -> bool:
    await socket.send({"type": "ping"})
    return (await socket.receive_until("pong"))["type"] == "pong"


async def test_deactivating_a_user_closes_every_socket_with_4403(connect_as, alice, bob):
    first_tab = await connect_as(alice)
    second_tab = await connect_as(alice)
    bob_socket = await connect_as(bob)
    alice.is_active = False
    await alice.asave()
    assert await first_tab.closed_with(seconds=2) == 4403
    assert await second_tab.closed_with(seconds=2) == 4403
    assert await still_open(bob_socket)


async def test_a_deactivated_user_cannot_reconnect(connect_as, alice):
    client = await logged_in_client(alice)
    await connect_as(alice, cookie=cookie_of(client))
    alice.is_active = False
    await alice.asave()
    connected, _ = await handshake(socket_headers(cookie=cookie_of(client)))
    assert connected is False


async def test_logging_out_closes_the_sockets_of_that_session_only(connect_as, alice):
    leaving = await logged_in_client(alice)
    leaving_socket = await connect_as(alice, cookie=cookie_of(leaving))
    staying_socket = await connect_as(alice)
    response = await leaving.post("/accounts/logout/")
    assert response.status_code == 302
    assert await leaving_socket.closed_with(seconds=2) == 4401
    assert await still_open(staying_socket)


async def test_password_change_closes_the_other_sessions_and_keeps_this_one(connect_as, alice):
    changing = await logged_in_client(alice)
    changing_socket = await connect_as(alice, cookie=cookie_of(changing))
    other_socket = await connect_as(alice)
    response = await changing.post(
        "/accounts/password_change/",
        {
            "old_password": PASSWORD,
            "new_password1": "a whole new passphrase",
            "new_password2": "a whole new passphrase",
        },
    )
    assert response.status_code == 302
    assert await other_socket.closed_with(seconds=2) == 4401
    assert await still_open(changing_socket)
    # The kept socket follows its session's new key: logging out still closes it.
    await changing.post("/accounts/logout/")
    assert await changing_socket.closed_with(seconds=2) == 4401


async def test_a_password_set_elsewhere_closes_every_session(connect_as, alice, bob):
    first = await connect_as(alice)
    second = await connect_as(alice)
    bob_socket = await connect_as(bob)

    def set_password():
        alice.set_password("set by an admin")
        alice.save()

    await database_sync_to_async(set_password)()
    assert await first.closed_with(seconds=2) == 4401
    assert await second.closed_with(seconds=2) == 4401
    assert await still_open(bob_socket)


async def test_saving_an_active_user_closes_nothing(connect_as, alice):
    socket = await connect_as(alice)
    alice.first_name = "Alice"
    await alice.asave()
    assert await still_open(socket)
