"""The wire format: parse client frames into typed objects, build every server frame.

Pure: no ORM, no channel layer, no event loop. See the WebSocket section of the README.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from .exceptions import ProtocolError, TooLong

MAX_FRAME_BYTES = 64 * 1024
MAX_CLIENT_ID_LENGTH = 64
# Ids are 64-bit in the database; larger ones in a frame are valid and match nothing.
MAX_ID = 2**63 - 1
GLOBAL_PEER = "ALL"
MESSAGE_COMMAND = "message"

# Close codes: the standard ones clients reconnect after, and the chat's own.
CLOSE_SERVICE_RESTART = 1012  # the process is stopping: reconnect at once, then sync
CLOSE_TRY_AGAIN_LATER = 1013  # Redis is down or lost its state: reconnect with back-off
CLOSE_INTERNAL_ERROR = 1011  # a consumer ended on an error (daphne closes the socket with it)
CLOSE_UNAUTHENTICATED = 4401  # not logged in, logged out, or the password changed
CLOSE_FORBIDDEN = 4403  # the user is deactivated
CLOSE_TOO_MANY_SOCKETS = 4429  # over CHAT_MAX_SOCKETS_PER_USER


@dataclass(frozen=True, slots=True)
class SendMessage:
    recipient: str
    text: str
    client_id: str | None


@dataclass(frozen=True, slots=True)
class Sync:
    after: int


@dataclass(frozen=True, slots=True)
class Typing:
    recipient: str


@dataclass(frozen=True, slots=True)
class Read:
    peer: str
    up_to: int


@dataclass(frozen=True, slots=True)
class Ping:
    pass


ClientFrame = SendMessage | Sync | Typing | Read | Ping


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _parse_int(digits: str) -> int:
    # Python refuses to convert integers of more than 4,300 digits; such a number is valid
    # JSON, and as an id it is out of range anyway, so it stands in as a value just as large.
    try:
        return int(digits)
    except ValueError:
        return -(2**64) if digits.startswith("-") else 2**64


def _decode(raw: str | bytes | None, max_bytes: int) -> dict[str, Any]:
    if raw is None:
        raise ProtocolError("Frame is empty.")
    # A UTF-8 character is at most 4 bytes, so only long frames need encoding to measure.
    if len(raw) > max_bytes or (
        isinstance(raw, str)
        and len(raw) > max_bytes // 4
        and len(raw.encode("utf-8", "surrogatepass")) > max_bytes
    ):
        raise ProtocolError(f"Frame is larger than {max_bytes} bytes; nothing was read.", code=413)
    if not isinstance(raw, str):
        raise ProtocolError("Frames must be text (a JSON object), not binary.")
    try:
        data = json.loads(raw, parse_constant=_reject_constant, parse_int=_parse_int)
    except (ValueError, RecursionError):
        raise ProtocolError("Frame is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"Frame must be a JSON object, got {_json_type(data)}.")
    return data


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def is_storable_text(value: str) -> bool:
    """True when the database can store the string: no NUL and no lone surrogate."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _name(data: dict[str, Any], field: str, **error: Any) -> str:
    """A required, non-empty string naming a user or ALL."""
    value = data.get(field)
    if not isinstance(value, str) or not value:
        got = "nothing" if field not in data else _json_type(value)
        raise ProtocolError(
            f"{field} must be ALL or a username (a non-empty string), got {got}.", **error
        )
    if not is_storable_text(value):
        raise ProtocolError(f"{field} holds characters no username has.", **error)
    return value


def _id(data: dict[str, Any], field: str) -> int:
    value = data.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        got = "nothing" if field not in data else _json_type(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            got = f"{value!r}"
        raise ProtocolError(f"{field} must be a whole number 0 or more, got {got}.")
    return value


def _client_id(data: dict[str, Any]) -> str | None:
    if "client_id" not in data:
        return None
    value = data["client_id"]
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= MAX_CLIENT_ID_LENGTH
        or not is_storable_text(value)
    ):
        raise ProtocolError(
            f"client_id must be a string of 1-{MAX_CLIENT_ID_LENGTH} characters.",
            command=MESSAGE_COMMAND,
        )
    return value


def _parse_message(data: dict[str, Any], max_text_length: int) -> SendMessage:
    client_id = _client_id(data)
    error = {"command": MESSAGE_COMMAND, "client_id": client_id}
    recipient = _name(data, "recipient", **error)
    text = data.get("text")
    if not isinstance(text, str):
        got = "nothing" if "text" not in data else _json_type(text)
        raise ProtocolError(f"text must be a string, got {got}.", **error)
    if not text.strip():
        raise ProtocolError("text is empty.", **error)
    if len(text) > max_text_length:
        raise TooLong(
            f"Message is too long: at most {max_text_length} characters, got {len(text)}.",
            client_id=client_id,
        )
    if not is_storable_text(text):
        raise ProtocolError("text holds a NUL character or invalid Unicode.", **error)
    return SendMessage(recipient=recipient, text=text, client_id=client_id)


def parse_client_frame(
    raw: str | bytes | None, *, max_text_length: int, max_frame_bytes: int = MAX_FRAME_BYTES
) -> ClientFrame:
    """Parse one WebSocket frame, or raise ProtocolError/TooLong saying what was wrong."""
    data = _decode(raw, max_frame_bytes)
    kind = data.get("type")
    if kind == "message":
        return _parse_message(data, max_text_length)
    if kind == "sync":
        return Sync(after=_id(data, "after"))
    if kind == "typing":
        return Typing(recipient=_name(data, "recipient"))
    if kind == "read":
        return Read(peer=_name(data, "peer"), up_to=_id(data, "up_to"))
    if kind == "ping":
        return Ping()
    if not isinstance(kind, str):
        got = "nothing" if "type" not in data else _json_type(kind)
        raise ProtocolError(f"Frame needs a string type, got {got}.")
    raise ProtocolError(
        f"Unknown frame type {kind[:40]!r}; expected message, sync, typing, read or ping."
    )


# Server frames.


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a Z, as every MESSAGE carries it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def message_payload(
    *, id: int, sender: str, recipient: str | None, text: str, sent_at: datetime
) -> dict[str, Any]:
    """MESSAGE, the one shape of a chat message in frames and the API."""
    return {
        "id": id,
        "sender": sender,
        "recipient": recipient if recipient is not None else GLOBAL_PEER,
        "text": text,
        "sent_at": format_time(sent_at),
    }


def message_frame(payload: dict[str, Any], client_id: str | None = None) -> dict[str, Any]:
    frame = {"type": "message", **payload}
    if client_id is not None:
        frame["client_id"] = client_id
    return frame


def hello_frame(*, user: str, online: list[str], last_id: int) -> dict[str, Any]:
    return {"type": "hello", "user": user, "online": sorted(online), "last_id": last_id}


def response_frame(
    *,
    code: int,
    detail: str,
    id: int | None = None,
    client_id: str | None = None,
    retry_after: float | None = None,
) -> dict[str, Any]:
    frame = {
        "type": "response",
        "command": MESSAGE_COMMAND,
        "code": code,
        "detail": detail,
        "id": id,
        "client_id": client_id,
    }
    if retry_after is not None:
        frame["retry_after"] = retry_after
    return frame


def synced_frame(*, last_id: int, has_more: bool) -> dict[str, Any]:
    return {"type": "synced", "last_id": last_id, "has_more": has_more}


def read_frame(*, reader: str, peer: str, up_to: int) -> dict[str, Any]:
    return {"type": "read", "reader": reader, "peer": peer, "up_to": up_to}


def typing_frame(*, sender: str) -> dict[str, Any]:
    return {"type": "typing", "sender": sender}


def presence_frame(*, online: list[str], offline: list[str]) -> dict[str, Any]:
    return {"type": "presence", "online": sorted(online), "offline": sorted(offline)}


def pong_frame(*, last_id: int) -> dict[str, Any]:
    return {"type": "pong", "last_id": last_id}


def error_frame(*, code: int, detail: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "detail": detail}


def encode(frame: dict[str, Any]) -> str:
    """Serialise a server frame to the text sent on the socket (compact, UTF-8)."""
    try:
        return orjson.dumps(frame).decode()
    except orjson.JSONEncodeError:
        # An integer past 64 bits: `synced` echoes whatever id a client sent in `sync`.
        return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))
