"""daphne's own floor for W3: an application that accepts every socket and says hello.

It authenticates nobody and touches neither Redis nor the database: the handshakes/s it
reaches under W3 is what daphne (with the chat's patches to it, chat/socket_options.py,
chat/eager_writes.py, chat/socket_memory.py, chat/socket_upgrades.py and
chat/debug_formatting.py) can do on this machine before any application work. The chat's
figure is read against it.
"""

from typing import Any

import orjson

from chat.debug_formatting import remember_debug_names
from chat.eager_writes import enable_eager_writes
from chat.socket_memory import trim_socket_state
from chat.socket_options import share_protocol_options
from chat.socket_upgrades import enable_direct_upgrades

enable_eager_writes()
share_protocol_options()
trim_socket_state()
enable_direct_upgrades()
remember_debug_names()

HELLO = orjson.dumps({"type": "hello", "user": "", "online": [], "last_id": 0}).decode()


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        # The harness waits for /healthz; every path answers 200.
        await receive()
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})
    elif scope["type"] == "websocket":
        while True:
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
                await send({"type": "websocket.send", "text": HELLO})
            elif message["type"] == "websocket.disconnect":
                return
