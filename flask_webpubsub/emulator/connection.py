"""One logical client connection (one connection id) and what it is sent, in any client protocol.

A :class:`Connection` holds who the client is and what it may do, the ack ids it has used, and,
for a reliable protocol, the data messages it has not acknowledged. Its socket may come and go:
a reliable client that drops comes back within the recovery window to the same connection, and
gets again what it had not acknowledged. The socket itself is behind a :class:`Writer`; the
connection's groups are its hub's roster's to change.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Set
from typing import Protocol

from . import roles
from .codec import Codec, ReliableCodec
from .messages import Ack, Connected, DataMessage, Disconnected, Message
from .rawframe import OutgoingFrame
from .streams import CANCELLED, Stream

logger = logging.getLogger(__name__)

#: What the service keeps for a client that does not keep up (messages, bytes).
MAX_PENDING_MESSAGES = 1000
MAX_PENDING_BYTES = 16 * 1024 * 1024
#: How many processed ack ids a connection remembers for ``Duplicate`` answers.
MAX_ACK_IDS = 10_000

#: WebSocket close codes.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008  # ends the connection: a reliable client must not try to recover

#: How many invocations a connection may have waiting for the upstream at once. The service
#: documents no limit; without one, a single client could hold any number of upstream calls.
MAX_INVOCATIONS = 100

#: How many groups a connection may be in. The service documents no limit; without one, a
#: single client could make every group it names (a join costs memory in the roster and on the
#: live page). A thousand is far beyond any chat or dashboard, and still small.
MAX_GROUPS = 1000


class Writer(Protocol):
    """The sending side of a connection's socket."""

    @property
    def queued_frames(self) -> int: ...

    @property
    def queued_bytes(self) -> int: ...

    def send(self, frame: OutgoingFrame) -> bool:
        """Send after what was sent before; whether it went out at once (else it waits)."""

    async def close(self, code: int, reason: str) -> None: ...

    def stop(self) -> None: ...

    def abort(self) -> bool: ...

    def hang(self) -> bool: ...


#: Asks the connection's roster to end it (``connection``, ``reason``, close ``code``) soon.
EndLater = Callable[["Connection", "str | None", int], None]


class ResendBuffer:
    """A reliable client's data messages from the last one it acknowledged on, numbered by its
    protocol's codec: sent again when it recovers."""

    def __init__(self, codec: ReliableCodec) -> None:
        self._codec = codec
        self._last_sequence_id = 0
        self._frames: deque[tuple[int, OutgoingFrame]] = deque()
        self._bytes = 0

    def number(self, frame: OutgoingFrame) -> OutgoingFrame | None:
        """A data frame with the next sequence id, kept until acknowledged; None when the
        client has fallen too far behind."""
        self._last_sequence_id += 1
        numbered = OutgoingFrame(
            self._codec.number(frame.data, self._last_sequence_id), frame.expires
        )
        self._frames.append((self._last_sequence_id, numbered))
        self._bytes += len(numbered.data)
        if self._full():
            self._drop_expired()  # they no longer count: they are never sent again
            if self._full():
                return None
        return numbered

    def _full(self) -> bool:
        return len(self._frames) > MAX_PENDING_MESSAGES or self._bytes > MAX_PENDING_BYTES

    def _drop_expired(self) -> None:
        now = time.monotonic()
        kept = deque(item for item in self._frames if not item[1].expired(now))
        self._bytes = sum(len(frame.data) for _, frame in kept)
        self._frames = kept

    def acknowledge(self, sequence_id: int) -> None:
        """The client has every message up to ``sequence_id``: stop keeping them."""
        while self._frames and self._frames[0][0] <= sequence_id:
            _, frame = self._frames.popleft()
            self._bytes -= len(frame.data)

    def __iter__(self) -> Iterator[OutgoingFrame]:
        """What to send again, in order: the frames whose time to live has not run out."""
        self._drop_expired()
        return (frame for _, frame in self._frames)

    def clear(self) -> None:
        self._frames.clear()
        self._bytes = 0


class Connection:
    """One client connection of a hub."""

    def __init__(
        self,
        hub_name: str,
        connection_id: str,
        codec: Codec,
        *,
        user_id: str | None,
        roles: Iterable[str],
        subprotocol: str | None,
        connection_state: str | None,
        groups: Set[str],
        end_later: EndLater,
        ack_delay: float,
        recovery_timeout: float,
    ) -> None:
        self.hub_name = hub_name
        self.connection_id = connection_id
        self.codec = codec
        self._encoder = codec.encoder  # read once: delivery is the hot path
        self.user_id = user_id
        self.subprotocol = subprotocol
        #: The ``ce-connectionState`` value the upstream last set.
        self.connection_state = connection_state
        #: The groups it is in (its roster changes them).
        self.groups = groups
        self.connected_at = time.time()
        self._roles = set(roles)
        self._end_later = end_later
        self._ack_delay = ack_delay
        self._recovery_timeout = recovery_timeout
        self._resend = ResendBuffer(codec) if isinstance(codec, ReliableCodec) else None
        self.reconnection_token = secrets.token_urlsafe(32) if self._resend is not None else None
        self._writer: Writer | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._ended = False
        self._ack_ids: set[int] = set()
        self._ack_order: deque[int] = deque()
        self._invocations: dict[str, asyncio.Task[None]] = {}
        #: Its open group streams, by stream id (:mod:`.dispatch` opens and ends them).
        self.streams: dict[str, Stream] = {}

    def __repr__(self) -> str:
        return f"<Connection {self.connection_id} hub={self.hub_name!r} user={self.user_id!r}>"

    @property
    def reliable(self) -> bool:
        """Whether its client may recover it after a drop."""
        return self._resend is not None

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def attached(self) -> bool:
        """Whether a socket is connected now (a reliable connection may be waiting for one)."""
        return self._writer is not None

    def attached_to(self, writer: Writer) -> bool:
        return self._writer is writer

    # -- permissions ---------------------------------------------------------------------------

    @property
    def roles(self) -> Set[str]:
        return self._roles

    def grant(self, role: str) -> None:
        self._roles.add(role)

    def revoke(self, role: str) -> None:
        self._roles.discard(role)

    def can(self, permission: str, group: str) -> bool:
        """Whether a role allows ``permission`` (joinLeaveGroup, sendToGroup) on ``group``:
        a literal role or a wildcard group role (:mod:`.roles`)."""
        return roles.allows(self._roles, permission, group)

    # -- acks ----------------------------------------------------------------------------------

    def is_duplicate(self, ack_id: int) -> bool:
        return ack_id in self._ack_ids

    def record_ack(self, ack_id: int) -> None:
        """Remember a processed ack id, so a resend of it is answered ``Duplicate``."""
        self._ack_ids.add(ack_id)
        self._ack_order.append(ack_id)
        if len(self._ack_order) > MAX_ACK_IDS:
            self._ack_ids.discard(self._ack_order.popleft())

    def acknowledge(self, sequence_id: int) -> None:
        """The client has every data message up to ``sequence_id``."""
        if self._resend is not None:
            self._resend.acknowledge(sequence_id)

    # -- invocations ---------------------------------------------------------------------------

    @property
    def invocations(self) -> int:
        """How many of its invocations wait for the upstream."""
        return len(self._invocations)

    def is_invoking(self, invocation_id: str) -> bool:
        return invocation_id in self._invocations

    def start_invocation(self, invocation_id: str, task: asyncio.Task[None]) -> None:
        """Keep an invocation's task until it ends, so that it can be cancelled."""
        self._invocations[invocation_id] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._invocations.get(invocation_id) is done:
                del self._invocations[invocation_id]

        task.add_done_callback(forget)

    def cancel_invocation(self, invocation_id: str) -> bool:
        """Stop an invocation (its upstream call too); whether it was running."""
        task = self._invocations.pop(invocation_id, None)
        if task is None:
            return False
        task.cancel()
        return True

    # -- sending -------------------------------------------------------------------------------

    def send(self, message: Message) -> None:
        """An ack or a system message, if the protocol has it; lost if the socket is gone."""
        data = self.codec.encode(message)
        if data is not None:
            self._write(OutgoingFrame(data))

    def send_ack(self, ack: Ack) -> None:
        """An ack, a little later: the Python client SDK loses an ack that arrives before it
        starts waiting for it (and then waits its whole ack timeout), which a loopback
        emulator in the same process makes likely; ``ack_delay`` is the network's latency."""
        if self._ack_delay <= 0:
            self.send(ack)
            return
        writer = self._writer

        def send() -> None:
            if self._writer is writer:
                self.send(ack)

        asyncio.get_running_loop().call_later(self._ack_delay, send)

    def deliver(self, message: DataMessage) -> None:
        """A data message; numbered and kept until acknowledged by a reliable client."""
        if self._ended:
            return
        encoder = self._encoder
        try:
            frame = message.frames[encoder]
        except KeyError:
            data = encoder.encode(message)
            frame = message.frames[encoder] = (
                None if data is None else OutgoingFrame(data, message.expires)
            )
        if frame is None:
            return
        if self._resend is None:
            self._write(frame)
            return
        numbered = self._resend.number(frame)
        if numbered is None:
            self._overflow("unacknowledged")
            return
        self._write(numbered, limit=False)

    def _write(self, frame: OutgoingFrame, *, limit: bool = True) -> None:
        writer = self._writer
        if writer is None or writer.send(frame) or not limit:
            return
        if writer.queued_frames > MAX_PENDING_MESSAGES or writer.queued_bytes > MAX_PENDING_BYTES:
            self._overflow("undelivered")

    def _overflow(self, what: str) -> None:
        if self._ended:
            return
        reason = (
            f"The connection has more than {MAX_PENDING_MESSAGES} {what} messages or "
            f"{MAX_PENDING_BYTES // (1024 * 1024)} MB: the client does not keep up."
        )
        logger.warning("Closing connection %s in hub %s: %s", self.connection_id, self.hub_name,
                       reason)
        self._end_later(self, reason, CLOSE_POLICY)

    # -- the socket's life ---------------------------------------------------------------------

    def attach(self, writer: Writer) -> None:
        """Send on a (new) socket: the ``connected`` message, then, for a recovered reliable
        connection, what the client has not acknowledged."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if self._writer is not None:  # a recovery while the old socket still looks open
            self._writer.stop()
            self._writer.abort()
        self._writer = writer
        self.send(Connected(self.connection_id, self.user_id, self.reconnection_token))
        for frame in self._resend or ():
            self._write(frame, limit=False)

    def detach(self) -> None:
        """The socket dropped without a close: wait ``recovery_timeout`` for the client."""
        if self._writer is not None:
            self._writer.stop()
            self._writer = None
        self._wait_for_recovery()

    def _wait_for_recovery(self) -> None:
        self._expiry = asyncio.get_running_loop().call_later(
            self._recovery_timeout, self._expire
        )

    def _expire(self) -> None:
        self._expiry = None
        if not self._ended and self._writer is None:
            self._end_later(
                self,
                f"The connection was not recovered within {self._recovery_timeout:g} seconds.",
                CLOSE_POLICY,
            )

    def drop(self) -> bool:
        """Cut the socket without a close frame, as a network failure would (fault injection);
        whether there was one."""
        return self._writer is not None and self._writer.abort()

    def hang(self) -> Writer | None:
        """Let the socket go silent but open, as a half-open connection does (fault injection):
        the connection no longer has it, and a reliable one waits ``recovery_timeout`` for its
        client. The hung socket, for its owner to cut in the end; None if there was none."""
        writer = self._writer
        if writer is None or self._ended or not writer.hang():
            return None
        self._writer = None
        if self._resend is not None:
            self._wait_for_recovery()
        return writer

    def disconnected_body(self, reason: str | None) -> dict[str, object]:
        """The body of the ``disconnected`` event its end sends upstream."""
        return {"reason": reason}

    async def close(self, reason: str | None, code: int) -> None:
        """End it: tell the client why (if its protocol can), close the socket, forget what it
        was owed. Only its roster calls this, having forgotten it first."""
        self._ended = True
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        for stream in list(self.streams.values()):
            stream.end(CANCELLED, "The publisher's connection ended.")
        writer = self._writer
        if writer is not None:
            self.send(Disconnected(reason))
            await writer.close(code, reason or "")
        self._writer = None
        if self._resend is not None:
            self._resend.clear()
        self._ack_ids.clear()
        self._ack_order.clear()
        for invocation_id in list(self._invocations):
            self.cancel_invocation(invocation_id)
