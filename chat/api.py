"""The JSON history API: parse the query, call one selector, answer JSON (errors too)."""

import re
from collections.abc import Callable
from functools import wraps
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from . import protocol, selectors
from .exceptions import ChatError

_WHOLE_NUMBER = re.compile(r"[0-9]{1,19}")
DEFAULT_LIMIT = 50
MAX_LIMIT = 100


def json_response(data: dict[str, Any], *, status: int = 200) -> HttpResponse:
    """A JSON answer, encoded by orjson (a conversation list took 0.3 ms with json, 20 µs)."""
    return HttpResponse(orjson.dumps(data), status=status, content_type="application/json")


def _error(code: int, detail: str) -> HttpResponse:
    return json_response({"code": code, "detail": detail}, status=code)


def api_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """GET only, logged-in only (401 JSON, never a redirect), ChatError as JSON."""

    @require_GET
    @wraps(view)
    def wrapper(request: HttpRequest) -> HttpResponse:
        if not request.user.is_authenticated:
            return _error(401, "Log in first: this API needs a session.")
        try:
            return view(request)
        except ChatError as error:
            return _error(error.code, error.detail)

    return wrapper


def _whole_number(request: HttpRequest, name: str, *, low: int, high: int, default: int | None):
    raw = request.GET.get(name)
    if raw is None:
        return default
    if not _WHOLE_NUMBER.fullmatch(raw) or not low <= int(raw) <= high:
        raise ChatError(f"{name} must be a whole number from {low} to {high}, got {raw[:40]!r}.")
    return int(raw)


@api_view
def messages(request: HttpRequest) -> HttpResponse:
    peer_name = request.GET.get("peer")
    if not peer_name:
        raise ChatError("peer is required: ALL or a username.")
    limit = _whole_number(request, "limit", low=1, high=MAX_LIMIT, default=DEFAULT_LIMIT)
    before = _whole_number(request, "before", low=0, high=protocol.MAX_ID, default=None)
    peer = selectors.peer_resolve(peer=peer_name)
    rows, has_more = selectors.message_history_list(
        user=request.user, peer=peer, before=before, limit=limit
    )
    return json_response({"messages": rows, "has_more": has_more})


@api_view
def conversations(request: HttpRequest) -> HttpResponse:
    return json_response({"conversations": selectors.conversation_list(user=request.user)})
