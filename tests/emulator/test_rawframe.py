"""The socket writer's fast path: whole frames written as raw bytes."""

from __future__ import annotations

import pytest

from flask_webpubsub.emulator.rawframe import encode as websocket_frame


@pytest.mark.parametrize(
    ("data", "header"),
    [
        ("", b"\x81\x00"),
        ("x" * 125, b"\x81\x7d"),
        ("x" * 126, b"\x81\x7e\x00\x7e"),
        (b"\x00" * 65535, b"\x82\x7e\xff\xff"),
        (b"\x00" * 65536, b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
    ],
)
def test_frames_use_the_shortest_length_form(data: str | bytes, header: bytes) -> None:
    # Clients may refuse a longer form than needed (RFC 6455 5.2: "the minimal number of bytes
    # MUST be used"); the clients in these tests accept it, so the bytes are checked here.
    frame = websocket_frame(data)
    assert frame[: len(header)] == header
    assert frame[len(header):] == (data.encode() if isinstance(data, str) else data)
