"""What the service does with each client request, in every client protocol (docs/protocol.md
section 8): permissions, groups, group sends, user events and their replies, and acks.

Requests of one connection are handled one at a time, in order, as the service does: a user event
blocks the next request until the upstream answers.
"""

from __future__ import annotations

from .connection import Connection
from .messages import (
    Ack,
    DataMessage,
    JoinGroup,
    LeaveGroup,
    Ping,
    Pong,
    Request,
    SendEvent,
    SendToGroup,
    SequenceAck,
)
from .payload import Payload
from .roster import Roster
from .service import Service
from .upstream import UpstreamError


async def handle(
    service: Service, roster: Roster, connection: Connection, request: Request
) -> None:
    """Carry out one request of ``connection``, and answer its ack id, if it has one."""
    if isinstance(request, SequenceAck):
        connection.acknowledge(request.sequence_id)
        return
    if isinstance(request, Ping):
        connection.send(Pong())
        return
    ack_id = request.ack_id
    if ack_id is not None and connection.is_duplicate(ack_id):
        connection.send_ack(
            Ack(ack_id, "Duplicate", f"Message with ack-id: {ack_id} has been processed")
        )
        return
    if isinstance(request, SendEvent):
        await _user_event(service, roster, connection, request.event, request.payload, ack_id)
        return
    if isinstance(request, JoinGroup):
        if not _allowed(service, connection, "joinLeaveGroup", request.group, "join", ack_id):
            return
        roster.join(connection, request.group)
    elif isinstance(request, LeaveGroup):
        if not _allowed(service, connection, "joinLeaveGroup", request.group, "leave", ack_id):
            return
        roster.leave(connection, request.group)
    else:
        if not _allowed(service, connection, "sendToGroup", request.group, "send to", ack_id):
            return
        _send_to_group(service, roster, connection, request)
    _succeeded(connection, ack_id)


def _allowed(
    service: Service,
    connection: Connection,
    permission: str,
    group: str,
    what: str,
    ack_id: int | None,
) -> bool:
    """Whether the connection may; if not, say so (Forbidden is not recorded: a retry with the
    same ack id is checked again)."""
    if connection.can(permission, group):
        return True
    reason = f"The connection has no permission to {what} group {group!r}."
    service.trace.add("error", connection.hub_name, connection.connection_id, reason)
    if ack_id is not None:
        connection.send_ack(Ack(ack_id, "Forbidden", reason))
    return False


def _send_to_group(
    service: Service, roster: Roster, sender: Connection, request: SendToGroup
) -> None:
    message = DataMessage(request.payload, group=request.group, from_user_id=sender.user_id)
    for member in roster.members(request.group):
        if not (request.no_echo and member is sender):
            member.deliver(message)
    service.trace.add(
        "message", roster.name, sender.connection_id,
        f"to group {request.group} ({request.payload.data_type}): {request.payload.preview()}",
    )


async def _user_event(
    service: Service,
    roster: Roster,
    connection: Connection,
    name: str,
    payload: Payload,
    ack_id: int | None,
) -> None:
    """A blocking user event: the reply goes back to the client; a failure ends the
    connection."""
    handler = service.upstream.handler(roster.name, name, system=False)
    service.trace.add("message", roster.name, connection.connection_id,
                      f"event {name} ({payload.data_type}): {payload.preview()}")
    if handler is None:
        await _fail(service, roster, connection, ack_id,
                    f"No event handler takes the user event {name!r}.")
        return
    try:
        reply = await service.upstream.send(
            handler, connection, name, payload.body, payload.content_type, system=False
        )
    except UpstreamError as exc:
        await _fail(service, roster, connection, ack_id, f"The {name!r} event failed: {exc}")
        return
    if connection.ended:
        return
    if not reply.ok:
        await _fail(service, roster, connection, ack_id,
                    f"The upstream answered the {name!r} event with {reply.status}.")
        return
    connection.connection_state = reply.next_connection_state(connection.connection_state)
    if reply.status != 204 and (reply.body or reply.content_type):
        try:
            answer = Payload.from_http(reply.content_type, reply.body, strict=False)
        except ValueError as exc:
            await _fail(service, roster, connection, ack_id,
                        f"The upstream's reply to {name!r} is invalid: {exc}.")
            return
        connection.deliver(DataMessage(answer))
        service.trace.add("message", roster.name, connection.connection_id,
                          f"reply ({answer.data_type}): {answer.preview()}")
    _succeeded(connection, ack_id)


async def _fail(
    service: Service, roster: Roster, connection: Connection, ack_id: int | None, reason: str
) -> None:
    service.trace.add("error", roster.name, connection.connection_id, reason)
    if ack_id is not None:
        connection.send(Ack(ack_id, "InternalServerError", reason))
    await roster.end(connection, reason)


def _succeeded(connection: Connection, ack_id: int | None) -> None:
    if ack_id is not None:
        connection.record_ack(ack_id)
        connection.send_ack(Ack(ack_id))
