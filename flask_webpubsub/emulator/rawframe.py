"""Whole WebSocket frames as bytes (RFC 6455 section 5.2), for the socket writer's fast path,
which writes them straight to the transport instead of through aiohttp.

aiohttp writes an uncompressed frame to the transport in one synchronous step, so bytes written
between two of its frames never split one. Sockets are opened without permessage-deflate, so a
frame here is never compressed either.
"""

from __future__ import annotations

import struct

_TEXT = 0x81  # FIN and the text opcode
_BINARY = 0x82  # FIN and the binary opcode
_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")


def encode(data: str | bytes) -> bytes:
    """``data`` as one whole frame from the server: final, unmasked, uncompressed, with the
    shortest length form; a text frame for ``str``, a binary frame for ``bytes``."""
    if isinstance(data, str):
        first, payload = _TEXT, data.encode()
    else:
        first, payload = _BINARY, data
    size = len(payload)
    if size < 126:
        header = _SHORT.pack(first, size)
    elif size < 1 << 16:
        header = _MEDIUM.pack(first, 126, size)
    else:
        header = _LONG.pack(first, 127, size)
    return header + payload


class OutgoingFrame:
    """One frame to send: its data (text for ``str``, binary for ``bytes``), the
    :func:`time.monotonic` time after which it must not be sent any more (None: any time), and,
    built on first use, its bytes on the wire, shared by every socket the frame goes to."""

    __slots__ = ("_raw", "data", "expires")

    def __init__(self, data: str | bytes, expires: float | None = None) -> None:
        self.data = data
        self.expires = expires
        self._raw: bytes | None = None

    def __repr__(self) -> str:
        kind = "text" if isinstance(self.data, str) else "binary"
        return f"<OutgoingFrame {kind}, {len(self.data)} long>"

    def expired(self, now: float) -> bool:
        return self.expires is not None and now > self.expires

    @property
    def raw(self) -> bytes:
        """The whole frame as bytes."""
        if self._raw is None:
            self._raw = encode(self.data)
        return self._raw
