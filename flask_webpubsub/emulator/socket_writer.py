"""Sending to one client's WebSocket: in order, and never making the sender wait.

A frame goes straight to the transport as raw bytes (:mod:`.rawframe`) when nothing is queued
before it and the kernel has taken everything written so far; otherwise it waits in a queue for a
pump task that sends with back-pressure. So a broadcast never waits for a slow client; how much a
client may fall behind is the connection's to judge, from :attr:`SocketWriter.queued_frames` and
:attr:`SocketWriter.queued_bytes`.

A socket can also go silent without closing (:meth:`SocketWriter.hang`, the half-open fault):
nothing more is sent or read, no ping either, and the TCP connection stays open until
:meth:`SocketWriter.abort` (the emulator's stop) cuts it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from .rawframe import OutgoingFrame

#: How long closing a socket may take before it is cut.
CLOSE_TIMEOUT = 5.0

Spawn = Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]]


class SocketWriter:
    """The sending side of one WebSocket, from its handshake until it closes or is cut."""

    def __init__(
        self, ws: web.WebSocketResponse, transport: asyncio.Transport | None, spawn: Spawn
    ) -> None:
        self._ws = ws
        self._transport = transport
        self._queue: deque[OutgoingFrame] = deque()
        self._queued_bytes = 0
        self._wakeup = asyncio.Event()
        #: The close frame's code and reason, once closing has begun: nothing more is sent.
        self._closing: tuple[int, str] | None = None
        #: Whether the socket has gone silent (half-open): nothing is sent or read any more.
        self.hung = False
        #: Whether its receive loop is waiting for a frame now (:meth:`hang` interrupts it).
        self.receiving = False
        self._receiver: asyncio.Task[Any] | None = None
        self._released = asyncio.Event()
        self._pump = spawn(self._run_pump())

    @property
    def queued_frames(self) -> int:
        return len(self._queue)

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    def send(self, frame: OutgoingFrame) -> bool:
        """Send a frame after those sent before it; nothing once closing has begun. Whether it
        went to the transport at once (else it is queued)."""
        if self._closing is not None or self.hung:
            return True
        if not self._queue and self._write_raw_when_idle(frame):
            return True
        self._queue.append(frame)
        self._queued_bytes += len(frame.data)
        self._wakeup.set()
        return False

    def _write_raw_when_idle(self, frame: OutgoingFrame) -> bool:
        """The fast path: when the transport is open and has nothing left to write, write the
        whole frame to it now, and say so. Waking the pump would only cost time, and it has no
        frame in flight (it writes each one before it awaits)."""
        transport = self._transport
        if (
            transport is None
            or self._ws.closed
            or transport.is_closing()
            or transport.get_write_buffer_size()
        ):
            return False
        transport.write(frame.raw)
        return True

    async def _run_pump(self) -> None:
        ws = self._ws
        try:
            while True:
                if not self._queue:
                    if self._closing is not None:
                        break
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                frame = self._queue.popleft()
                self._queued_bytes -= len(frame.data)
                if frame.expired(time.monotonic()):
                    continue  # its time to live ran out while it waited: it is never sent
                if isinstance(frame.data, str):
                    await ws.send_str(frame.data)
                else:
                    await ws.send_bytes(frame.data)
            code, reason = self._closing
            await ws.close(code=code, message=reason.encode()[:120])
        except ConnectionError:
            pass  # the socket is gone; the receive loop sees it too

    async def close(self, code: int, reason: str) -> None:
        """Send what is queued, then a close frame; cut the socket if that takes too long."""
        if self.hung:
            self.abort()
            return
        self._closing = (code, reason)
        self._wakeup.set()
        done, _ = await asyncio.wait({self._pump}, timeout=CLOSE_TIMEOUT)
        if not done:
            self._pump.cancel()
        if not self._ws.closed and self._transport is not None:
            self._transport.abort()

    def stop(self) -> None:
        """Stop sending, now: what is queued is dropped (the socket is gone or replaced)."""
        self._pump.cancel()
        self._queue.clear()
        self._queued_bytes = 0

    def abort(self) -> bool:
        """Cut the socket without a close frame, as a network failure would; whether there was
        a transport to cut."""
        self._released.set()
        if self._transport is None:
            return False
        self._transport.abort()
        return True

    def serve(self, receiver: asyncio.Task[Any] | None) -> None:
        """The task of the socket's receive loop, which :meth:`hang` interrupts."""
        self._receiver = receiver

    def hang(self) -> bool:
        """Go silent without closing, as a half-open connection does: send nothing more (no
        close frame, no ping, no pong), read nothing more (the client's frames stay in the
        kernel's buffers), and leave the TCP connection open until :meth:`abort`. Whether the
        socket was open."""
        transport = self._transport
        if (
            self.hung
            or self._closing is not None
            or transport is None
            or transport.is_closing()
            or self._ws.closed
        ):
            return False
        self.hung = True
        self.stop()
        transport.pause_reading()
        # aiohttp's own keep-alive would ping the client and, unanswered, close the socket.
        self._ws._cancel_heartbeat()
        self._ws._heartbeat = None
        if self.receiving and self._receiver is not None:
            # A frame read now would be answered (a ping by a pong), or its close frame by
            # one: the receive loop stops waiting instead, and waits for :meth:`released`.
            self._receiver.cancel()
        return True

    async def released(self) -> None:
        """Wait until the socket is cut (a hung socket stays open until then)."""
        await self._released.wait()
