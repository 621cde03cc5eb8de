"""Only the site's own pages may open a socket: same host, same port, allowed host."""

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import validate_host

_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin1")
    return None


def _authority(netloc: str, default_port: int) -> tuple[str, int] | None:
    """(host, port) of a host[:port] string, IPv6 hosts in brackets as ALLOWED_HOSTS has them."""
    try:
        parts = urlsplit("//" + netloc)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None or parts.password is not None:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return host.lower(), port or default_port


def origin_allowed(*, origin: str | None, host: str | None, allowed_hosts: list[str]) -> bool:
    """True when Origin names an allowed host with the host and port of the Host header."""
    if not origin or not host:
        return False
    scheme, sep, netloc = origin.partition("://")
    default_port = _DEFAULT_PORTS.get(scheme.lower())
    if not sep or default_port is None or "/" in netloc:
        return False
    origin_authority = _authority(netloc, default_port)
    host_authority = _authority(host, default_port)
    if origin_authority is None or origin_authority != host_authority:
        return False
    return validate_host(origin_authority[0], allowed_hosts)


class SameOriginValidator:
    """ASGI middleware refusing WebSocket handshakes from any other origin (HTTP 403).

    Channels' AllowedHostsOriginValidator checks the host but lets any port through.
    """

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if not origin_allowed(
            origin=_header(scope, b"origin"),
            host=_header(scope, b"host"),
            allowed_hosts=settings.ALLOWED_HOSTS,
        ):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
