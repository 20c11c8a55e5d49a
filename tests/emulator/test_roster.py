"""A hub's roster, whose methods are the only way its connections, groups and users change, and a
connection's delivery, acks and recovery, with the socket writer replaced by a recorder: no
sockets, no upstream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any

from flask_webpubsub.core.service import Admission
from flask_webpubsub.emulator.codec import Codec
from flask_webpubsub.emulator.connection import (
    CLOSE_NORMAL,
    CLOSE_POLICY,
    MAX_GROUPS,
    MAX_PENDING_MESSAGES,
    Connection,
)
from flask_webpubsub.emulator.json_codec import JSON, RELIABLE_JSON
from flask_webpubsub.emulator.messages import Ack, DataMessage
from flask_webpubsub.emulator.payload import Payload
from flask_webpubsub.emulator.rawframe import OutgoingFrame
from flask_webpubsub.emulator.roster import Roster
from flask_webpubsub.emulator.simple_codec import SIMPLE
from flask_webpubsub.emulator.trace import LiveTrace


class Host:
    """The service, as far as a roster can tell: it records the upstream events."""

    def __init__(self, recovery_timeout: float = 30.0) -> None:
        self.trace = LiveTrace()
        self.ack_delay = 0.0
        self.recovery_timeout = recovery_timeout
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.tasks: list[asyncio.Task[None]] = []

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.append(task)
        return task

    def notify(self, connection: Connection, event_name: str, body: Any) -> None:
        self.events.append((event_name, connection.connection_id, dict(body)))


class Writer:
    """A socket writer that keeps what it is given; ``backlog`` pretends a slow client."""

    def __init__(self) -> None:
        self.frames: list[OutgoingFrame] = []
        self.closed: tuple[int, str] | None = None
        self.stopped = False
        self.backlog = 0

    @property
    def queued_frames(self) -> int:
        return self.backlog

    @property
    def queued_bytes(self) -> int:
        return 0

    @property
    def sent(self) -> list[Any]:
        return [json.loads(f.data) if isinstance(f.data, str) else f.data for f in self.frames]

    def send(self, frame: OutgoingFrame) -> bool:
        self.frames.append(frame)
        return not self.backlog

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def stop(self) -> None:
        self.stopped = True

    def abort(self) -> bool:
        return True

    def hang(self) -> bool:
        return True


def _connect(
    roster: Roster, connection_id: str, user_id: str | None = None, codec: Codec = JSON
) -> tuple[Connection, Writer]:
    connection = roster.connect(connection_id, codec, Admission(user_id=user_id), None)
    writer = Writer()
    connection.attach(writer)
    return connection, writer


def test_groups_change_through_the_roster_both_ways() -> None:
    host = Host()
    roster = Roster("chat", host)
    a, _ = _connect(roster, "a", "ann")
    b, _ = _connect(roster, "b")
    assert dict(roster.connections) == {"a": a, "b": b}
    assert set(roster.users) == {"ann"}
    roster.join(a, "room")
    roster.join(a, "room")  # already in it: nothing happens
    roster.join(b, "room")
    assert roster.members("room") == [a, b]
    assert set(a.groups) == {"room"}
    roster.leave(b, "room")
    roster.leave(b, "room")
    roster.leave(b, "elsewhere")
    assert roster.members("room") == [a]
    assert set(b.groups) == set()
    roster.join(a, "hall")
    roster.leave_all(a)
    assert not roster.groups
    assert host.events == [
        ("joined", "a", {"group": "room"}),
        ("joined", "b", {"group": "room"}),
        ("left", "b", {"group": "room"}),
        ("joined", "a", {"group": "hall"}),
        ("left", "a", {"group": "hall"}),
        ("left", "a", {"group": "room"}),
    ]
    assert [e["text"] for e in host.trace.since()][:2] == ["joined room", "joined room"]


def test_a_users_groups_apply_to_its_connections_now_and_later() -> None:
    roster = Roster("chat", Host())
    first, _ = _connect(roster, "1", "ann")
    roster.add_user_to_group("ann", "room")
    roster.add_user_to_group("ann", "hall")
    assert set(first.groups) == {"room", "hall"}
    assert set(roster.user_groups("ann")) == {"room", "hall"}
    assert set(roster.user_groups(None)) == set()
    roster.remove_user_from_group("ann", "hall")
    assert set(first.groups) == {"room"}
    assert set(roster.user_groups("ann")) == {"room"}
    roster.remove_user_from_all_groups("ann")
    assert set(first.groups) == set()
    assert roster.idle is False  # a connection is still there
    assert set(roster.user_groups("ann")) == set()


def test_a_user_at_the_group_limit_is_added_to_no_more_groups() -> None:
    roster = Roster("chat", Host())
    for i in range(MAX_GROUPS):
        assert roster.add_user_to_group("nobody-connected", f"g{i}")
    assert not roster.add_user_to_group("nobody-connected", "one-more")
    assert roster.add_user_to_group("nobody-connected", "g0")  # already in it
    assert "one-more" not in roster.user_groups("nobody-connected")

    ann, _ = _connect(roster, "a", "ann")
    bob, _ = _connect(roster, "b", "ann")
    for i in range(MAX_GROUPS):
        roster.join(bob, f"b{i}")
    assert not roster.has_room(bob, ["x"])
    assert roster.has_room(bob, ["b0", "b1"])
    assert not roster.add_user_to_group("ann", "x")  # one connection is full: nothing changes
    assert "x" not in roster.user_groups("ann")
    assert roster.members("x") == []
    assert not ann.groups


def test_ending_a_connection_forgets_it_everywhere_and_tells_the_client_and_upstream() -> None:
    async def scenario() -> None:
        host = Host()
        roster = Roster("chat", host)
        a, writer = _connect(roster, "a", "ann")
        roster.join(a, "room")
        await roster.end(a, "bye", code=CLOSE_NORMAL)
        assert a.ended
        assert (dict(roster.connections), dict(roster.groups), dict(roster.users)) == ({}, {}, {})
        assert roster.idle
        assert writer.sent[-1] == {"type": "system", "event": "disconnected", "message": "bye"}
        assert writer.closed == (CLOSE_NORMAL, "bye")
        assert host.events[-1] == ("disconnected", "a", {"reason": "bye"})
        await roster.end(a, "again")  # ended already: nothing more
        assert host.events[-1] == ("disconnected", "a", {"reason": "bye"})
        roster.join(a, "room")  # an ended connection joins nothing
        assert not roster.groups

        b, _ = _connect(roster, "b")
        await roster.end(b, "quietly", notify_upstream=False)
        assert host.events[-1][1] == "a"

    asyncio.run(scenario())


def test_a_message_is_encoded_once_per_protocol() -> None:
    roster = Roster("chat", Host())
    writers = [_connect(roster, f"j{n}")[1] for n in range(2)]
    simple = _connect(roster, "s", codec=SIMPLE)[1]
    message = DataMessage(Payload("text", text="hi"), group="room")
    for connection in roster.connections.values():
        connection.deliver(message)
    assert writers[0].frames[-1] is writers[1].frames[-1]
    assert writers[0].sent[-1]["data"] == "hi"
    assert simple.frames[-1].data == "hi"
    assert simple.frames[:-1] == []  # plain clients get no connected message either


def test_a_reliable_connection_resends_what_was_not_acknowledged() -> None:
    async def scenario() -> None:
        roster = Roster("chat", Host())
        connection, first = _connect(roster, "r", "ann", codec=RELIABLE_JSON)
        token = connection.reconnection_token
        assert token
        assert first.sent[0]["reconnectionToken"] == token
        for n in range(3):
            connection.deliver(DataMessage(Payload("text", text=f"m{n}")))
        assert [m["sequenceId"] for m in first.sent[1:]] == [1, 2, 3]
        connection.acknowledge(2)
        connection.detach()
        assert first.stopped
        assert not connection.attached
        connection.deliver(DataMessage(Payload("text", text="while away")))
        again = Writer()
        connection.attach(again)
        assert again.sent[0]["connectionId"] == "r"
        assert [(m["sequenceId"], m["data"]) for m in again.sent[1:]] == [
            (3, "m2"), (4, "while away")
        ]

    asyncio.run(scenario())


def test_an_unrecovered_connection_ends_after_the_recovery_window() -> None:
    async def scenario() -> None:
        host = Host(recovery_timeout=0.05)
        roster = Roster("chat", host)
        connection, _ = _connect(roster, "r", codec=RELIABLE_JSON)
        connection.detach()
        await asyncio.sleep(0.1)
        await asyncio.gather(*host.tasks)
        assert connection.ended
        assert host.events[-1] == (
            "disconnected", "r",
            {"reason": "The connection was not recovered within 0.05 seconds."},
        )

    asyncio.run(scenario())


def test_a_client_that_falls_behind_is_ended() -> None:
    async def scenario() -> None:
        host = Host()
        roster = Roster("chat", host)
        connection, writer = _connect(roster, "slow")
        writer.backlog = MAX_PENDING_MESSAGES + 1
        connection.deliver(DataMessage(Payload("text", text="one too many")))
        await asyncio.gather(*host.tasks)
        assert connection.ended
        assert writer.closed is not None
        assert writer.closed[0] == CLOSE_POLICY
        assert "does not keep up" in writer.closed[1]

    asyncio.run(scenario())


def test_acks_permissions_and_duplicates() -> None:
    roster = Roster("chat", Host())
    connection = roster.connect(
        "p", JSON, Admission(roles=("webpubsub.joinLeaveGroup.room",)), None
    )
    writer = Writer()
    connection.attach(writer)
    assert connection.can("joinLeaveGroup", "room")
    assert not connection.can("joinLeaveGroup", "hall")
    assert not connection.can("sendToGroup", "room")
    connection.grant("webpubsub.sendToGroup")
    assert connection.can("sendToGroup", "hall")
    connection.revoke("webpubsub.sendToGroup")
    assert not connection.can("sendToGroup", "hall")
    assert not connection.is_duplicate(1)
    connection.record_ack(1)
    assert connection.is_duplicate(1)
    connection.send_ack(Ack(1))
    assert writer.sent[-1] == {"type": "ack", "ackId": 1, "success": True}
