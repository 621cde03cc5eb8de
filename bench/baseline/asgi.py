"""ASGI entry point of the baseline: Django for HTTP, the tutorial consumer for sockets."""

import os
import sys

# A tutorial installs channels-redis and with it redis-py's pure-Python response parser; the
# chat's requirements add hiredis, its compiled parser. redis-py uses hiredis whenever it can
# import it, so the baseline is kept from it: it runs as the tutorial would.
sys.modules["hiredis"] = None  # type: ignore[assignment]

from django.core.asgi import get_asgi_application  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.baseline.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from bench.baseline.consumers import BaselineConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([path("ws/chat/", BaselineConsumer.as_asgi())]))
        ),
    }
)
