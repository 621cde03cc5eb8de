"""The wire format: every client frame parses or fails with the contract's code."""

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from chat import protocol
from chat.exceptions import ProtocolError, TooLong


def parse(frame, *, max_text_length: int = 4000):
    raw = frame if isinstance(frame, str | bytes) else json.dumps(frame)
    return protocol.parse_client_frame(raw, max_text_length=max_text_length)


def test_message_frame_parses_to_send_message_with_optional_client_id():
    assert parse({"type": "message", "recipient": "bob", "text": "hi"}) == protocol.SendMessage(
        recipient="bob", text="hi", client_id=None
    )
    assert (
        parse(
            {"type": "message", "recipient": "ALL", "text": "hi", "client_id": "x" * 64}
        ).client_id
        == "x" * 64
    )


def test_fields_a_frame_does_not_define_are_ignored():
    frame = parse({"type": "message", "recipient": "bob", "text": "hi", "sender": "mallory"})
    assert frame == protocol.SendMessage(recipient="bob", text="hi", client_id=None)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"recipient": "bob"},
        {"text": "hi"},
        {"recipient": 5, "text": "hi"},
        {"recipient": None, "text": "hi"},
        {"recipient": "", "text": "hi"},
        {"recipient": "bob", "text": 5},
        {"recipient": "bob", "text": ["hi"]},
        {"recipient": "bob", "text": ""},
        {"recipient": "bob", "text": " \n\t "},
        {"recipient": "bob", "text": "nul\x00byte"},
        {"recipient": "bob", "text": "hi", "client_id": ""},
        {"recipient": "bob", "text": "hi", "client_id": "x" * 65},
        {"recipient": "bob", "text": "hi", "client_id": 7},
        {"recipient": "bob", "text": "hi", "client_id": None},
    ],
)
def test_malformed_message_is_a_400_response_not_an_error_frame(fields):
    with pytest.raises(ProtocolError) as caught:
        parse({"type": "message", **fields})
    assert caught.value.code == 400
    assert caught.value.command == "message"
    assert caught.value.detail


def test_malformed_message_echoes_a_readable_client_id():
    with pytest.raises(ProtocolError) as caught:
        parse({"type": "message", "recipient": "bob", "text": "", "client_id": "c-1"})
    assert caught.value.client_id == "c-1"


def test_text_over_the_limit_is_413_and_at_the_limit_is_accepted():
    assert parse({"type": "message", "recipient": "bob", "text": "é" * 10}, max_text_length=10)
    with pytest.raises(TooLong) as caught:
        parse(
            {"type": "message", "recipient": "bob", "text": "é" * 11, "client_id": "c"},
            max_text_length=10,
        )
    assert caught.value.code == 413
    assert caught.value.command == "message"
    assert caught.value.client_id == "c"
    assert "10" in caught.value.detail


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ({"type": "sync", "after": 0}, protocol.Sync(after=0)),
        ({"type": "sync", "after": 42}, protocol.Sync(after=42)),
        ({"type": "sync", "after": 10**30}, protocol.Sync(after=10**30)),
        ({"type": "typing", "recipient": "bob"}, protocol.Typing(recipient="bob")),
        ({"type": "read", "peer": "ALL", "up_to": 3}, protocol.Read(peer="ALL", up_to=3)),
        ({"type": "ping"}, protocol.Ping()),
    ],
)
def test_other_client_frames_parse(frame, expected):
    assert parse(frame) == expected


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "sync"},
        {"type": "sync", "after": -1},
        {"type": "sync", "after": 1.5},
        {"type": "sync", "after": 1.0},
        {"type": "sync", "after": True},
        {"type": "sync", "after": "3"},
        {"type": "read", "peer": "bob"},
        {"type": "read", "peer": 3, "up_to": 3},
        {"type": "read", "peer": "bob", "up_to": False},
        {"type": "typing"},
        {"type": "typing", "recipient": ["bob"]},
        {"type": "shout"},
        {"type": 5},
        {"kind": "message"},
        {},
    ],
)
def test_invalid_frames_are_400_errors(frame):
    with pytest.raises(ProtocolError) as caught:
        parse(frame)
    assert caught.value.code == 400
    assert caught.value.command is None
    assert caught.value.detail


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "",
        "[1, 2]",
        '"message"',
        "null",
        "42",
        '{"type": "ping"',
        '{"type": "sync", "after": NaN}',
        '{"type": "sync", "after": Infinity}',
        "[" * 30_000 + "]" * 30_000,
        b'{"type": "ping"}',
        None,
    ],
)
def test_anything_but_a_json_object_is_a_400_error(raw):
    with pytest.raises(ProtocolError) as caught:
        protocol.parse_client_frame(raw, max_text_length=4000)
    assert caught.value.code == 400


def test_frame_over_64_kib_is_refused_with_413_before_parsing():
    text = "x" * (protocol.MAX_FRAME_BYTES - 60)
    assert parse({"type": "message", "recipient": "bob", "text": text}, max_text_length=10**6)
    with pytest.raises(ProtocolError) as caught:
        protocol.parse_client_frame("{" + " " * protocol.MAX_FRAME_BYTES, max_text_length=4000)
    assert caught.value.code == 413


def test_frame_size_counts_utf8_bytes_not_characters():
    text = "인" * 22_000  # 66,000 bytes in UTF-8, 22,000 characters
    with pytest.raises(ProtocolError) as caught:
        parse({"type": "message", "recipient": "bob", "text": text}, max_text_length=10**6)
    assert caught.value.code == 413


def test_message_payload_formats_time_in_utc_with_microseconds_and_z():
    moment = datetime(2026, 11, 27, 6, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
    payload = protocol.message_payload(
        id=17, sender="alice", recipient=None, text="hi", sent_at=moment
    )
    assert payload == {
        "id": 17,
        "sender": "alice",
        "recipient": "ALL",
        "text": "hi",
        "sent_at": "2026-11-27T05:00:00.123456Z",
    }


def test_server_frames_have_the_contract_shapes():
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    payload = protocol.message_payload(id=1, sender="a", recipient="b", text="t", sent_at=moment)
    assert protocol.message_frame(payload, "c1") == {
        "type": "message",
        **payload,
        "client_id": "c1",
    }
    assert "client_id" not in protocol.message_frame(payload)
    assert protocol.hello_frame(user="a", online=["b", "a"], last_id=3) == {
        "type": "hello",
        "user": "a",
        "online": ["a", "b"],
        "last_id": 3,
    }
    assert protocol.response_frame(code=429, detail="slow", client_id="c", retry_after=2.5) == {
        "type": "response",
        "command": "message",
        "code": 429,
        "detail": "slow",
        "id": None,
        "client_id": "c",
        "retry_after": 2.5,
    }
    assert protocol.synced_frame(last_id=5, has_more=False) == {
        "type": "synced",
        "last_id": 5,
        "has_more": False,
    }
    assert protocol.read_frame(reader="a", peer="b", up_to=4) == {
        "type": "read",
        "reader": "a",
        "peer": "b",
        "up_to": 4,
    }
    assert protocol.presence_frame(online=["z", "y"], offline=[]) == {
        "type": "presence",
        "online": ["y", "z"],
        "offline": [],
    }
    assert protocol.pong_frame(last_id=9) == {"type": "pong", "last_id": 9}
    assert protocol.typing_frame(sender="a") == {"type": "typing", "sender": "a"}
    assert protocol.error_frame(code=400, detail="x") == {
        "type": "error",
        "code": 400,
        "detail": "x",
    }


def test_encode_keeps_unicode_readable_and_compact():
    assert (
        protocol.encode({"type": "typing", "sender": "인혜"}) == '{"type":"typing","sender":"인혜"}'
    )


def test_integers_too_long_for_python_are_still_json_and_out_of_range_ids():
    frame = protocol.parse_client_frame(
        '{"type": "sync", "after": ' + "9" * 5000 + "}", max_text_length=10
    )
    assert frame == protocol.Sync(after=2**64)
    with pytest.raises(ProtocolError):
        protocol.parse_client_frame(
            '{"type": "sync", "after": -' + "9" * 5000 + "}", max_text_length=10
        )


def test_binary_frame_over_the_size_limit_is_413_like_a_text_one():
    with pytest.raises(ProtocolError) as caught:
        protocol.parse_client_frame(b"x" * (protocol.MAX_FRAME_BYTES + 1), max_text_length=10)
    assert caught.value.code == 413


def test_encode_writes_integers_past_64_bits():
    huge = 10**40
    frame = protocol.synced_frame(last_id=huge, has_more=False)
    assert json.loads(protocol.encode(frame)) == {
        "type": "synced",
        "last_id": huge,
        "has_more": False,
    }
