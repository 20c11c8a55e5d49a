"""The protobuf subprotocols frame by frame, with frames written out byte by byte (the working
protobuf clients, built with protobufjs, are in test_client_js.py): what the emulator refuses,
and what it answers."""

from __future__ import annotations

import pytest
from websockets.sync.client import connect

from flask_webpubsub.emulator import EmulatorThread

from .conftest import ALL_ROLES, bare_url, read_until_closed, subprotocols

PROTOBUF = "protobuf.webpubsub.azure.v1"
RELIABLE_PROTOBUF = "protobuf.reliable.webpubsub.azure.v1"


def field(number: int, value: bytes) -> bytes:
    """A length-delimited field (numbers and lengths below 128 here: one byte each)."""
    return bytes([number << 3 | 2, len(value)]) + value


def varint(number: int, value: int) -> bytes:
    out = bytearray([number << 3])
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


def send_text(group: bytes, text: bytes, *extra: bytes) -> bytes:
    return field(1, field(1, group) + field(3, field(1, text)) + b"".join(extra))


CONNECTED_PREFIX = b"\x1a"  # DownstreamMessage.system_message, connected or disconnected
PONG = b"\x22\x00"  # DownstreamMessage.pong_message, empty


def test_ping_acks_and_a_round_trip(bare: EmulatorThread) -> None:
    with connect(bare_url(bare, "p", ALL_ROLES), subprotocols=subprotocols(PROTOBUF)) as ws:
        assert ws.recv(timeout=5)[:1] == CONNECTED_PREFIX
        ws.send(field(9, b""))
        assert ws.recv(timeout=5) == PONG
        # join (ack id 0 is an ack id too: proto3 optional), then send to the group
        ws.send(field(6, field(1, b"g") + varint(2, 0)))
        assert ws.recv(timeout=5) == field(1, varint(1, 0) + varint(2, 1))
        ws.send(send_text(b"g", b"hi", varint(5, 300)))
        assert ws.recv(timeout=5) == field(
            2, field(1, b"group") + field(2, b"g") + field(3, field(1, b"hi"))
        )
        # metadata alone is a message: empty text
        ws.send(field(1, field(1, b"g") + field(6, field(1, b"k") + field(2, b"v"))))
        assert ws.recv(timeout=5) == field(
            2, field(1, b"group") + field(2, b"g") + field(3, field(1, b""))
            + field(5, field(1, b"k") + field(2, b"v"))
        )
        # a forbidden join is answered, not closed
        with connect(bare_url(bare, "nobody"), subprotocols=subprotocols(PROTOBUF)) as other:
            other.recv(timeout=5)
            other.send(field(6, field(1, b"g") + varint(2, 7)))
            ack = other.recv(timeout=5)
            assert ack[:1] == b"\x0a"  # ack_message
            assert b"Forbidden" in ack


def test_a_reliable_client_numbers_and_acknowledges(bare: EmulatorThread) -> None:
    url = bare_url(bare, "r", ALL_ROLES, ["g"])
    with connect(url, subprotocols=subprotocols(RELIABLE_PROTOBUF)) as ws:
        connected = ws.recv(timeout=5)
        assert connected[:1] == CONNECTED_PREFIX
        for n in range(1, 3):
            ws.send(send_text(b"g", b"x"))
            assert ws.recv(timeout=5)[-2:] == varint(4, n)
        ws.send(field(8, varint(1, 2)))
        ws.send(field(9, b""))
        assert ws.recv(timeout=5) == PONG


INVALID = {
    "text frame": "text",
    "empty": b"",
    "truncated varint": b"\x0a\x80",
    "past the end": b"\x0a\x05ab",
    "group wire type": b"\x0b",
    "field zero": b"\x02\x00",
    "unknown message only": field(15, b""),
    "sequence ack, not reliable": field(8, varint(1, 1)),
    "empty group": field(6, field(1, b"")),
    "group not UTF-8": field(6, field(1, b"\xff")),
    "negative ack id": field(6, field(1, b"g") + b"\x10" + b"\xff" * 9 + b"\x01"),
    "no data": field(1, field(1, b"g")),
    "empty data": field(1, field(1, b"g") + field(3, b"")),
    "json_data not JSON": field(1, field(1, b"g") + field(3, field(4, b"{nope"))),
    "protobuf_data malformed": field(1, field(1, b"g") + field(3, field(3, b"\x0a\x09"))),
    "ttl over 300": send_text(b"g", b"x", varint(5, 301)),
    "a stream start": send_text(b"g", b"x", field(7, field(1, b"s"))),
    "bad metadata": send_text(b"g", b"x", field(6, field(1, b"a b") + field(2, b"v"))),
}


@pytest.mark.parametrize("frame", INVALID.values(), ids=INVALID.keys())
def test_invalid_frames_close_the_connection(bare: EmulatorThread, frame: str | bytes) -> None:
    with connect(bare_url(bare, "x", ALL_ROLES), subprotocols=subprotocols(PROTOBUF)) as ws:
        ws.recv(timeout=5)
        ws.send(frame)
        code, seen = read_until_closed(lambda: ws.recv(timeout=5))
    assert code == 1008
    # The disconnected message (system_message 3 / disconnected_message 2 / reason 2).
    assert seen[-1][:1] == CONNECTED_PREFIX
    assert b"Invalid message: " in seen[-1]
