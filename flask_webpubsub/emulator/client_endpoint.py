"""The client endpoint: ``/client/hubs/{hub}`` and ``/client/?hub=`` (docs/protocol.md
sections 6 and 8).

A new client is accepted (:mod:`.handshake`) and upgraded with the chosen subprotocol, whose
codec then reads every frame it sends; the requests go to :mod:`.dispatch`, in order. A client of
a reliable protocol that drops without a close frame may come back with its connection id and
reconnection token while its connection waits (``recovery_timeout``).
"""

from __future__ import annotations

import asyncio
import hmac
import logging

from aiohttp import WSMsgType, web
from aiohttp.http_websocket import WebSocketError

from flask_webpubsub.core.wire import (
    JSON_SUBPROTOCOL,
    MAX_MESSAGE_BYTES,
    PROTOBUF_SUBPROTOCOL,
    RELIABLE_JSON_SUBPROTOCOL,
    RELIABLE_PROTOBUF_SUBPROTOCOL,
    is_hub_name,
)

from . import dispatch
from .codec import Codec, ProtocolViolation
from .connection import CLOSE_POLICY, MAX_GROUPS, Connection
from .handshake import Refused, accept, client_request, offered_subprotocols
from .json_codec import JSON, RELIABLE_JSON
from .mqtt import endpoint as mqtt_endpoint
from .protobuf_codec import PROTOBUF, RELIABLE_PROTOBUF
from .roster import Roster
from .service import Service
from .simple_codec import SIMPLE, InvalidMode, codec_for
from .socket_writer import CLOSE_TIMEOUT, SocketWriter

logger = logging.getLogger(__name__)

#: The codec of each subprotocol the service speaks; any other client is a plain WebSocket
#: client (:mod:`.simple_codec`).
CODECS: dict[str, Codec] = {
    JSON_SUBPROTOCOL: JSON,
    RELIABLE_JSON_SUBPROTOCOL: RELIABLE_JSON,
    PROTOBUF_SUBPROTOCOL: PROTOBUF,
    RELIABLE_PROTOBUF_SUBPROTOCOL: RELIABLE_PROTOBUF,
}


def add_routes(app: web.Application, service: Service, heartbeat: float | None) -> None:
    endpoint = ClientEndpoint(service, heartbeat)
    for path in ("/client/hubs/{hub}", "/client", "/client/"):
        app.router.add_get(path, endpoint.handle)
    mqtt_endpoint.add_routes(app, service, heartbeat)


class ClientEndpoint:
    """Accepts (or refuses) WebSocket clients and serves each until it goes. ``heartbeat``:
    seconds between the pings that find dead sockets (None: no pings)."""

    def __init__(self, service: Service, heartbeat: float | None) -> None:
        self.service = service
        self.heartbeat = heartbeat

    async def handle(self, request: web.Request) -> web.StreamResponse:
        hub_name = request.match_info.get("hub") or request.query.get("hub", "")
        if not is_hub_name(hub_name):
            return _text(400, "Invalid hub name: use /client/hubs/{hub} or /client/?hub={hub}.")
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return _text(400, "This endpoint takes WebSocket connections.")
        offered = offered_subprotocols(request.headers.getall("Sec-WebSocket-Protocol", []))
        if "awps_connection_id" in request.query:
            return await self._recover(request, hub_name, offered)
        plain = SIMPLE
        if not any(name in CODECS for name in offered):
            try:  # a plain client's mode is refused before the upstream hears of the client
                plain = codec_for({name: request.query.getall(name) for name in request.query})
            except InvalidMode as exc:
                return _text(400, str(exc))
        client = client_request(
            hub_name, "default", origin=f"{request.scheme}://{request.host}",
            query=list(request.query.items()), headers=list(request.headers.items()),
            subprotocols=offered,
        )
        try:
            accepted = await accept(self.service, client, CODECS)
        except Refused as refused:
            return _text(refused.status, refused.reason)

        admission = accepted.admission
        subprotocol = admission.subprotocol
        roster = self.service.roster(hub_name)
        connection = roster.connect(
            accepted.connection_id,
            CODECS.get(subprotocol or "", plain),
            admission,
            accepted.connection_state,
        )
        user_id = admission.user_id
        groups = list(dict.fromkeys((*admission.groups, *roster.user_groups(user_id))))
        if len(groups) > MAX_GROUPS:
            reason = (f"The connection would be in {len(groups)} groups; a connection may be in "
                      f"{MAX_GROUPS} at most.")
            await roster.end(connection, reason)
            return _text(400, reason)
        ws = self._socket(subprotocol)
        try:
            await ws.prepare(request)
        except (ConnectionError, RuntimeError):
            await roster.end(connection, "The client went away during the handshake.")
            return ws
        writer = SocketWriter(ws, request.transport, self.service.spawn)
        connection.attach(writer)
        self.service.trace.add(
            "connection", roster.name, connection.connection_id,
            f"connected: {f'user {user_id!r}' if user_id else 'anonymous'}, "
            f"{subprotocol or 'simple WebSocket'}",
        )
        logger.info(
            "Client %s connected to hub %s (user %r, %s).",
            connection.connection_id, roster.name, user_id, subprotocol or "simple WebSocket",
        )
        self.service.notify(connection, "connected", {})
        for group in groups:
            roster.join(connection, group)
        return await self._serve(roster, connection, ws, writer)

    def _socket(self, subprotocol: str | None) -> web.WebSocketResponse:
        return web.WebSocketResponse(
            protocols=(subprotocol,) if subprotocol else (),
            max_msg_size=MAX_MESSAGE_BYTES,
            heartbeat=self.heartbeat,
            timeout=CLOSE_TIMEOUT,
            compress=False,  # the service does not negotiate permessage-deflate either
        )

    async def _recover(
        self, request: web.Request, hub_name: str, offered: list[str]
    ) -> web.StreamResponse:
        """A reliable client comes back to its connection; one that cannot be recovered gets
        404, which tells the client to give up and open a new connection (the service's
        answer, "How to create reliable clients": 404 ends recovery, a 5xx or a socket error
        is retried)."""
        connection_id = request.query.get("awps_connection_id", "")
        token = request.query.get("awps_reconnection_token", "")
        roster = self.service.rosters.get(hub_name.lower())
        connection = roster.connections.get(connection_id) if roster is not None else None
        if (
            roster is None
            or connection is None
            or connection.ended
            or connection.reconnection_token is None
            or not hmac.compare_digest(token.encode(), connection.reconnection_token.encode())
        ):
            reason = "The connection cannot be recovered: it is unknown, expired or closed."
            self.service.trace.add("connection", hub_name.lower(), connection_id[:128] or None,
                                   reason)
            return _text(404, reason)
        subprotocol = offered[0] if offered else None
        if connection.subprotocol in offered:
            subprotocol = connection.subprotocol
        ws = self._socket(subprotocol)
        try:
            await ws.prepare(request)
        except (ConnectionError, RuntimeError):
            return ws
        if connection.ended:  # ended while the socket was upgraded
            await ws.close(code=CLOSE_POLICY, message=b"Connection cannot be recovered")
            return ws
        writer = SocketWriter(ws, request.transport, self.service.spawn)
        connection.attach(writer)
        self.service.trace.add("connection", roster.name, connection.connection_id, "recovered")
        logger.info("Client %s of hub %s recovered.", connection.connection_id, roster.name)
        return await self._serve(roster, connection, ws, writer)

    async def _serve(
        self,
        roster: Roster,
        connection: Connection,
        ws: web.WebSocketResponse,
        writer: SocketWriter,
    ) -> web.StreamResponse:
        """Handle the client's frames, in order, until the socket closes."""
        reason: str | None = None
        clean = False
        writer.serve(asyncio.current_task())
        try:
            while not connection.ended and connection.attached_to(writer):
                writer.receiving = True
                try:
                    received = await ws.receive()
                except asyncio.CancelledError:
                    if not writer.hung:
                        raise
                    uncancel = getattr(asyncio.current_task(), "uncancel", None)
                    if uncancel is not None:  # Python 3.11+: this cancel is handled
                        uncancel()
                    break
                finally:
                    writer.receiving = False
                if writer.hung:
                    break  # read before the socket went silent: never answered
                if received.type is WSMsgType.TEXT or received.type is WSMsgType.BINARY:
                    try:
                        request = connection.codec.decode(received.data)
                    except ProtocolViolation as exc:
                        await self._violation(roster, connection, str(exc))
                        continue
                    await dispatch.handle(self.service, roster, connection, request)
                elif received.type is WSMsgType.CLOSE:
                    clean = True
                    break
                elif received.type is WSMsgType.ERROR and isinstance(received.data, WebSocketError):
                    reason = _frame_error(received.data)
                    clean = True  # the socket is closed with the reason's code: no recovery
                    break
                else:
                    break
        finally:
            if connection.attached_to(writer) and not connection.ended:
                if clean or not connection.reliable:
                    await roster.end(connection, reason or _close_reason(ws, clean))
                else:
                    connection.detach()
                    self.service.trace.add(
                        "connection", roster.name, connection.connection_id,
                        f"dropped; waiting {self.service.recovery_timeout:g} s for the client "
                        "to recover",
                    )
        if writer.hung:
            # Returning would close the socket: a half-open one stays open, and silent.
            await writer.released()
        return ws

    async def _violation(self, roster: Roster, connection: Connection, detail: str) -> None:
        reason = f"Invalid message: {detail}."
        logger.info("Closing connection %s in hub %s: %s", connection.connection_id, roster.name,
                    reason)
        self.service.trace.add("error", roster.name, connection.connection_id, reason)
        await roster.end(connection, reason)


def _text(status: int, reason: str) -> web.Response:
    return web.Response(status=status, text=reason)


def _frame_error(error: WebSocketError) -> str:
    if error.code == 1009:
        return f"The message is larger than the {MAX_MESSAGE_BYTES // 1024 // 1024} MB limit."
    return f"Invalid WebSocket frame: {str(error)[:200]}"


def _close_reason(ws: web.WebSocketResponse, clean: bool) -> str | None:
    if clean:
        return None
    if isinstance(ws.exception(), asyncio.TimeoutError):
        return "The client did not answer the keep-alive ping."
    if ws.exception() is not None:
        return f"The connection was lost without a close frame ({type(ws.exception()).__name__})."
    return "The connection was lost without a close frame."
