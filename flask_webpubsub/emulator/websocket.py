"""The client endpoint: ``/client/hubs/{hub}`` and ``/client/?hub=`` (docs/protocol.md
sections 6 and 8).

The handshake checks the token, asks the upstream (``connect``), and upgrades with the chosen
subprotocol; then every frame is handled in order, as the service does: a simple client's frames
are ``message`` user events; a JSON client's are joins, leaves, group sends and events. A reliable
client that drops without a close frame may come back with its connection id and reconnection
token (the session waits ``recovery_timeout`` seconds).
"""

from __future__ import annotations

import hmac
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web
from aiohttp.http_websocket import WebSocketError

from flask_webpubsub.core.errors import InvalidStateError, InvalidTokenError
from flask_webpubsub.core.jsoncodec import encode_json
from flask_webpubsub.core.service import decode_connect_reply, verify_token
from flask_webpubsub.core.state import decode_state
from flask_webpubsub.core.wire import CONNECT, USER_PREFIX

from .hub import CLOSE_POLICY, CLOSE_TIMEOUT, Kind, Message, Session
from .messages import (
    JSON_SUBPROTOCOL,
    MAX_MESSAGE_BYTES,
    RELIABLE_SUBPROTOCOL,
    Payload,
    ProtocolViolation,
    Request,
    ack_message,
    disconnected_message,
    group_message,
    parse_request,
    server_message,
)
from .settings import HUB_NAME
from .upstream import UpstreamError, UpstreamReply

if TYPE_CHECKING:
    from .server import Emulator

logger = logging.getLogger(__name__)

_JSON_CONTENT_TYPE = "application/json; charset=utf-8"
_KINDS: dict[str | None, Kind] = {JSON_SUBPROTOCOL: "json", RELIABLE_SUBPROTOCOL: "reliable"}
#: Never forwarded upstream: they carry the client's credentials.
_PRIVATE_QUERY = {"access_token"}
_PRIVATE_HEADERS = {"authorization", "cookie"}


@dataclass(frozen=True)
class _Handshake:
    """The event context of a connection that is not accepted yet."""

    hub_name: str
    connection_id: str
    user_id: str | None
    subprotocol: str | None = None
    state: str | None = None


def _text(status: int, reason: str) -> web.Response:
    return web.Response(status=status, text=reason)


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def _multi(pairs: Iterable[tuple[str, str]], private: set[str]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for name, value in pairs:
        if name.lower() not in private:
            result.setdefault(name, []).append(value)
    return result


def requested_subprotocols(request: web.Request) -> list[str]:
    header = ",".join(request.headers.getall("Sec-WebSocket-Protocol", []))
    return [p.strip() for p in header.split(",") if p.strip()]


def _new_socket(emulator: Emulator, protocol: str | None) -> web.WebSocketResponse:
    return web.WebSocketResponse(
        protocols=(protocol,) if protocol else (),
        max_msg_size=MAX_MESSAGE_BYTES,
        heartbeat=emulator.heartbeat,
        timeout=CLOSE_TIMEOUT,
        compress=False,  # the service does not negotiate permessage-deflate either
    )


async def client_endpoint(request: web.Request) -> web.StreamResponse:
    """Accept (or refuse) one WebSocket client, then serve it until it goes."""
    from .server import EMULATOR_KEY

    emulator = request.app[EMULATOR_KEY]
    hub_name = request.match_info.get("hub") or request.query.get("hub", "")
    if not HUB_NAME.match(hub_name):
        return _text(400, "Invalid hub name: use /client/hubs/{hub} or /client/?hub={hub}.")
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return _text(400, "This endpoint takes WebSocket connections.")
    requested = requested_subprotocols(request)
    if "awps_connection_id" in request.query:
        return await _recover(request, emulator, hub_name, requested)

    token = request.query.get("access_token")
    authorization = request.headers.get("Authorization", "")
    if not token and authorization[:7].lower() == "bearer ":
        token = authorization[7:].strip()
    if not token:
        return _text(401, "Missing access token: pass access_token in the query or a Bearer "
                          "Authorization header.")
    audience = f"{request.scheme}://{request.host}/client/hubs/{hub_name}"
    try:
        claims = verify_token(token, emulator.access_keys, audience)
    except InvalidTokenError as exc:
        emulator.trace.add("error", hub_name.lower(), None, f"client token refused: {exc}")
        logger.info("Refused a client of hub %s: %s.", hub_name, exc)
        return _text(401, f"Unauthorized: {str(exc).capitalize()}.")

    hub = emulator.hub(hub_name)
    sub = claims.get("sub")
    user_id = sub if isinstance(sub, str) and sub else None
    roles = set(_strings(claims.get("role")))
    groups = _strings(claims.get("webpubsub.group"))
    handshake = _Handshake(hub.name, uuid.uuid4().hex, user_id)

    state: str | None = None
    subprotocol = next((p for p in requested if p in _KINDS), None)
    handler = emulator.upstream.handler(hub.name, "connect", system=True)
    if handler is not None:
        body = {
            "claims": {name: _strings(value) for name, value in claims.items()},
            "query": _multi(request.query.items(), _PRIVATE_QUERY),
            "headers": _multi(request.headers.items(), _PRIVATE_HEADERS),
            "subprotocols": requested,
            "clientCertificates": [],
        }
        try:
            reply = await emulator.upstream.send(
                handler, handshake, CONNECT, "connect", encode_json(body), _JSON_CONTENT_TYPE
            )
        except UpstreamError as exc:
            emulator.trace.add("error", hub.name, handshake.connection_id, f"connect failed: {exc}")
            return _text(500, f"The upstream connect event failed: {exc}")
        if not reply.ok:
            status = reply.status if 400 <= reply.status < 500 else 500
            emulator.trace.add(
                "upstream", hub.name, handshake.connection_id,
                f"connect rejected: {reply.status} {reply.reason}".rstrip(),
            )
            return _text(status, reply.reason or f"The upstream rejected the connection "
                                                 f"({reply.status}).")
        try:
            accepted = decode_connect_reply(reply.body if reply.status != 204 else b"")
        except ValueError as exc:
            logger.warning("The upstream's connect reply is invalid: %s.", exc)
            return _text(500, f"The upstream's connect reply is invalid: {exc}.")
        if accepted.subprotocol is not None:
            if accepted.subprotocol not in requested:
                logger.warning(
                    "The upstream chose the subprotocol %r, which the client did not offer.",
                    accepted.subprotocol,
                )
                return _text(500, "The upstream chose a subprotocol the client did not offer.")
            subprotocol = accepted.subprotocol
        if accepted.user_id is not None:
            user_id = accepted.user_id or None
        roles.update(accepted.roles or ())
        groups.extend(accepted.groups or ())
        state = _new_state(reply, None)

    kind = _KINDS.get(subprotocol, "simple")
    session = Session(
        emulator,
        hub,
        handshake.connection_id,
        kind=kind,
        user_id=user_id,
        roles=roles,
        subprotocol=subprotocol,
        state=state,
    )
    ws = _new_socket(emulator, subprotocol)
    hub.add(session)
    try:
        await ws.prepare(request)
    except (ConnectionError, RuntimeError):
        await session.end("The client went away during the handshake.")
        return ws
    session.attach(ws, request.transport)
    emulator.trace.add(
        "connection", hub.name, session.connection_id,
        f"connected: {f'user {user_id!r}' if user_id else 'anonymous'}, "
        f"{subprotocol or 'simple WebSocket'}",
    )
    logger.info(
        "Client %s connected to hub %s (user %r, %s).",
        session.connection_id, hub.name, user_id, subprotocol or "simple WebSocket",
    )
    emulator.notify(session, "connected", {})
    for group in (*groups, *hub.user_groups.get(user_id or "", ())):
        session.join(group)
    return await _serve(emulator, session, ws)


def _new_state(reply: UpstreamReply, current: str | None) -> str | None:
    """The connection state after a blocking event's reply (the service keeps it verbatim)."""
    if reply.state is None:
        return current
    try:
        if not decode_state(reply.state):
            return None
    except InvalidStateError:
        logger.warning("The upstream set a ce-connectionState that is not base64 JSON; kept as is.")
    return reply.state


async def _recover(
    request: web.Request, emulator: Emulator, hub_name: str, requested: list[str]
) -> web.StreamResponse:
    connection_id = request.query.get("awps_connection_id", "")
    token = request.query.get("awps_reconnection_token", "")
    hub = emulator.hubs.get(hub_name.lower())
    session = hub.connections.get(connection_id) if hub is not None else None

    def recoverable() -> bool:
        return (
            session is not None
            and not session.ended
            and session.reconnection_token is not None
            and hmac.compare_digest(token.encode(), session.reconnection_token.encode())
        )

    protocol = requested[0] if requested else None
    if session is not None and session.subprotocol in requested:
        protocol = session.subprotocol
    ws = _new_socket(emulator, protocol)
    try:
        await ws.prepare(request)
    except (ConnectionError, RuntimeError):
        return ws
    if session is None or not recoverable():
        reason = "The connection cannot be recovered: it is unknown, expired or closed."
        emulator.trace.add("connection", hub_name.lower(), connection_id or None, reason)
        await ws.send_str(disconnected_message(reason))
        await ws.close(code=CLOSE_POLICY, message=b"Connection cannot be recovered")
        return ws
    session.attach(ws, request.transport)
    emulator.trace.add("connection", session.hub.name, session.connection_id, "recovered")
    logger.info("Client %s of hub %s recovered.", session.connection_id, session.hub.name)
    return await _serve(emulator, session, ws)


async def _serve(
    emulator: Emulator, session: Session, ws: web.WebSocketResponse
) -> web.StreamResponse:
    """Handle the client's frames, in order, until the socket closes."""
    reason: str | None = None
    clean = False
    try:
        while not session.ended and session.is_socket(ws):
            message = await ws.receive()
            if message.type is WSMsgType.TEXT or message.type is WSMsgType.BINARY:
                if session.kind == "simple":
                    payload = (
                        Payload("text", text=message.data)
                        if message.type is WSMsgType.TEXT
                        else Payload("binary", binary=message.data)
                    )
                    await _user_event(emulator, session, "message", payload, None)
                else:
                    await _json_frame(emulator, session, message.type, message.data)
            elif message.type is WSMsgType.CLOSE:
                clean = True
                break
            elif message.type is WSMsgType.ERROR and isinstance(message.data, WebSocketError):
                reason = _frame_error(message.data)
                clean = True  # the socket is closed with the reason's code: no recovery
                break
            else:
                break
    finally:
        if session.is_socket(ws) and not session.ended:
            if clean or session.kind != "reliable":
                await session.end(reason or _close_reason(ws, clean))
            else:
                session.detach()
    return ws


def _frame_error(error: WebSocketError) -> str:
    if error.code == 1009:
        return f"The message is larger than the {MAX_MESSAGE_BYTES // 1024 // 1024} MB limit."
    return f"Invalid WebSocket frame: {str(error)[:200]}"


def _close_reason(ws: web.WebSocketResponse, clean: bool) -> str | None:
    if clean:
        return None
    if ws.exception() is not None:
        return f"The connection was lost without a close frame ({type(ws.exception()).__name__})."
    return "The connection was lost without a close frame."


async def _user_event(
    emulator: Emulator, session: Session, name: str, payload: Payload, ack_id: int | None
) -> None:
    """A blocking user event: the reply goes back to the client; a failure drops it."""
    hub = session.hub
    handler = emulator.upstream.handler(hub.name, name, system=False)
    emulator.trace.add("message", hub.name, session.connection_id,
                       f"event {name} ({payload.data_type}): {payload.preview()}")
    if handler is None:
        await _fail(session, ack_id, f"No event handler takes the user event {name!r}.")
        return
    try:
        reply = await emulator.upstream.send(
            handler, session, USER_PREFIX + name, name, payload.body, payload.content_type
        )
    except UpstreamError as exc:
        await _fail(session, ack_id, f"The {name!r} event failed: {exc}")
        return
    if session.ended:
        return
    if not reply.ok:
        await _fail(
            session, ack_id, f"The upstream answered the {name!r} event with {reply.status}."
        )
        return
    session.state = _new_state(reply, session.state)
    if reply.status != 204 and (reply.body or reply.content_type):
        try:
            answer = Payload.from_http(reply.content_type, reply.body, strict=False)
        except ValueError as exc:
            await _fail(session, ack_id, f"The upstream's reply to {name!r} is invalid: {exc}.")
            return
        session.deliver(Message(answer, server_message(answer)))
        emulator.trace.add("message", hub.name, session.connection_id,
                           f"reply ({answer.data_type}): {answer.preview()}")
    _ack(session, ack_id)


async def _fail(session: Session, ack_id: int | None, reason: str) -> None:
    session.host.trace.add("error", session.hub.name, session.connection_id, reason)
    if ack_id is not None:
        session.send_control(ack_message(ack_id, "InternalServerError", reason))
    await session.end(reason)


def _ack(session: Session, ack_id: int | None) -> None:
    if ack_id is not None:
        session.record_ack(ack_id)
        session.send_ack(ack_message(ack_id))


def _forbidden(session: Session, request: Request, what: str) -> None:
    reason = f"The connection has no permission to {what} group {request.group!r}."
    session.host.trace.add("error", session.hub.name, session.connection_id, reason)
    if request.ack_id is not None:
        session.send_ack(ack_message(request.ack_id, "Forbidden", reason))


async def _json_frame(
    emulator: Emulator, session: Session, frame_type: WSMsgType, data: Any
) -> None:
    if frame_type is not WSMsgType.TEXT:
        await _violation(session, "binary frames are not allowed with a JSON subprotocol")
        return
    try:
        request = parse_request(data, reliable=session.kind == "reliable")
    except ProtocolViolation as exc:
        await _violation(session, str(exc))
        return
    if request.type == "sequenceAck":
        session.acknowledge_sequence(request.sequence_id)
        return
    if request.ack_id is not None and session.is_duplicate(request.ack_id):
        session.send_ack(ack_message(
            request.ack_id, "Duplicate", f"Message with ack-id: {request.ack_id} has been processed"
        ))
        return
    hub = session.hub
    if request.type == "joinGroup":
        if not session.can("joinLeaveGroup", request.group):
            _forbidden(session, request, "join")
            return
        session.join(request.group)
    elif request.type == "leaveGroup":
        if not session.can("joinLeaveGroup", request.group):
            _forbidden(session, request, "leave")
            return
        session.leave(request.group)
    elif request.type == "sendToGroup":
        if not session.can("sendToGroup", request.group):
            _forbidden(session, request, "send to")
            return
        assert request.payload is not None
        message = Message(
            request.payload, group_message(request.payload, request.group, session.user_id)
        )
        for member in hub.members(request.group):
            if not (request.no_echo and member is session):
                member.deliver(message)
        emulator.trace.add(
            "message", hub.name, session.connection_id,
            f"to group {request.group} ({request.payload.data_type}): "
            f"{request.payload.preview()}",
        )
    else:
        assert request.payload is not None
        await _user_event(emulator, session, request.event, request.payload, request.ack_id)
        return
    _ack(session, request.ack_id)


async def _violation(session: Session, detail: str) -> None:
    reason = f"Invalid message: {detail}."
    logger.info("Closing connection %s in hub %s: %s", session.connection_id, session.hub.name,
                reason)
    session.host.trace.add("error", session.hub.name, session.connection_id, reason)
    await session.end(reason)
