"""The emulated service without its HTTP server: its hubs' rosters, access keys, upstream and
live trace, and the background tasks they run.

The client endpoint and the REST API both work on a :class:`Service`; the server
(:mod:`.server`) builds one and routes requests to them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any

from flask_webpubsub.core.jsoncodec import encode_json
from flask_webpubsub.core.wire import JSON_CONTENT_TYPE

from .connection import CLOSE_GOING_AWAY, Connection, Writer
from .identity import IdentityProvider
from .roster import Roster
from .trace import LiveTrace
from .upstream import Upstream, UpstreamError

logger = logging.getLogger(__name__)


class Service:
    """Each hub's roster (created on first use), the keys that sign and check every token, the
    upstream, and the live trace.

    ``recovery_timeout`` is how long a reliable connection waits for its client after a drop;
    ``ack_delay`` holds acks back as a network's latency would. With an ``identity`` provider,
    local auth is disabled: the REST API takes its Entra ID tokens, not access-key tokens.
    Clients of ``anonymous_hubs`` may connect without a token (the hub setting
    ``anonymousConnectPolicy: allow``; deny by default, as in the service).
    """

    def __init__(
        self,
        access_keys: tuple[str, ...],
        upstream: Upstream,
        *,
        recovery_timeout: float,
        ack_delay: float,
        identity: IdentityProvider | None = None,
        anonymous_hubs: Iterable[str] = (),
    ) -> None:
        self.access_keys = access_keys
        self.identity = identity
        #: Hubs whose anonymousConnectPolicy is allow (lower case; ``*``: every hub).
        self.anonymous_hubs = frozenset(hub.lower() for hub in anonymous_hubs)
        self.upstream = upstream
        self.recovery_timeout = recovery_timeout
        self.ack_delay = ack_delay
        self.trace = LiveTrace()
        self._rosters: dict[str, Roster] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: Sockets dropped half-open: open and silent until the emulator stops.
        self._half_open: set[Writer] = set()
        #: The last system event of each connection on its way upstream, so the next one waits.
        self._notifying: dict[str, asyncio.Task[None]] = {}

    @property
    def rosters(self) -> Mapping[str, Roster]:
        """The roster of every hub used so far, by lower-case hub name."""
        return self._rosters

    @property
    def tasks(self) -> int:
        """How many background tasks are running."""
        return len(self._tasks)

    def allows_anonymous(self, hub_name: str) -> bool:
        """Whether a client of the hub may connect without an access token."""
        return "*" in self.anonymous_hubs or hub_name.lower() in self.anonymous_hubs

    def roster(self, hub_name: str) -> Roster:
        """A hub's roster, created on first use (hub names are case-insensitive)."""
        key = hub_name.lower()
        roster = self._rosters.get(key)
        if roster is None:
            roster = self._rosters[key] = Roster(key, self)
        return roster

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a background task that :meth:`stop_tasks` cancels and whose failure is logged."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("Emulator task failed", exc_info=task.exception())

    def notify(self, connection: Connection, event_name: str, body: Mapping[str, Any]) -> None:
        """Send a system event upstream without waiting for it, after the connection's earlier
        ones."""
        handler = self.upstream.handler(connection.hub_name, event_name, system=True)
        if handler is None:
            return
        connection_id = connection.connection_id
        previous = self._notifying.get(connection_id)
        data = encode_json(dict(body))

        async def send() -> None:
            if previous is not None and not previous.done():
                await asyncio.wait({previous})
            try:
                reply = await self.upstream.send(
                    handler, connection, event_name, data, JSON_CONTENT_TYPE, system=True
                )
            except UpstreamError as exc:
                self.trace.add("error", connection.hub_name, connection_id,
                               f"{event_name} event failed: {exc}")
                return
            self.trace.add("upstream", connection.hub_name, connection_id,
                           f"{event_name} -> {reply.status}")

        task = self._notifying[connection_id] = self.spawn(send())

        def forget(task: asyncio.Task[None]) -> None:
            if self._notifying.get(connection_id) is task:
                del self._notifying[connection_id]

        task.add_done_callback(forget)

    def find(self, connection_id: str, hub: str | None = None) -> tuple[Roster, Connection] | None:
        """A connection (in ``hub``, else in any hub) and its hub's roster."""
        if hub is None:
            rosters = list(self._rosters.values())
        else:
            rosters = [r for r in [self._rosters.get(hub.lower())] if r is not None]
        for roster in rosters:
            connection = roster.connections.get(connection_id)
            if connection is not None:
                return roster, connection
        return None

    def drop(self, connection_id: str, hub: str | None = None) -> bool:
        """Cut a client's socket without a close frame, as a network failure would; whether a
        connected socket was found."""
        found = self.find(connection_id, hub)
        if found is None or not found[1].drop():
            return False
        roster = found[0]
        self.trace.add("connection", roster.name, connection_id, "dropped (fault injection)")
        logger.info("Dropped connection %s of hub %s (fault injection).", connection_id,
                    roster.name)
        return True

    async def drop_half_open(self, connection_id: str, hub: str | None = None) -> bool:
        """Let a client's socket go silent but open, as a half-open connection does: no close
        frame, no FIN, no data, nothing read; the connection is lost (a reliable one waits for
        its client to recover it, any other ends). The socket stays open until the emulator
        stops. Whether a connected socket was found."""
        found = self.find(connection_id, hub)
        if found is None:
            return False
        roster, connection = found
        writer = connection.hang()
        if writer is None:
            return False
        self._half_open.add(writer)
        logger.info("Dropped connection %s of hub %s half-open (fault injection).",
                    connection_id, roster.name)
        if connection.reliable:
            self.trace.add(
                "connection", roster.name, connection_id,
                f"dropped half-open (fault injection); waiting {self.recovery_timeout:g} s for "
                "the client to recover",
            )
        else:
            await roster.end(
                connection, "The connection was lost without a close frame (half-open)."
            )
        return True

    async def close(
        self, connection_id: str, code: int, reason: str | None, hub: str | None = None
    ) -> bool:
        """Close a connection with a close frame of ``code`` and ``reason`` (fault injection;
        the REST API's close sends 1008, which ends a reliable client's connection for good);
        whether it was found."""
        found = self.find(connection_id, hub)
        if found is None:
            return False
        roster, connection = found
        logger.info("Closing connection %s of hub %s with %d (fault injection).", connection_id,
                    roster.name, code)
        await roster.end(connection, reason, code=code)
        return True

    async def close_connections(self) -> None:
        """Close every connection: 1001 (going away), and no upstream event; cut the half-open
        sockets."""
        for writer in self._half_open:
            writer.abort()
        self._half_open.clear()
        await asyncio.gather(
            *(
                roster.end(connection, "The emulator is shutting down.", code=CLOSE_GOING_AWAY,
                           notify_upstream=False)
                for roster in self._rosters.values()
                for connection in list(roster.connections.values())
            )
        )

    async def stop_tasks(self) -> None:
        """Cancel every background task and wait for them to end."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
