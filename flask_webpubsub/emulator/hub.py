"""Connections, groups and users: the service's state, in memory.

A :class:`Session` is one logical connection (one connection id). Its WebSocket may come and go:
a reliable client that drops comes back within the recovery window to the same session, with
its groups and its unacknowledged messages. A frame is written straight to the socket when
nothing is queued before it and the kernel has taken everything written so far; otherwise it waits
in the session's queue for a per-socket pump task that sends with back-pressure. So a broadcast
never waits for a slow client, and a client that falls too far behind is closed, as the service
does.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal, Protocol

from aiohttp import web

from .messages import (
    Payload,
    connected_message,
    disconnected_message,
    websocket_frame,
    with_sequence_id,
)
from .trace import LiveTrace

logger = logging.getLogger(__name__)

Kind = Literal["simple", "json", "reliable"]

#: What the service keeps for a client that does not keep up (messages, bytes).
MAX_PENDING_MESSAGES = 1000
MAX_PENDING_BYTES = 16 * 1024 * 1024
#: How many processed ackIds a connection remembers for ``Duplicate`` detection.
MAX_ACK_IDS = 10_000
#: How long closing a socket may take before it is cut.
CLOSE_TIMEOUT = 5.0

#: WebSocket close codes.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008  # ends the session: a reliable client must not try to recover

PERMISSIONS = ("joinLeaveGroup", "sendToGroup")


class SessionHost(Protocol):
    """What a session needs from the emulator."""

    trace: LiveTrace
    recovery_timeout: float
    ack_delay: float

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]: ...

    def notify(self, session: Session, event_name: str, body: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True, eq=False)
class Message:
    """A data message, encoded once for every recipient."""

    payload: Payload
    #: The JSON-client frame, without ``sequenceId``.
    json_frame: str

    @cached_property
    def simple_wire(self) -> bytes:
        """The whole WebSocket frame for simple clients, built once for all of them."""
        return websocket_frame(self.payload.simple_frame)

    @cached_property
    def json_wire(self) -> bytes:
        """The whole WebSocket frame for JSON clients, built once for all of them."""
        return websocket_frame(self.json_frame)


class Session:
    """One client connection."""

    def __init__(
        self,
        host: SessionHost,
        hub: Hub,
        connection_id: str,
        *,
        kind: Kind,
        user_id: str | None = None,
        roles: set[str] | None = None,
        subprotocol: str | None = None,
        state: str | None = None,
    ) -> None:
        self.host = host
        self.hub = hub
        self.connection_id = connection_id
        self.kind = kind
        self.user_id = user_id
        self.roles: set[str] = set(roles or ())
        self.subprotocol = subprotocol
        #: The ``ce-connectionState`` value the upstream last set.
        self.state = state
        self.groups: set[str] = set()
        self.connected_at = time.time()
        self.reconnection_token = secrets.token_urlsafe(32) if kind == "reliable" else None
        self.ended = False
        #: The last upstream notification, so they reach the app in order.
        self.last_notification: asyncio.Task[None] | None = None

        self._socket: web.WebSocketResponse | None = None
        self._transport: asyncio.Transport | None = None
        self._queue: deque[str | bytes] = deque()
        self._queued_bytes = 0
        self._wakeup = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._close_request: tuple[int, str] | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._sequence_id = 0
        self._unacked: deque[tuple[int, str]] = deque()
        self._unacked_bytes = 0
        self._ack_ids: set[int] = set()
        self._ack_order: deque[int] = deque()

    def __repr__(self) -> str:
        return f"<Session {self.connection_id} hub={self.hub.name!r} user={self.user_id!r}>"

    @property
    def hub_name(self) -> str:
        return self.hub.name

    @property
    def attached(self) -> bool:
        """Whether a WebSocket is connected now (a reliable session may be waiting for one)."""
        return self._socket is not None

    def is_socket(self, ws: web.WebSocketResponse) -> bool:
        return self._socket is ws

    # -- permissions ---------------------------------------------------------------------------

    def can(self, permission: str, group: str) -> bool:
        """Whether a role allows ``permission`` (joinLeaveGroup, sendToGroup) on ``group``."""
        role = f"webpubsub.{permission}"
        return role in self.roles or f"{role}.{group}" in self.roles

    # -- groups --------------------------------------------------------------------------------

    def join(self, group: str) -> None:
        if self.ended or group in self.groups:
            return
        self.groups.add(group)
        self.hub.groups.setdefault(group, {})[self.connection_id] = self
        self.host.trace.add("connection", self.hub.name, self.connection_id, f"joined {group}")
        self.host.notify(self, "joined", {"group": group})

    def leave(self, group: str) -> None:
        if group not in self.groups:
            return
        self.groups.discard(group)
        self.hub.forget_member(group, self.connection_id)
        self.host.trace.add("connection", self.hub.name, self.connection_id, f"left {group}")
        self.host.notify(self, "left", {"group": group})

    # -- acks ----------------------------------------------------------------------------------

    def is_duplicate(self, ack_id: int) -> bool:
        return ack_id in self._ack_ids

    def record_ack(self, ack_id: int) -> None:
        """Remember a processed ackId, so a resend of it is answered ``Duplicate``."""
        self._ack_ids.add(ack_id)
        self._ack_order.append(ack_id)
        if len(self._ack_order) > MAX_ACK_IDS:
            self._ack_ids.discard(self._ack_order.popleft())

    def acknowledge_sequence(self, sequence_id: int) -> None:
        """The client has every message up to ``sequence_id``: stop keeping them."""
        while self._unacked and self._unacked[0][0] <= sequence_id:
            _, frame = self._unacked.popleft()
            self._unacked_bytes -= len(frame)

    # -- sending -------------------------------------------------------------------------------

    def send_control(self, frame: str) -> None:
        """An ack or system frame, for JSON clients; lost if the socket is gone."""
        if self.kind != "simple":
            self._enqueue(frame)

    def send_ack(self, frame: str) -> None:
        """An ack, a little later: the Python client SDK loses an ack that arrives before it
        starts waiting for it (and then waits its whole ack timeout), which a loopback
        emulator in the same process makes likely; ``ack_delay`` is the network's latency."""
        delay = self.host.ack_delay
        if delay <= 0:
            self.send_control(frame)
            return
        ws = self._socket

        def send() -> None:
            if self._socket is ws:
                self.send_control(frame)

        asyncio.get_running_loop().call_later(delay, send)

    def deliver(self, message: Message) -> None:
        """A data message: raw for simple clients, JSON (with a sequence id when reliable)."""
        if self.ended:
            return
        if self.kind == "simple":
            self._enqueue(message.payload.simple_frame, wire=message.simple_wire)
        elif self.kind == "json":
            self._enqueue(message.json_frame, wire=message.json_wire)
        else:
            self._sequence_id += 1
            frame = with_sequence_id(message.json_frame, self._sequence_id)
            self._unacked.append((self._sequence_id, frame))
            self._unacked_bytes += len(frame)
            if len(self._unacked) > MAX_PENDING_MESSAGES or self._unacked_bytes > MAX_PENDING_BYTES:
                self._overflow("unacknowledged")
                return
            self._enqueue(frame, limit=False)

    def _enqueue(
        self, frame: str | bytes, *, limit: bool = True, wire: bytes | None = None
    ) -> None:
        """Send ``frame`` (``wire``: the same as a whole WebSocket frame, if already built)."""
        ws, transport = self._socket, self._transport
        if ws is None or self._close_request is not None:
            return
        if (
            not self._queue
            and transport is not None
            and not ws.closed
            and not transport.is_closing()
            and not transport.get_write_buffer_size()
        ):
            # Nothing to keep order with and the client keeps up: waking the pump would only
            # cost time. (The pump writes each frame before it awaits, so none is in flight.)
            transport.write(websocket_frame(frame) if wire is None else wire)
            return
        self._queue.append(frame)
        self._queued_bytes += len(frame)
        self._wakeup.set()
        if limit and (
            len(self._queue) > MAX_PENDING_MESSAGES or self._queued_bytes > MAX_PENDING_BYTES
        ):
            self._overflow("undelivered")

    def _overflow(self, what: str) -> None:
        reason = (
            f"The connection has more than {MAX_PENDING_MESSAGES} {what} messages or "
            f"{MAX_PENDING_BYTES // (1024 * 1024)} MB: the client does not keep up."
        )
        logger.warning("Closing connection %s in hub %s: %s", self.connection_id, self.hub.name,
                       reason)
        self.host.spawn(self.end(reason))

    async def _run_pump(self, ws: web.WebSocketResponse) -> None:
        try:
            while True:
                if not self._queue:
                    if self._close_request is not None:
                        break
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                frame = self._queue.popleft()
                self._queued_bytes -= len(frame)
                if isinstance(frame, str):
                    await ws.send_str(frame)
                else:
                    await ws.send_bytes(frame)
            code, reason = self._close_request
            await ws.close(code=code, message=reason.encode()[:120])
        except ConnectionError:
            pass  # the socket is gone; the receive loop sees it too

    # -- the socket's life ---------------------------------------------------------------------

    def attach(self, ws: web.WebSocketResponse, transport: asyncio.Transport | None) -> None:
        """Start sending on a (new) socket; a recovered reliable session re-sends what the client
        has not acknowledged."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if self._socket is not None:  # a recovery while the old socket still looks open
            self._stop_pump()
            if self._transport is not None:
                self._transport.abort()
        self._socket = ws
        self._transport = transport
        self._close_request = None
        self._queue.clear()
        self._queued_bytes = 0
        self._wakeup = asyncio.Event()
        self._pump = self.host.spawn(self._run_pump(ws))
        if self.kind != "simple":
            self._enqueue(
                connected_message(self.connection_id, self.user_id, self.reconnection_token)
            )
        for _, frame in self._unacked:
            self._enqueue(frame, limit=False)

    def detach(self) -> None:
        """The socket dropped without a close: keep the session for the recovery window."""
        self._stop_pump()
        self._socket = None
        self._transport = None
        self._queue.clear()
        self._queued_bytes = 0
        self.host.trace.add(
            "connection", self.hub.name, self.connection_id,
            f"dropped; waiting {self.host.recovery_timeout:g} s for the client to recover",
        )
        self._expiry = asyncio.get_running_loop().call_later(
            self.host.recovery_timeout, self._expire
        )

    def _expire(self) -> None:
        self._expiry = None
        if not self.ended and self._socket is None:
            self.host.spawn(
                self.end(
                    f"The connection was not recovered within {self.host.recovery_timeout:g} "
                    "seconds.",
                    code=CLOSE_POLICY,
                )
            )

    def _stop_pump(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            self._pump = None

    def drop(self) -> bool:
        """Cut the socket without a close frame, as a network failure would (fault injection)."""
        if self._transport is None:
            return False
        self._transport.abort()
        return True

    async def end(
        self,
        reason: str | None,
        *,
        code: int = CLOSE_POLICY,
        notify_upstream: bool = True,
    ) -> None:
        """Remove the connection: tell the client why, close its socket, tell the upstream."""
        if self.ended:
            return
        self.ended = True
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self.hub.remove(self)
        ws, pump = self._socket, self._pump
        if ws is not None:
            if self.kind != "simple":
                self._enqueue(disconnected_message(reason))
            self._close_request = (code, reason or "")
            self._wakeup.set()
            if pump is not None:
                done, _ = await asyncio.wait({pump}, timeout=CLOSE_TIMEOUT)
                if not done:
                    pump.cancel()
            if not ws.closed and self._transport is not None:
                self._transport.abort()
        self._socket = None
        self._transport = None
        self._queue.clear()
        self._unacked.clear()
        self._ack_ids.clear()
        self._ack_order.clear()
        self.host.trace.add(
            "connection", self.hub.name, self.connection_id,
            "disconnected" + (f": {reason}" if reason else ""),
        )
        if notify_upstream:
            self.host.notify(self, "disconnected", {"reason": reason})


class Hub:
    """The connections, groups and users of one hub (name in lower case)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.connections: dict[str, Session] = {}
        self.groups: dict[str, dict[str, Session]] = {}
        self.users: dict[str, dict[str, Session]] = {}
        #: Groups a user was added to with the REST API; that user's new connections join too.
        self.user_groups: dict[str, set[str]] = {}

    @property
    def idle(self) -> bool:
        return not self.connections and not self.user_groups

    def add(self, session: Session) -> None:
        self.connections[session.connection_id] = session
        if session.user_id is not None:
            self.users.setdefault(session.user_id, {})[session.connection_id] = session

    def remove(self, session: Session) -> None:
        if self.connections.get(session.connection_id) is not session:
            return
        del self.connections[session.connection_id]
        if session.user_id is not None:
            sessions = self.users.get(session.user_id)
            if sessions is not None:
                sessions.pop(session.connection_id, None)
                if not sessions:
                    del self.users[session.user_id]
        for group in session.groups:
            self.forget_member(group, session.connection_id)

    def forget_member(self, group: str, connection_id: str) -> None:
        members = self.groups.get(group)
        if members is not None:
            members.pop(connection_id, None)
            if not members:
                del self.groups[group]

    def members(self, group: str) -> list[Session]:
        return list(self.groups.get(group, {}).values())

    def user_sessions(self, user_id: str) -> list[Session]:
        return list(self.users.get(user_id, {}).values())
