"""A hub's roster: its connections, groups and users, in memory.

Only :class:`Roster`'s methods change them: the client endpoint and the REST API ask, the roster
changes, and tells the live trace and the upstream (``joined``, ``left``, ``disconnected``).
Everything else reads them through read-only views.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Coroutine, Mapping, Set
from typing import Any, Protocol

from flask_webpubsub.core.service import Admission

from .codec import Codec
from .connection import CLOSE_POLICY, MAX_GROUPS, Connection
from .trace import LiveTrace


class RosterHost(Protocol):
    """What a roster needs from the service."""

    trace: LiveTrace
    ack_delay: float
    recovery_timeout: float

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]: ...

    def notify(self, connection: Connection, event_name: str, body: Mapping[str, Any]) -> None: ...


class Roster:
    """The connections, groups and users of one hub (its name in lower case)."""

    def __init__(self, name: str, host: RosterHost) -> None:
        self.name = name
        self._host = host
        self._connections: dict[str, Connection] = {}
        #: Members of each group, by connection id.
        self._groups: dict[str, dict[str, Connection]] = {}
        #: Groups of each connection, by connection id (each connection reads its own set).
        self._memberships: dict[str, set[str]] = {}
        self._users: dict[str, dict[str, Connection]] = {}
        #: Groups a user was added to with the REST API; that user's new connections join too.
        self._user_groups: dict[str, set[str]] = {}

    def __repr__(self) -> str:
        return f"<Roster of hub {self.name!r}: {len(self._connections)} connections>"

    # -- reading -------------------------------------------------------------------------------

    @property
    def connections(self) -> Mapping[str, Connection]:
        return self._connections

    @property
    def groups(self) -> Mapping[str, Mapping[str, Connection]]:
        """Every group with members, and its members by connection id."""
        return self._groups

    @property
    def users(self) -> Mapping[str, Mapping[str, Connection]]:
        """Every user with connections, and its connections by connection id."""
        return self._users

    def user_groups(self, user_id: str | None) -> Set[str]:
        """The groups a user was added to with the REST API."""
        return self._user_groups.get(user_id or "", frozenset())

    @property
    def idle(self) -> bool:
        """Whether it holds nothing at all."""
        return not self._connections and not self._user_groups

    def members(self, group: str) -> list[Connection]:
        return list(self._groups.get(group, {}).values())

    def user_connections(self, user_id: str) -> list[Connection]:
        return list(self._users.get(user_id, {}).values())

    # -- connections ---------------------------------------------------------------------------

    def connect(
        self,
        connection_id: str,
        codec: Codec,
        admission: Admission,
        connection_state: str | None,
        *,
        kind: type[Connection] = Connection,
    ) -> Connection:
        """A new connection (a ``kind`` of it: an MQTT session is one too), in no group yet."""
        groups: set[str] = set()
        connection = kind(
            self.name,
            connection_id,
            codec,
            user_id=admission.user_id,
            roles=admission.roles,
            subprotocol=admission.subprotocol,
            connection_state=connection_state,
            groups=groups,
            end_later=self.end_later,
            ack_delay=self._host.ack_delay,
            recovery_timeout=self._host.recovery_timeout,
        )
        self._connections[connection_id] = connection
        self._memberships[connection_id] = groups
        if connection.user_id is not None:
            self._users.setdefault(connection.user_id, {})[connection_id] = connection
        return connection

    async def end(
        self,
        connection: Connection,
        reason: str | None,
        *,
        code: int = CLOSE_POLICY,
        notify_upstream: bool = True,
    ) -> None:
        """Remove a connection: tell the client why, close its socket, tell the upstream."""
        if connection.ended:
            return
        self._forget(connection)
        await connection.close(reason, code)
        self._host.trace.add(
            "connection", self.name, connection.connection_id,
            "disconnected" + (f": {reason}" if reason else ""),
        )
        if notify_upstream:
            self._host.notify(connection, "disconnected", connection.disconnected_body(reason))

    def end_later(self, connection: Connection, reason: str | None, code: int) -> None:
        """:meth:`end` in the background (for a connection that ends itself)."""
        self._host.spawn(self.end(connection, reason, code=code))

    def _forget(self, connection: Connection) -> None:
        connection_id = connection.connection_id
        if self._connections.get(connection_id) is not connection:
            return
        del self._connections[connection_id]
        if connection.user_id is not None:
            connections = self._users.get(connection.user_id)
            if connections is not None:
                connections.pop(connection_id, None)
                if not connections:
                    del self._users[connection.user_id]
        for group in self._memberships.pop(connection_id, ()):
            self._forget_member(group, connection_id)

    # -- groups --------------------------------------------------------------------------------

    def join(self, connection: Connection, group: str) -> bool:
        """Put the connection in the group; False when it is in :data:`MAX_GROUPS` groups
        already (and not in this one), or ended."""
        groups = self._memberships.get(connection.connection_id)
        if groups is None:
            return False
        if group in groups:
            return True
        if len(groups) >= MAX_GROUPS:
            return False
        groups.add(group)
        self._groups.setdefault(group, {})[connection.connection_id] = connection
        self._host.trace.add("connection", self.name, connection.connection_id, f"joined {group}")
        self._host.notify(connection, "joined", {"group": group})
        return True

    def leave(self, connection: Connection, group: str) -> None:
        groups = self._memberships.get(connection.connection_id)
        if groups is None or group not in groups:
            return
        groups.discard(group)
        self._forget_member(group, connection.connection_id)
        self._host.trace.add("connection", self.name, connection.connection_id, f"left {group}")
        self._host.notify(connection, "left", {"group": group})

    def leave_all(self, connection: Connection) -> None:
        for group in sorted(connection.groups):
            self.leave(connection, group)

    def _forget_member(self, group: str, connection_id: str) -> None:
        members = self._groups.get(group)
        if members is not None:
            members.pop(connection_id, None)
            if not members:
                del self._groups[group]

    # -- users' groups -------------------------------------------------------------------------

    def has_room(self, connection: Connection, groups: Collection[str]) -> bool:
        """Whether the connection can be in ``groups`` too without passing :data:`MAX_GROUPS`
        (an ended one has room: joining it does nothing)."""
        current = self._memberships.get(connection.connection_id)
        if current is None:
            return True
        return len(current) + sum(1 for g in set(groups) if g not in current) <= MAX_GROUPS

    def add_user_to_group(self, user_id: str, group: str) -> bool:
        """Put the user's connections in the group, and its later connections too. False, and
        nothing changed, when the user or one of its connections is in :data:`MAX_GROUPS`
        groups already (and not in this one)."""
        user_groups = self._user_groups.get(user_id, set())
        if group not in user_groups and len(user_groups) >= MAX_GROUPS:
            return False
        connections = self.user_connections(user_id)
        if not all(self.has_room(connection, (group,)) for connection in connections):
            return False
        self._user_groups.setdefault(user_id, set()).add(group)
        for connection in connections:
            self.join(connection, group)
        return True

    def remove_user_from_group(self, user_id: str, group: str) -> None:
        groups = self._user_groups.get(user_id)
        if groups is not None:
            groups.discard(group)
            if not groups:
                del self._user_groups[user_id]
        for connection in self.user_connections(user_id):
            self.leave(connection, group)

    def remove_user_from_all_groups(self, user_id: str) -> None:
        self._user_groups.pop(user_id, None)
        for connection in self.user_connections(user_id):
            self.leave_all(connection)
