"""ASGI entry point: HTTP through Django, WebSockets through Channels."""

import gc
import logging
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

from chat.asgi_http import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from chat.daphne_compat import allow_server_close_codes, drop_sends_after_close  # noqa: E402
from chat.debug_formatting import remember_debug_names  # noqa: E402
from chat.eager_writes import enable_eager_writes  # noqa: E402
from chat.pubsub_receiving import enable_direct_receiving  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402
from chat.security import SameOriginValidator  # noqa: E402
from chat.socket_auth import socket_auth_stack  # noqa: E402
from chat.socket_memory import trim_socket_state  # noqa: E402
from chat.socket_options import share_protocol_options  # noqa: E402
from chat.socket_upgrades import enable_direct_upgrades  # noqa: E402

if not settings.REDIS_URL:
    logging.getLogger("chat").warning(
        "REDIS_URL is not set: using the in-memory channel layer and presence, so this "
        "server is limited to one process. Set REDIS_URL to run several."
    )

allow_server_close_codes()
drop_sends_after_close()
enable_eager_writes()
share_protocol_options()
enable_direct_receiving()
trim_socket_state()
enable_direct_upgrades()
remember_debug_names()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SameOriginValidator(socket_auth_stack(URLRouter(websocket_urlpatterns))),
    }
)

# Everything loaded so far lives as long as the process: moved out of the collector's view, a
# full collection walks only what the sockets and requests made since (a pause that grew with
# the size of Django, Twisted and the app showed as the slowest DMs).
gc.freeze()
# A young collection every 10,000 allocations instead of 700, the middle generation collected
# at every 20th of them and the oldest at every 20th of those, instead of every 10th. A
# handshake's objects live for the tens of milliseconds it takes, so at 700 every young
# collection walked the handshakes under way again and moved them on to be walked in the
# older generations: opening 1,000 sockets cost 296 ms of collections (a 94 ms full one among
# them), and 62 ms with these thresholds (at most 11 ms at once).
GC_THRESHOLDS = (10_000, 20, 20)
gc.set_threshold(*GC_THRESHOLDS)
