"""What the service does with each client request, in every client protocol (docs/protocol.md
section 8): permissions, groups, group sends, user events and their replies, invocations, and
acks.

Requests of one connection are handled one at a time, in order, as the service does: a user event
blocks the next request until the upstream answers. An invocation does not: it runs on its own
(the client correlates its answer by invocation id), so that the client can cancel it, ping, and
invoke again meanwhile.
"""

from __future__ import annotations

from .connection import MAX_GROUPS, MAX_INVOCATIONS, Connection
from .messages import (
    Ack,
    CancelInvocation,
    DataMessage,
    EndStream,
    InvalidStreamRequest,
    Invoke,
    InvokeResponse,
    JoinGroup,
    LeaveGroup,
    Ping,
    Pong,
    Request,
    SendEvent,
    SendToGroup,
    SequenceAck,
    StartStream,
    StreamAck,
    StreamClosed,
    StreamData,
    StreamNack,
)
from .payload import Payload
from .roster import Roster
from .service import Service
from .streams import (
    CANCELLED,
    DEFAULT_IDLE_TIMEOUT,
    FORBIDDEN,
    MAX_STREAMS,
    USER_ERROR,
    Stream,
)
from .upstream import UpstreamError, UpstreamReply

#: The error of an invocation the upstream did not answer with success (the service's name for
#: "event handler is not registered or response is not a success status code", concept-ack.md).
INVOCATION_FAILED = "InvocationFailed"
#: What an invocation without data sends upstream.
_NO_DATA = Payload("text")


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
    if isinstance(request, Invoke):
        _start_invocation(service, roster, connection, request)
        return
    if isinstance(request, CancelInvocation):
        if connection.cancel_invocation(request.invocation_id):
            service.trace.add("message", roster.name, connection.connection_id,
                              f"invocation {request.invocation_id} cancelled by the client")
        return
    if isinstance(request, (StartStream, StreamData, EndStream, InvalidStreamRequest)):
        _stream_request(service, roster, connection, request)
        return
    ack_id = request.ack_id
    if ack_id is not None and connection.is_duplicate(ack_id):
        connection.send_ack(
            Ack(ack_id, "Duplicate", f"Message with ack-id: {ack_id} has been processed")
        )
        return
    if isinstance(request, SendEvent):
        await _user_event(service, roster, connection, request)
        return
    if isinstance(request, JoinGroup):
        if not _allowed(service, connection, "joinLeaveGroup", request.group, "join", ack_id):
            return
        if not roster.join(connection, request.group):
            reason = f"The connection is in {MAX_GROUPS} groups, the most it may join."
            service.trace.add("error", roster.name, connection.connection_id, reason)
            if ack_id is not None:
                connection.send_ack(Ack(ack_id, "BadRequest", reason))
            return
    elif isinstance(request, LeaveGroup):
        if not _allowed(service, connection, "joinLeaveGroup", request.group, "leave", ack_id):
            return
        roster.leave(connection, request.group)
    else:
        if not _allowed(service, connection, "sendToGroup", request.group, "send to", ack_id):
            if connection.codec.subprotocol is None:
                # A plain client in sendToGroup mode hears of nothing else, as in Microsoft's
                # emulator: its socket closes.
                await roster.end(connection, f"The connection has no permission to send to "
                                             f"group {request.group!r}.")
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
    message = DataMessage(
        request.payload, group=request.group, from_user_id=sender.user_id,
        metadata=request.metadata, ttl=request.ttl,
    )
    for member in roster.members(request.group):
        if not (request.no_echo and member is sender):
            member.deliver(message)
    service.trace.add(
        "message", roster.name, sender.connection_id,
        f"to group {request.group} ({request.payload.data_type}): {request.payload.preview()}",
    )


async def _user_event(
    service: Service, roster: Roster, connection: Connection, request: SendEvent
) -> None:
    """A blocking user event: the reply goes back to the client; a failure ends the
    connection."""
    name, payload, ack_id = request.event, request.payload, request.ack_id
    handler = service.upstream.handler(roster.name, name, system=False)
    service.trace.add("message", roster.name, connection.connection_id,
                      f"event {name} ({payload.data_type}): {payload.preview()}")
    if handler is None:
        await _fail(service, roster, connection, ack_id,
                    f"No event handler takes the user event {name!r}.")
        return
    try:
        reply = await service.upstream.send(
            handler, connection, name, payload.body, payload.content_type, system=False,
            metadata=request.metadata,
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
    try:
        answer = _answer(reply)
    except ValueError as exc:
        await _fail(service, roster, connection, ack_id,
                    f"The upstream's reply to {name!r} is invalid: {exc}.")
        return
    if answer is None and reply.metadata:
        answer = Payload("text")  # metadata alone is a message too
    if answer is not None:
        connection.deliver(DataMessage(answer, metadata=reply.metadata))
        service.trace.add("message", roster.name, connection.connection_id,
                          f"reply ({answer.data_type}): {answer.preview()}")
    _succeeded(connection, ack_id)


def _stream_request(
    service: Service,
    roster: Roster,
    connection: Connection,
    request: StartStream | StreamData | EndStream | InvalidStreamRequest,
) -> None:
    """Open, feed or end a group stream, and tell the publisher how it stands."""
    stream_id = request.stream_id
    stream = connection.streams.get(stream_id)
    if isinstance(request, StartStream):
        _start_stream(service, roster, connection, request)
    elif isinstance(request, InvalidStreamRequest):
        if stream is None:
            _refuse_stream(service, connection, stream_id, "BadRequest", request.reason)
        else:
            stream.end(CANCELLED, request.reason, publisher_error="BadRequest")
    elif stream is None:
        _refuse_stream(service, connection, stream_id, "StreamNotFound",
                       f"No stream {stream_id[:80]!r} is open on this connection.")
    elif isinstance(request, EndStream):
        if request.failed:
            stream.end(USER_ERROR, request.reason or "", user_error_code=request.user_error_code)
        else:
            stream.end()
    elif request.sequence_id is None or request.payload is None:
        stream.touch()  # a keep-alive
    elif not connection.can("sendToGroup", stream.group):
        stream.end(FORBIDDEN, f"The connection has no permission to send to group "
                              f"{stream.group!r} any more.")
    elif request.sequence_id > stream.expected:
        connection.send(StreamNack(
            stream_id, stream.expected, "InvalidSequenceId",
            f"Fragment {request.sequence_id} came before {stream.expected}.",
        ))
    else:
        if request.sequence_id == stream.expected:
            stream.publish(request.payload)
        # else a fragment sent again: taken already, and not published twice
        connection.send(StreamAck(stream_id, stream.expected))


def _start_stream(
    service: Service, roster: Roster, connection: Connection, request: StartStream
) -> None:
    stream_id, group = request.stream_id, request.group
    if stream_id in connection.streams:
        # Refused without touching the open one of that id (the client's mistake).
        _refuse_stream(service, connection, stream_id, "BadRequest",
                       f"Stream {stream_id[:80]!r} is open already.")
    elif len(connection.streams) >= MAX_STREAMS:
        _refuse_stream(service, connection, stream_id, "BadRequest",
                       f"The connection has {MAX_STREAMS} streams open, the most it may.")
    elif not connection.can("sendToGroup", group):
        _refuse_stream(service, connection, stream_id, FORBIDDEN,
                       f"The connection has no permission to send to group {group!r}.")
    else:

        def publish(message: DataMessage) -> None:
            for member in roster.members(group):
                if not (request.no_echo and member is connection):
                    member.deliver(message)

        def close(stream: Stream, closed: StreamClosed) -> None:
            if connection.streams.get(stream.stream_id) is stream:
                del connection.streams[stream.stream_id]
            connection.send(closed)
            service.trace.add("message", roster.name, connection.connection_id,
                              f"stream {stream.stream_id} to {group} ended"
                              + (f": {closed.reason}" if closed.error else ""))

        connection.streams[stream_id] = Stream(
            stream_id, group, connection.user_id,
            request.idle_timeout or DEFAULT_IDLE_TIMEOUT, publish, close,
        )
        service.trace.add("message", roster.name, connection.connection_id,
                          f"stream {stream_id} to {group} started")
        connection.send(StreamAck(stream_id, 1))


def _refuse_stream(
    service: Service, connection: Connection, stream_id: str, error: str, reason: str
) -> None:
    service.trace.add("error", connection.hub_name, connection.connection_id, reason)
    connection.send(StreamClosed(stream_id, error, reason))


def _start_invocation(
    service: Service, roster: Roster, connection: Connection, request: Invoke
) -> None:
    """Run an invocation in the background, or refuse it at once."""
    invocation_id = request.invocation_id
    if request.target != "event":
        refusal = f"Invocation target {request.target[:40]!r} is not supported: use 'event'."
    elif connection.is_invoking(invocation_id):
        refusal = f"Invocation {invocation_id[:80]!r} is still running."
    elif connection.invocations >= MAX_INVOCATIONS:
        refusal = f"The connection has {MAX_INVOCATIONS} invocations running, the most it may."
    else:
        task = service.spawn(_invoke(service, roster, connection, request))
        connection.start_invocation(invocation_id, task)
        return
    service.trace.add("error", roster.name, connection.connection_id, refusal)
    connection.send(InvokeResponse(invocation_id, error="BadRequest", reason=refusal))


async def _invoke(
    service: Service, roster: Roster, connection: Connection, request: Invoke
) -> None:
    """An invocation reaches the upstream as the user event it names (nothing tells the two
    apart there), and its reply, or why there is none, goes back as the invocation's response;
    unlike an event, a failed invocation leaves the connection open."""
    name, payload = request.event, request.payload or _NO_DATA
    service.trace.add("message", roster.name, connection.connection_id,
                      f"invoke {name} ({payload.data_type}): {payload.preview()}")
    response = await _call(service, roster, connection, request, payload)
    if connection.ended:
        return
    if response.error is not None:
        service.trace.add("error", roster.name, connection.connection_id, response.reason)
    connection.send(response)


async def _call(
    service: Service, roster: Roster, connection: Connection, request: Invoke, payload: Payload
) -> InvokeResponse:
    invocation_id, name = request.invocation_id, request.event
    handler = service.upstream.handler(roster.name, name, system=False)
    if handler is None:
        return InvokeResponse(invocation_id, error=INVOCATION_FAILED,
                              reason=f"No event handler takes the user event {name!r}.")
    try:
        reply = await service.upstream.send(
            handler, connection, name, payload.body, payload.content_type, system=False,
            metadata=request.metadata,
        )
    except UpstreamError as exc:
        return InvokeResponse(invocation_id, error=INVOCATION_FAILED,
                              reason=f"The {name!r} invocation failed: {exc}")
    if not reply.ok:
        detail = reply.body[:512].decode("utf-8", "replace").strip()
        return InvokeResponse(
            invocation_id, error=INVOCATION_FAILED,
            reason=f"The upstream answered the {name!r} invocation with {reply.status}"
            + (f": {detail}" if detail else "."),
        )
    connection.connection_state = reply.next_connection_state(connection.connection_state)
    try:
        return InvokeResponse(invocation_id, _answer(reply))
    except ValueError as exc:
        return InvokeResponse(invocation_id, error=INVOCATION_FAILED,
                              reason=f"The upstream's reply to {name!r} is invalid: {exc}.")


def _answer(reply: UpstreamReply) -> Payload | None:
    """The data of a successful reply, or None when it has none (204, or no body and no type);
    ``ValueError`` when it is undecodable."""
    if reply.status == 204 or not (reply.body or reply.content_type):
        return None
    return Payload.from_http(reply.content_type, reply.body, strict=False)


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
