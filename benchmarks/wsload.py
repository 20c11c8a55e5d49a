"""A minimal WebSocket client for load tests: the opening handshake, then reading frames.

A fan-out benchmark with 1,000 clients on the same cores as the server measures the clients
unless each costs little: a general-purpose client library spends about as much per received
message as the emulator spends sending it. This client does what a load generator must and no
more (like ``wrk`` for HTTP): it checks the handshake (status 101, ``Sec-WebSocket-Accept``,
the subprotocol), answers pings, and keeps every frame it receives with the time it arrived,
for the caller to check after the timed part.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time

#: RFC 6455 section 1.3.
_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_TEXT, _BINARY, _CLOSE, _PING = 0x1, 0x2, 0x8, 0x9
#: The longest handshake response taken.
_MAX_HEAD = 16 * 1024


class HandshakeError(RuntimeError):
    """The server did not accept the WebSocket as asked."""


class LoadClient(asyncio.Protocol):
    """One WebSocket connection; ``frames`` holds (payload, receipt time) of each data frame."""

    def __init__(self, path: str, host: str, subprotocol: str) -> None:
        self._key = base64.b64encode(os.urandom(16))
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {self._key.decode()}\r\n"
            f"Sec-WebSocket-Protocol: {subprotocol}\r\n\r\n"
        ).encode()
        self._subprotocol = subprotocol
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._open = False
        self._closing = False
        self.frames: list[tuple[bytes, float]] = []
        #: Set with the first data frame (the service's ``connected`` message).
        self.first_frame: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self._buffer += data
        if not self._open and not self._read_head():
            return
        self._read_frames(now)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.first_frame.done():
            self.first_frame.set_exception(ConnectionError("the connection closed first"))
        if not self.closed.done():
            self.closed.set_result(None)

    # -- reading ---------------------------------------------------------------------------------

    def _fail(self, error: Exception) -> None:
        if not self.first_frame.done():
            self.first_frame.set_exception(error)
        if self._transport is not None:
            self._transport.abort()

    def _read_head(self) -> bool:
        """Check the handshake response once it is whole; whether the socket is open."""
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > _MAX_HEAD:
                self._fail(HandshakeError("the handshake response has no end"))
            return False
        status, *lines = self._buffer[:end].decode("latin-1").split("\r\n")
        del self._buffer[: end + 4]
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        digest = hashlib.sha1(self._key + _ACCEPT_GUID, usedforsecurity=False).digest()
        accept = base64.b64encode(digest).decode()
        if status.split(" ", 2)[1:2] != ["101"]:
            self._fail(HandshakeError(f"the server answered {status!r}"))
        elif headers.get("sec-websocket-accept") != accept:
            self._fail(HandshakeError("wrong Sec-WebSocket-Accept"))
        elif headers.get("sec-websocket-protocol") != self._subprotocol:
            self._fail(HandshakeError(f"subprotocol {headers.get('sec-websocket-protocol')!r}"))
        else:
            self._open = True
        return self._open

    def _read_frames(self, now: float) -> None:
        buffer, offset = self._buffer, 0
        while len(buffer) - offset >= 2:
            first, second = buffer[offset], buffer[offset + 1]
            if second & 0x80 or not first & 0x80:
                self._fail(ValueError("a masked or fragmented frame from the server"))
                return
            size, start = second & 0x7F, offset + 2
            if size >= 126:
                width = 2 if size == 126 else 8
                if len(buffer) < start + width:
                    break
                size = int.from_bytes(buffer[start : start + width], "big")
                start += width
            end = start + size
            if len(buffer) < end:
                break
            self._frame(first & 0x0F, bytes(buffer[start:end]), now)
            offset = end
        del buffer[:offset]

    def _frame(self, opcode: int, payload: bytes, now: float) -> None:
        if opcode in (_TEXT, _BINARY):
            if self.first_frame.done():
                self.frames.append((payload, now))
            else:
                self.first_frame.set_result(payload)
        elif opcode == _PING:
            self._send(0xA, payload)
        elif opcode == _CLOSE and self._transport is not None:
            if not self._closing:  # the server's close: answer it
                self._closing = True
                self._send(_CLOSE, payload[:2])
            self._transport.close()

    def _send(self, opcode: int, payload: bytes) -> None:
        """A control frame; client frames are masked (here with a zero key: the XOR is a no-op,
        which the protocol allows, and this client sends nothing secret)."""
        assert len(payload) < 126
        if self._transport is None or self._transport.is_closing():
            return
        self._transport.write(bytes((0x80 | opcode, 0x80 | len(payload))) + bytes(4) + payload)

    # -- closing ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Start the closing handshake (1000); ``closed`` is done when the socket is."""
        if self._transport is not None and not self._closing:
            self._closing = True
            self._send(_CLOSE, (1000).to_bytes(2, "big"))


async def connect(
    host: str, port: int, path: str, subprotocol: str, timeout: float = 30
) -> tuple[LoadClient, bytes]:
    """A connected client and its first data frame."""
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(
        lambda: LoadClient(path, f"{host}:{port}", subprotocol), host, port
    )
    first = await asyncio.wait_for(client.first_frame, timeout)
    return client, first
