"""Hostile clients: whatever a socket sends, it gets the contract's answer and the server holds.

A property-based barrage (hypothesis) throws thousands of generated frames at one live consumer
and checks each answer against an oracle written from the contract's WebSocket section, not
from chat/protocol.py. Invalid UTF-8 arrives only in binary frames here: in ASGI a text frame is
a str, and daphne (autobahn) fails a connection whose text frame is not UTF-8 before any
consumer sees it.
"""

import asyncio
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

from tests.conftest import ChatSocket

pytestmark = pytest.mark.django_db(transaction=True)

# The contract's numbers.
MAX_FRAME_BYTES = 64 * 1024
MAX_TEXT_LENGTH = 4000  # CHAT_MAX_MESSAGE_LENGTH, set explicitly by the tests
MAX_CLIENT_ID_LENGTH = 64
# Deeper JSON than this may be refused with a 400 even inside a valid frame: it cannot be
# parsed without risking the stack (the issue: nesting must not exhaust stack or CPU).
DEEP = 500
# Stands in for any integer too long for int() (which refuses more than 4300 digits).
HUGE = 10**4400

KNOWN_TYPES = ("message", "sync", "typing", "read", "ping")
FIELDS = {
    "message": ("recipient", "text", "client_id"),
    "sync": ("after",),
    "typing": ("recipient",),
    "read": ("peer", "up_to"),
    "ping": (),
}
# The users of the barrage: alice throws, bob is online, dormant is deactivated.
ACTIVE = frozenset({"alice", "bob"})
EXISTING = ACTIVE | {"dormant"}
ALL = "ALL"
# Frames the server pushes on its own (fan-out), which may arrive at any time.
LIVE_TYPES = frozenset({"message", "typing", "read", "presence"})

# Replies, reduced to what the contract fixes.
Reply = tuple[Any, ...]
NOTHING: Reply = ("nothing",)
PONG: Reply = ("pong",)
SYNCED: Reply = ("synced",)
CLOSED_1009: Reply = ("close", 1009)


def error(code: int) -> Reply:
    return ("error", code)


def response(code: int, client_id: str | None) -> Reply:
    return ("response", code, client_id)


# Frames and how to build them.


class Frame:
    """One frame to send; `shallow` is the same frame with its deep nesting cut, for the oracle."""

    # Not a dataclass: hypothesis prints a failing batch with this repr, long frames cut.
    def __init__(self, data: str | bytes, shallow: str | None = None, depth: int = 0) -> None:
        self.data, self.shallow, self.depth = data, shallow, depth

    def __repr__(self) -> str:
        data = self.data
        if len(data) > 160:
            return f"Frame({data[:80]!r}...{data[-40:]!r}, {len(data)} long, depth={self.depth})"
        return f"Frame({data!r})"


class Raw(str):
    """JSON text put into a frame as it is: NaN, a 5000-digit number, 1e400."""


@dataclass(frozen=True)
class Obj:
    """A JSON object as written, so the same key may appear twice."""

    pairs: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Style:
    """How a frame is written: non-ASCII escaped or not, and the whitespace around , and :."""

    ascii: bool = True
    item: str = ","
    key: str = ":"


def render(value: Any, style: Style = Style()) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, Obj):
        items = (f"{render(k, style)}{style.key}{render(v, style)}" for k, v in value.pairs)
        return "{" + style.item.join(items) + "}"
    if isinstance(value, list):
        return "[" + style.item.join(render(item, style) for item in value) + "]"
    text = json.dumps(value, ensure_ascii=style.ascii)
    if not _encodable(text):
        # A lone surrogate cannot travel raw in a text frame, only as a \\u escape.
        text = json.dumps(value)
    return text


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# The oracle: what the contract requires for a frame.


class _Pairs(list):
    """A parsed JSON object, with its keys in order and duplicates kept."""


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _any_int(digits: str) -> int:
    if len(digits) > 4000:
        return -HUGE if digits.startswith("-") else HUGE
    return int(digits)


def _storable(text: str) -> bool:
    return "\x00" not in text and _encodable(text)


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2 if _encodable(text) else len(text)


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _name_codes(value: Any, known: frozenset[str]) -> set[int]:
    """The codes a frame may get for this recipient or peer; empty when it is fine."""
    if not isinstance(value, str):
        return {400}
    if not value or not _storable(value):
        # No user has such a name: the contract reads as 400 (malformed) or 404 (no user).
        return {400, 404}
    return set() if value in known else {404}


def _message_replies(frame: dict[str, Any]) -> set[Reply]:
    wrong: set[int] = set()  # codes of what is certainly wrong
    maybe: set[int] = set()  # codes of what the contract leaves open
    echoes: set[str | None] = {None}
    if "client_id" in frame:
        client_id = frame["client_id"]
        if not isinstance(client_id, str) or not 1 <= len(client_id) <= MAX_CLIENT_ID_LENGTH:
            wrong.add(400)
        elif _utf16_length(client_id) > MAX_CLIENT_ID_LENGTH or not _storable(client_id):
            maybe.add(400)
            echoes = {client_id, None}
        else:
            echoes = {client_id}
    wrong |= _name_codes(frame.get("recipient"), ACTIVE | {ALL})
    text = frame.get("text")
    if not isinstance(text, str) or not text.strip(" \t\n\r"):
        wrong.add(400)
    else:
        if not text.strip():
            maybe.add(400)  # only Unicode whitespace: "whitespace" is not defined further
        if len(text) > MAX_TEXT_LENGTH:
            wrong.add(413)
        elif _utf16_length(text) > MAX_TEXT_LENGTH:
            maybe.add(413)  # longer in UTF-16 units (what a browser counts) than in characters
        if not _storable(text):
            maybe.add(400)  # a NUL or a lone surrogate: no database stores it
    codes = wrong | maybe if wrong else maybe | {200, 202}
    return {response(code, echo) for code in codes for echo in echoes}


def _object_replies(frame: dict[str, Any]) -> set[Reply]:
    kind = frame.get("type")
    if kind == "message":
        return _message_replies(frame)
    if kind == "ping":
        return {PONG}
    if kind == "sync":
        return {SYNCED} if _is_id(frame.get("after")) else {error(400)}
    if kind == "typing":
        codes = _name_codes(frame.get("recipient"), ACTIVE)
    elif kind == "read":
        codes = _name_codes(frame.get("peer"), EXISTING | {ALL})
        if not _is_id(frame.get("up_to")):
            codes.add(400)
    else:
        return {error(400)}
    return {error(code) for code in codes} or {NOTHING}


def expected_replies(frame: Frame) -> set[Reply]:
    """Every reply the contract allows for this frame."""
    data = frame.data
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8"))
    if size > MAX_FRAME_BYTES:
        return {error(413), CLOSED_1009}
    if isinstance(data, bytes):
        return {error(400)}
    try:
        value = json.loads(
            frame.shallow if frame.shallow is not None else data,
            parse_constant=_reject_constant,
            parse_int=_any_int,
            object_pairs_hook=_Pairs,
        )
    except ValueError:
        return {error(400)}
    if not isinstance(value, _Pairs):
        replies = {error(400)}
    else:
        # The contract does not say which of two equal keys counts: either may.
        first: dict[str, Any] = {}
        for key, item in value:
            first.setdefault(key, item)
        replies = _object_replies(first) | _object_replies(dict(value))
    if max(frame.depth, _nesting_depth(data)) > DEEP:
        replies.add(error(400))
    return replies


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _nesting_depth(text: str) -> int:
    if text.count("[") + text.count("{") <= DEEP:
        return 0
    depth = deepest = 0
    for char in _JSON_STRING.sub("", text):
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


# Strategies.

WHITESPACE = " \t\n\r\x0b\x0c\x1c\x85\xa0\u2003\u2028\u3000"
ODD_STRINGS = ["", " ", "\x00", "a\x00b", "\ud800", "x\udfff", "😀", "\u202e", "<b>", "\\", '"']


def rarely(draw: st.DrawFn, one_in: int) -> bool:
    """True about once in `one_in` draws (hypothesis favours small numbers: 1 is common)."""
    return draw(st.integers(1, one_in)) == one_in


def pick(*weighted: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, chosen by weight (st.one_of weighs its branches alike)."""
    choices = [strategy for weight, strategy in weighted for _ in range(weight)]
    return st.sampled_from(choices).flatmap(lambda strategy: strategy)


def padded(size: int, char: str, template: str = '{"type":"ping","pad":"@"}') -> str:
    """The template with @ filled by `char` (then "x") to exactly `size` UTF-8 bytes."""
    need = size - (len(template.encode()) - 1)
    count = need // len(char.encode())
    text = template.replace("@", char * count + "x" * (need - count * len(char.encode())))
    assert len(text.encode()) == size
    return text


def repeated(chars: list[str], counts: st.SearchStrategy[int]) -> st.SearchStrategy[str]:
    return st.builds(lambda char, count: char * count, st.sampled_from(chars), counts)


digit_counts = st.integers(20, 4300) | st.sampled_from([4300, 4301, 60_000])
raw_numbers = st.one_of(
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "-0", "1E+2", "0.0"]),
    # Integers far past 64 bits, past what int() reads, up to the frame limit.
    st.builds(lambda sign, count: sign + "9" * count, st.sampled_from(["", "-"]), digit_counts),
).map(Raw)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([0, -1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**30, -(10**30)]),
    st.floats(),
    st.sampled_from([1e308, -1e308, 5e-324, -0.0, 0.5, 1.0]),
    st.text(max_size=30),
    st.sampled_from(ODD_STRINGS),
    raw_numbers,
)


def _objects(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Obj]:
    keys = st.one_of(st.sampled_from(["type", "a", ""]), st.text(max_size=8))
    return st.lists(st.tuples(keys, children), max_size=4).map(lambda p: Obj(tuple(p)))


json_values = st.recursive(
    json_scalars, lambda children: st.lists(children, max_size=4) | _objects(children), max_leaves=6
)

names = pick(
    (6, st.sampled_from([ALL, "alice", "bob"])),
    (1, st.sampled_from(["dormant", "nobody", "all", "Bob", "bob ", " bob", "bob\x00", "ALL\x00"])),
    (1, st.sampled_from(ODD_STRINGS)),
    (1, st.text(max_size=20)),
    (1, repeated(["b", "é", "😀"], st.integers(150, 12_000))),
)
ids = st.one_of(
    st.integers(min_value=10**6, max_value=10**9),  # past every stored id: a cheap sync
    st.integers(min_value=0, max_value=2**64),
    st.sampled_from([0, 1, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 10**30, 10**300]),
)
texts = pick(
    (6, st.text(min_size=1, max_size=40)),
    (1, st.text(alphabet=WHITESPACE, max_size=6)),
    (1, st.sampled_from(ODD_STRINGS)),
    (1, repeated(["x", "é", "😀", " "], st.integers(3995, 4005))),
    (1, repeated(["x", "€"], st.sampled_from([3999, 4000, 4001, 20_000]))),
)
client_ids = pick(
    (4, st.text(min_size=1, max_size=64)),
    (1, st.sampled_from(["k", "x" * 64, "x" * 65, "😀" * 32, "😀" * 33, "😀" * 64, "😀" * 65])),
    (1, st.sampled_from(ODD_STRINGS)),
    (1, st.text(max_size=80)),
)
VALID_FIELDS = {
    "recipient": names,
    "peer": names,
    "text": texts,
    "client_id": client_ids,
    "after": ids,
    "up_to": ids,
}
styles = st.builds(
    Style,
    ascii=st.booleans(),
    item=st.sampled_from([",", ", ", " ,\n\t"]),
    key=st.sampled_from([":", ": ", "\r\n:"]),
)
types = pick(
    (8, st.sampled_from(KNOWN_TYPES)),
    (1, st.sampled_from(["Ping", "PING", " ping", "ping\x00", "dance", "hello", "pong", ""])),
    (1, json_scalars),
)


@st.composite
def object_frames(draw: st.DrawFn) -> Frame:
    """A JSON object with a type, known or not, and right, wrong or missing fields."""
    kind = draw(types)
    pairs: list[tuple[str, Any]] = []
    if not rarely(draw, 10):
        pairs.append(("type", kind))
    for name in FIELDS.get(kind, ()) if isinstance(kind, str) else ():
        choice = draw(st.sampled_from(["right"] * 5 + ["wrong", "missing"]))
        if name == "client_id" and choice == "right" and draw(st.booleans()):
            choice = "missing"
        if choice == "right":
            pairs.append((name, draw(VALID_FIELDS[name])))
        elif choice == "wrong":
            pairs.append((name, draw(json_values)))
    if rarely(draw, 3):
        pairs.append((draw(st.sampled_from(["sender", "id", "x"]) | st.text()), draw(json_values)))
    if pairs and rarely(draw, 8):
        # The same key twice, before or after the first.
        key = draw(st.sampled_from([k for k, _ in pairs]))
        pairs.insert(draw(st.integers(0, len(pairs))), (key, draw(json_values)))
    pairs = draw(st.permutations(pairs)) if rarely(draw, 4) else pairs
    return Frame(render(Obj(tuple(pairs)), draw(styles)))


value_frames = st.builds(lambda value, style: Frame(render(value, style)), json_values, styles)

garbage_frames = st.one_of(
    st.text(max_size=200),
    st.sampled_from(
        [
            "",
            " ",
            "null",
            "true",
            "NaN",
            "Infinity",
            "-Infinity",
            '"ping"',
            "[]",
            "{}",
            '{"type":"ping"',
            '{"type":"ping"}x',
            '{"type":"ping",}',
            "{'type':'ping'}",
            '{type:"ping"}',
            '\ufeff{"type":"ping"}',
            '{"type":"ping"}{"type":"ping"}',
            '{"type":NaN}',
            '{"type":"sync","after":NaN}',
            '{"type":"sync","after":Infinity}',
            '{"type":"sync","after":1e308}',
            '{"type":"sync","after":01}',
            '{"type":"ping","x":"\x01"}',
            '{"type":"ping","x":"\\ud800"}',
            '{"type":"ping"}\x00',
            "\x00",
        ]
    ),
).map(Frame)


@st.composite
def mutated_frames(draw: st.DrawFn) -> Frame:
    """A frame cut short, or with a character put in or taken out."""
    text = draw(object_frames()).data
    assert isinstance(text, str)
    at = draw(st.integers(0, len(text)))
    how = draw(st.sampled_from(["cut", "insert", "delete"]))
    if how == "cut":
        text = text[:at]
    elif how == "insert":
        text = (
            text[:at] + draw(st.sampled_from(list('{}[]",:\\ \x00x0-') + ["é", "😀"])) + text[at:]
        )
    else:
        text = text[:at] + text[at + 1 :]
    return Frame(text)


binary_frames = st.one_of(
    st.binary(max_size=100),
    st.sampled_from(
        [
            b"",
            b"\xff\xfe",
            b"\xc3\x28",
            b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
            b"\xc0\xaf",
            b"\x80",
            b'{"type": "ping"}',
            b"\xef\xbb\xbf{}",
            b'{"type": "ping", "x": "\xff"}',
        ]
    ),
    st.builds(lambda frame: frame.data.encode("utf-8"), object_frames()),
).map(Frame)

DEEP_TEMPLATES = [
    "@",
    '{"type":"ping","x":@}',
    '{"type":"sync","after":@}',
    '{"type":"message","recipient":"bob","text":@}',
    '{"type":@}',
    '{"type":"read","peer":"bob","up_to":1,"x":@}',
]
DEEP_SHAPES = [("[", "]", ""), ('{"a":', "}", "0"), ('[{"a":', "}]", "0"), ("[", "]", "0")]


@st.composite
def deep_frames(draw: st.DrawFn) -> Frame:
    """JSON nested up to tens of thousands of levels deep, within 64 KiB."""
    template = draw(st.sampled_from(DEEP_TEMPLATES))
    opener, closer, leaf = draw(st.sampled_from(DEEP_SHAPES))
    depth = draw(st.integers(100, 32_000) | st.sampled_from([499, 501, 900, 999, 1000, 20_000]))
    depth = min(depth, (MAX_FRAME_BYTES - len(template) - 1) // (len(opener) + len(closer)))
    closed = not rarely(draw, 5)
    deep = opener * depth + leaf + (closer * depth if closed else "")
    shallow = opener + leaf + closer if closed else opener
    return Frame(template.replace("@", deep), template.replace("@", shallow), depth)


SIZED_TEMPLATES = [
    '{"type":"ping","pad":"@"}',
    '{"type":"sync","after":1000000000,"pad":"@"}',
    '{"type":"message","recipient":"bob","text":"padded","pad":"@"}',
    '{"type":"message","recipient":"bob","text":"@","client_id":"big"}',
    '{"type":"typing","recipient":"@"}',
    '["@"]',
    "@",
]


@st.composite
def sized_frames(draw: st.DrawFn) -> Frame:
    """Frames of exactly 64 KiB, a few bytes either side, and far over, in 1-4 byte chars."""
    size = draw(
        st.integers(MAX_FRAME_BYTES - 3, MAX_FRAME_BYTES + 3)
        | st.sampled_from([MAX_FRAME_BYTES * 2, 1 << 20])
    )
    char = draw(st.sampled_from(["x", "é", "€", "😀"]))
    text = padded(size, char, draw(st.sampled_from(SIZED_TEMPLATES)))
    return Frame(text.encode() if rarely(draw, 6) else text)


frames = pick(
    (12, object_frames()),
    (1, value_frames),
    (1, garbage_frames),
    (2, mutated_frames()),
    (1, binary_frames),
    (1, deep_frames()),
    (1, sized_frames()),
)

# Frames the issue names; they run first in every run.
LANDMARKS = [
    Frame(b"\xff\xfe"),
    Frame(b"\xc3\x28"),
    Frame("NaN"),
    Frame('{"type":"sync","after":Infinity}'),
    Frame('{"type":"sync","after":1e308}'),
    Frame('{"type":"sync","after":1000000000000000000000000000000}'),
    Frame('{"type":"read","peer":"bob","up_to":-1}'),
    Frame('{"type":"ping","type":"dance"}'),
    Frame('{"type":"typing","recipient":"bob"}'),
    Frame('{"type":"message","recipient":"bob","text":"' + "x" * 4001 + '"}'),
    Frame("[" * 30_000 + "]" * 30_000, "[]", 30_000),
    Frame('{"a":' * 10_000 + "0" + "}" * 10_000, '{"a":0}', 10_000),
    Frame(padded(MAX_FRAME_BYTES, "x")),
    Frame(padded(MAX_FRAME_BYTES + 1, "é")),
    Frame('{"type":"ping"}'),
]


# Driving a live socket.


def _check_shape(frame: dict[str, Any]) -> None:
    """Every server frame has exactly the contract's fields."""
    kind = frame.get("type")
    keys = set(frame)
    if kind == "error":
        assert keys == {"type", "code", "detail"}, frame
        assert isinstance(frame["detail"], str) and frame["detail"], frame
    elif kind == "response":
        expected = {"type", "command", "code", "detail", "id", "client_id"}
        if frame.get("code") == 429:
            expected.add("retry_after")
        assert keys == expected and frame["command"] == "message", frame
        stored = frame["code"] in (200, 202)
        assert _is_id(frame["id"]) if stored else frame["id"] is None, frame
    elif kind == "pong":
        assert keys == {"type", "last_id"} and _is_id(frame["last_id"]), frame
    elif kind == "synced":
        assert keys == {"type", "last_id", "has_more"}, frame
        assert _is_id(frame["last_id"]) and isinstance(frame["has_more"], bool), frame
    elif kind == "message":
        message = {"type", "id", "sender", "recipient", "text", "sent_at"}
        assert keys in (message, message | {"client_id"}), frame
        assert frame["sender"] == "alice" and _is_id(frame["id"]), frame
    elif kind == "typing":
        assert frame == {"type": "typing", "sender": "alice"}, frame
    elif kind == "read":
        assert keys == {"type", "reader", "peer", "up_to"} and frame["reader"] == "alice", frame
    elif kind == "presence":
        assert keys == {"type", "online", "offline"}, frame
    else:
        raise AssertionError(f"unexpected frame {frame}")


def _reply(direct: list[dict[str, Any]]) -> Reply:
    if not direct:
        return NOTHING
    if len(direct) > 1:
        return ("several", tuple(frame["type"] for frame in direct))
    [frame] = direct
    if frame["type"] == "error":
        return error(frame["code"])
    if frame["type"] == "response":
        return response(frame["code"], frame["client_id"])
    return (frame["type"],)


@dataclass
class Barrage:
    """One socket that hostile frames are thrown at, each followed by a probe."""

    connect: Any
    user: Any
    socket: ChatSocket | None = None
    thrown: int = 0
    replies: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    async def open(self) -> None:
        self.socket = await self.connect(self.user)

    async def throw_all(self, batch: list[Frame]) -> None:
        started = time.perf_counter()
        for frame in batch:
            await self.throw(frame)
        self.seconds += time.perf_counter() - started

    async def throw(self, frame: Frame) -> None:
        if self.socket is None or self.socket.communicator.future.done():
            # The last frame closed the socket or failed the test: go on with a new one.
            await self.open()
        assert self.socket is not None
        expected = expected_replies(frame)
        self.thrown += 1
        # The probe is a message frame without a recipient: a 400 response naming it, which
        # comes after every direct reply to the frame before it.
        probe = f"probe/{self.thrown}/not-generated"
        communicator = self.socket.communicator
        # send_input, not send_to: empty frames are frames too.
        kind = "bytes" if isinstance(frame.data, bytes) else "text"
        await communicator.send_input({"type": "websocket.receive", kind: frame.data})
        await communicator.send_to(text_data=json.dumps({"type": "message", "client_id": probe}))
        direct: list[dict[str, Any]] = []
        while True:
            try:
                output = await communicator.receive_output(timeout=5)
            except TimeoutError:
                raise AssertionError(f"{frame!r}: no answer within 5 s") from None
            if output["type"] == "websocket.close":
                reply: Reply = ("close", output.get("code", 1000))
                await self.open()
                break
            assert "text" in output, f"{frame!r}: a binary frame came back: {output}"
            sent = json.loads(output["text"])
            _check_shape(sent)
            if sent["type"] == "response" and sent["client_id"] == probe:
                assert sent["code"] == 400, sent
                reply = _reply(direct)
                break
            if sent["type"] not in LIVE_TYPES:
                direct.append(sent)
        self.replies[reply[:2]] += 1
        assert reply in expected, (
            f"{frame!r} got {reply} ({direct}); the contract allows {sorted(map(str, expected))}"
        )


@contextmanager
def problems_logged() -> Iterator[list[logging.LogRecord]]:
    """Warnings, errors and tracebacks logged by any part of the server meanwhile."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING or record.exc_info:
                if all(record is not kept for kept in records):
                    records.append(record)

    handler = Keep(level=logging.DEBUG)
    # Some of these do not propagate to the root logger: listen to each.
    loggers = [logging.getLogger(name) for name in ("", "chat", "django", "channels_redis")]
    loggers += [logging.getLogger(name) for name in ("channels", "daphne", "asyncio")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield records
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def _describe(records: list[logging.LogRecord]) -> str:
    return "\n".join(f"{r.name} {r.levelname}: {r.getMessage()}" for r in records)


@pytest.fixture
def dormant(make_user: Any) -> Any:
    return make_user("dormant", is_active=False)


@pytest.fixture
def chat_settings(settings: Any) -> Any:
    # Frames must not be refused for speed: the barrage sends thousands a second (the
    # throttles have tests of their own).
    settings.CHAT_RATE_LIMIT = None
    settings.CHAT_FRAME_RATE_LIMIT = None
    settings.CHAT_MAX_MESSAGE_LENGTH = MAX_TEXT_LENGTH
    return settings


BARRAGE_EXAMPLES = 110


@pytest.mark.timeout(90)
async def test_every_hostile_frame_gets_its_contract_reply_and_the_socket_stays_open(
    connect_as, alice, bob, dormant, chat_settings
):
    bob_socket = await connect_as(bob)
    barrage = Barrage(connect_as, alice)
    await barrage.open()
    loop = asyncio.get_running_loop()

    # Hypothesis runs in a thread and hands each batch to this loop, so that one socket takes
    # the whole run and the checks after it can follow in this test.
    @hypothesis.settings(
        max_examples=BARRAGE_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        # No shrinking: the socket is shared, and the failure names the frame.
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=[
            hypothesis.HealthCheck.too_slow,
            hypothesis.HealthCheck.data_too_large,
            hypothesis.HealthCheck.large_base_example,
        ],
        print_blob=False,
    )
    @hypothesis.given(st.lists(frames, min_size=20, max_size=60, unique_by=repr))
    @hypothesis.example(LANDMARKS)
    def throw_batches(batch: list[Frame]) -> None:
        asyncio.run_coroutine_threadsafe(barrage.throw_all(batch), loop).result(timeout=90)

    with problems_logged() as logged:
        await asyncio.to_thread(throw_batches)
        socket = barrage.socket
        assert socket is not None
        await socket.send({"type": "ping"})
        assert (await socket.receive_until("pong"))["type"] == "pong"
        await socket.send({"type": "message", "recipient": "bob", "text": "still here"})
        assert (await socket.receive_until("response"))["code"] == 200
        # Bob's socket took the barrage's fan-out meanwhile: all of it well formed.
        while True:
            frame = await bob_socket.receive()
            _check_shape(frame)
            if frame["type"] == "message" and frame["text"] == "still here":
                break
    assert not logged, _describe(logged)
    print(f"\n{barrage.thrown} frames in {barrage.seconds:.1f} s: {dict(barrage.replies)}")
    assert barrage.thrown >= 2000
    # The generators reach every kind of answer.
    for reply in [error(400), error(404), error(413), NOTHING, PONG, SYNCED]:
        assert barrage.replies[reply], reply
    for code in (200, 400, 404, 413):
        assert barrage.replies[("response", code)], code


# Frame size: the contract's 64 KiB, in UTF-8 bytes.


async def assert_still_open(socket: ChatSocket) -> None:
    await socket.send({"type": "ping"})
    assert (await socket.receive_until("pong"))["type"] == "pong"


@pytest.mark.parametrize("char", ["x", "é", "€", "😀"])
async def test_frame_of_64_kib_is_read_and_one_byte_more_gets_413(
    connect_as, alice, chat_settings, char
):
    socket = await connect_as(alice)
    await socket.send_text(padded(MAX_FRAME_BYTES, char))
    assert await socket.receive() == {"type": "pong", "last_id": 0}
    sync = '{"type":"sync","after":5,"pad":"@"}'
    await socket.send_text(padded(MAX_FRAME_BYTES, char, sync))
    assert await socket.receive() == {"type": "synced", "last_id": 5, "has_more": False}

    # Fewer characters than bytes: the limit counts bytes.
    await socket.send_text(padded(MAX_FRAME_BYTES + 1, char))
    refused = await socket.receive()
    assert refused["type"] == "error" and refused["code"] == 413, refused
    await assert_still_open(socket)


async def test_frame_far_over_64_kib_is_refused_before_it_is_parsed(
    connect_as, alice, chat_settings
):
    socket = await connect_as(alice)
    # Parsed, these would be a 400 (nesting) and a pong: unparsed, both are a 413.
    for text in ["[" * (1 << 20), padded(MAX_FRAME_BYTES * 4, "x")]:
        started = time.perf_counter()
        await socket.send_text(text)
        refused = await socket.receive()
        assert time.perf_counter() - started < 0.5
        assert refused["type"] == "error" and refused["code"] == 413, refused
    await assert_still_open(socket)


async def test_binary_frame_over_64_kib_gets_413(connect_as, alice, chat_settings):
    socket = await connect_as(alice)
    await socket.communicator.send_to(bytes_data=padded(MAX_FRAME_BYTES + 1, "x").encode())
    refused = await socket.receive()
    assert refused["type"] == "error" and refused["code"] == 413, refused
    await assert_still_open(socket)


# Nesting and numbers: neither the stack nor the CPU.


REFUSED = {("error", 400)}


@pytest.mark.parametrize(
    ("text", "allowed"),
    [
        ("[" * 30_000 + "]" * 30_000, REFUSED),
        ('{"a":' * 10_000 + "0" + "}" * 10_000, REFUSED),
        ('[{"a":' * 5_000 + "0" + "}]" * 5_000, REFUSED),
        ("[" * 65_000, REFUSED),
        # A ping whose ignored field nests deep: refused, or answered if it can be read.
        ('{"type":"ping","x":' + "[" * 30_000 + "]" * 30_000 + "}", REFUSED | {("pong", None)}),
        # Too deep to read is a frame error; read, it is a malformed message.
        (
            '{"type":"message","recipient":"bob","text":' + "[" * 30_000 + "]" * 30_000 + "}",
            REFUSED | {("response", 400)},
        ),
    ],
    ids=["arrays", "objects", "mixed", "unclosed", "in-ping", "in-message"],
)
async def test_deeply_nested_json_gets_a_400_quickly(
    connect_as, alice, chat_settings, text, allowed
):
    socket = await connect_as(alice)
    assert len(text.encode()) <= MAX_FRAME_BYTES
    started = time.perf_counter()
    await socket.send_text(text)
    reply = await socket.receive()
    assert time.perf_counter() - started < 0.5
    assert (reply["type"], reply.get("code")) in allowed, reply
    await assert_still_open(socket)


@pytest.mark.parametrize("digits", [4301, 60_000])
async def test_integers_of_any_length_are_json(connect_as, alice, chat_settings, digits):
    socket = await connect_as(alice)
    # A field the frame does not define is ignored, whatever JSON it holds.
    await socket.send_text('{"type":"ping","n":' + "9" * digits + "}")
    pong = await socket.receive()
    assert pong["type"] == "pong", pong
    # An id past 64 bits is still an id: no message is newer.
    await socket.send_text('{"type":"sync","after":' + "9" * digits + "}")
    synced = await socket.receive()
    assert synced["type"] == "synced", synced
    await socket.send_text('{"type":"sync","after":-' + "9" * digits + "}")
    refused = await socket.receive()
    assert refused["type"] == "error" and refused["code"] == 400, refused
