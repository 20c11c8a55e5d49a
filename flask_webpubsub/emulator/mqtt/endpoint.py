"""The MQTT client endpoint: ``/clients/mqtt/hubs/{hub}``, MQTT 3.1.1 and 5.0 over WebSocket
with the subprotocol ``mqtt`` (docs/mqtt.md, docs/protocol.md section 9).

The access token is checked when the socket opens (401 without a valid one, as for every
client). Then each CONNECT packet is a ``connect`` event for the upstream, whose rejection
becomes the CONNACK code the service sends; an accepted one starts a new session or resumes
the client id's session (:mod:`.session`). Publishing to a topic sends to the group of that
name, subscribing joins it, and a PUBLISH to ``$webpubsub/server/events/{name}`` is a user
event whose reply comes back on ``.../succeeded`` or ``.../failed``.

What the service does not support is refused the way it refuses it: wildcard and shared
subscriptions (SUBACK failures), retained messages and topic aliases (the connection closes,
with a DISCONNECT reason in MQTT 5).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections.abc import Iterable

from aiohttp import WSMsgType, web

from flask_webpubsub.core import mqtt as facts
from flask_webpubsub.core.wire import (
    MAX_NAME_LENGTH,
    MAX_UPSTREAM_BODY_BYTES,
    MQTT_SUBPROTOCOL,
    client_path,
    is_hub_name,
)
from flask_webpubsub.emulator.connection import (
    CLOSE_NORMAL,
    CLOSE_POLICY,
    MAX_GROUPS,
    MAX_INVOCATIONS,
    MAX_PENDING_BYTES,
    MAX_PENDING_MESSAGES,
)
from flask_webpubsub.emulator.handshake import (
    ClientRequest,
    Refused,
    accept,
    client_request,
    offered_subprotocols,
    verify,
)
from flask_webpubsub.emulator.messages import DataMessage
from flask_webpubsub.emulator.payload import Payload
from flask_webpubsub.emulator.rawframe import OutgoingFrame
from flask_webpubsub.emulator.roster import Roster
from flask_webpubsub.emulator.service import Service
from flask_webpubsub.emulator.socket_writer import CLOSE_TIMEOUT, SocketWriter
from flask_webpubsub.emulator.upstream import UpstreamError

from . import packets
from .packets import (
    BAD_AUTHENTICATION_METHOD,
    CLIENT_IDENTIFIER_NOT_VALID,
    CONNACK_IDENTIFIER_REJECTED,
    CONNACK_UNACCEPTABLE_PROTOCOL_VERSION,
    KEEP_ALIVE_TIMEOUT,
    MQTT_5,
    NO_MATCHING_SUBSCRIBERS,
    NO_SUBSCRIPTION_EXISTED,
    NOT_AUTHORIZED,
    PACKET_IDENTIFIER_NOT_FOUND,
    PACKET_TOO_LARGE,
    PROTOCOL_ERROR,
    QUOTA_EXCEEDED,
    RECEIVE_MAXIMUM_EXCEEDED,
    RETAIN_NOT_SUPPORTED,
    SESSION_TAKEN_OVER,
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
    TOPIC_ALIAS_INVALID,
    TOPIC_FILTER_INVALID,
    TOPIC_NAME_INVALID,
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
    PacketError,
    Properties,
    UnsupportedProtocolVersion,
)
from .session import (
    DEFAULT_OPTIONS,
    MQTT,
    RECEIVE_MAXIMUM,
    MqttSession,
    SubscriptionOptions,
    payload_of,
)

logger = logging.getLogger(__name__)

#: The largest packet a client may send: the service's message limit and room for its topic
#: and properties.
MAX_PACKET_BYTES = MAX_UPSTREAM_BODY_BYTES
#: Seconds a socket may stay open without a CONNECT when the hub has no keep-alive interval.
CONNECT_TIMEOUT = 20.0
#: A PUBACK's fixed header byte.
PUBACK_FIRST_BYTE = packets.PUBACK << 4

#: A refusal MQTT 3.1.1 has no CONNACK code for: the connection closes without a CONNACK.
NO_CONNACK = 0


def add_routes(app: web.Application, service: Service, heartbeat: float | None) -> None:
    app.router.add_get(client_path("{hub}", "mqtt"), MqttEndpoint(service, heartbeat).handle)


class MqttEndpoint:
    """Accepts (or refuses) MQTT clients' sockets and serves each until it goes."""

    def __init__(self, service: Service, heartbeat: float | None) -> None:
        self.service = service
        self.heartbeat = heartbeat
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def lock(self, hub: str, client_id: str) -> asyncio.Lock:
        """The lock of a client id's CONNECTs (kept while someone holds it)."""
        lock = self._locks.get((hub, client_id))
        if lock is None:
            lock = self._locks[(hub, client_id)] = asyncio.Lock()
        return lock

    async def handle(self, request: web.Request) -> web.StreamResponse:
        hub_name = request.match_info["hub"]
        if not is_hub_name(hub_name):
            return _text(400, "Invalid hub name: use /clients/mqtt/hubs/{hub}.")
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return _text(400, "This endpoint takes MQTT clients over WebSocket.")
        offered = offered_subprotocols(request.headers.getall("Sec-WebSocket-Protocol", []))
        if MQTT_SUBPROTOCOL not in offered:
            return _text(400, "An MQTT client must offer the WebSocket subprotocol 'mqtt' "
                              "(MQTT 3.1.1 or 5.0 over WebSocket).")
        client = client_request(
            hub_name, "mqtt", origin=f"{request.scheme}://{request.host}",
            query=list(request.query.items()), headers=list(request.headers.items()),
            subprotocols=offered,
        )
        try:
            claims = verify(self.service, client)
        except Refused as refused:
            return _text(refused.status, refused.reason)
        ws = web.WebSocketResponse(
            protocols=(MQTT_SUBPROTOCOL,),
            max_msg_size=MAX_PACKET_BYTES,
            heartbeat=self.heartbeat,
            timeout=CLOSE_TIMEOUT,
            compress=False,
        )
        try:
            await ws.prepare(request)
        except (ConnectionError, RuntimeError):
            return ws
        link = _Link(self, ws, SocketWriter(ws, request.transport, self.service.spawn), client,
                     claims)
        await link.run()
        return ws


class _Link:
    """One network connection of an MQTT client: its packets, in order, and its session once
    its CONNECT is accepted."""

    def __init__(
        self,
        endpoint: MqttEndpoint,
        ws: web.WebSocketResponse,
        writer: SocketWriter,
        client: ClientRequest,
        claims: dict[str, object],
    ) -> None:
        self.endpoint = endpoint
        self.service = endpoint.service
        self.heartbeat = endpoint.heartbeat
        self.ws = ws
        self.writer = writer
        self.client = client
        self.claims = claims
        self.roster: Roster = self.service.roster(client.hub_name)
        self.physical_connection_id = uuid.uuid4().hex
        self.reader = packets.PacketReader(MAX_PACKET_BYTES)
        self.session: MqttSession | None = None
        self.version = packets.MQTT_311
        self.keep_alive = 0
        #: Whether the client ended this network connection with a DISCONNECT.
        self.disconnected = False
        #: The session expiry its CONNECT asked for (seconds).
        self.requested_expiry = 0.0
        #: When the client last sent a packet (the event loop's clock; at first, the socket's
        #: opening), and the timer that closes a connection silent for too long.
        self.last_packet = asyncio.get_event_loop().time()
        self._deadline: asyncio.TimerHandle | None = None
        self.timed_out = False
        self._task = asyncio.current_task()

    @property
    def v5(self) -> bool:
        return self.version >= MQTT_5

    # -- the read loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        writer = self.writer
        task = asyncio.current_task()
        writer.serve(task)
        self._arm_deadline()
        try:
            while self.session is None or (
                not self.session.ended and self.session.attached_to(writer)
            ):
                if self.timed_out:
                    await self._timed_out()
                    break
                writer.receiving = True
                try:
                    received = await self.ws.receive()
                except asyncio.CancelledError:
                    if not (writer.hung or self.timed_out):
                        raise
                    uncancel = getattr(task, "uncancel", None)
                    if uncancel is not None:  # Python 3.11+: this cancel is handled
                        uncancel()
                    if self.timed_out and not writer.hung:
                        await self._timed_out()
                    break
                finally:
                    writer.receiving = False
                if writer.hung:
                    break
                if received.type is WSMsgType.BINARY:
                    if not await self._read(received.data):
                        break
                elif received.type is WSMsgType.TEXT:
                    await self._violation(PROTOCOL_ERROR,
                                          "MQTT packets travel in binary WebSocket frames only")
                    break
                else:
                    break
        finally:
            if self._deadline is not None:
                self._deadline.cancel()
            self._lost()
        if writer.hung:
            await writer.released()

    def _limit(self) -> float | None:
        """How long the client may stay silent (None: no limit)."""
        if self.session is None:
            return self.heartbeat or CONNECT_TIMEOUT
        if self.keep_alive:
            # A client silent for one and a half keep-alive intervals is gone (MQTT 3.1.2.10).
            return self.keep_alive * 1.5
        return None

    def _arm_deadline(self) -> None:
        """One timer per connection, moved on only when it fires (not with every packet): the
        deadline counts MQTT packets, which the service's WebSocket pongs are not."""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        limit = self._limit()
        if limit is not None:
            self._deadline = asyncio.get_running_loop().call_at(
                self.last_packet + limit, self._deadline_due
            )

    def _deadline_due(self) -> None:
        self._deadline = None
        limit = self._limit()
        if limit is None:
            return
        if asyncio.get_running_loop().time() < self.last_packet + limit:
            self._arm_deadline()  # a packet came meanwhile
            return
        self.timed_out = True
        if self.writer.receiving and self._task is not None:
            self._task.cancel()  # stop waiting for a frame; handled in run()

    async def _timed_out(self) -> None:
        if self.session is None:
            reason = "No CONNECT packet came within the keep-alive interval."
            self.service.trace.add("error", self.roster.name, None, reason)
            await self.writer.close(CLOSE_POLICY, reason)
            return
        await self._violation(KEEP_ALIVE_TIMEOUT, "The client sent nothing for 1.5 times its "
                                                  "keep-alive interval.")

    async def _read(self, data: bytes) -> bool:
        """Handle the packets a frame completes; whether to go on reading."""
        session = self.session
        if (len(data) == 4 and data[0] == PUBACK_FIRST_BYTE and data[1] == 2
                and session is not None and not self.reader.buffered):
            # The commonest packet, a PUBACK of success alone in its frame, without the
            # reader: every QoS 1 delivery brings one back.
            packet_id = data[2] << 8 | data[3]
            if packet_id:
                self.last_packet = asyncio.get_running_loop().time()
                session.acknowledged(packet_id)
                return True
        try:
            received = self.reader.feed(data)
        except UnsupportedProtocolVersion as exc:
            self._trace_error(f"refused: {exc}")
            refusal = packets.ConnAck(False, CONNACK_UNACCEPTABLE_PROTOCOL_VERSION)
            self._send(refusal, packets.MQTT_311)
            await self.writer.close(CLOSE_POLICY, "Unsupported MQTT protocol version.")
            return False
        except PacketError as exc:
            if self.session is None and self.reader.version is not None:
                self.version = self.reader.version
                await self._refuse(exc.reason_code, f"Invalid CONNECT packet: {exc}.")
                return False
            await self._violation(exc.reason_code, f"Invalid packet: {exc}")
            return False
        if received and self.session is not None:
            # Keep-alive counts control packets, not frames (MQTT 3.1.2.10); before CONNECT the
            # deadline runs from the socket's opening.
            self.last_packet = asyncio.get_running_loop().time()
        for packet in received:
            if not await self._handle(packet):
                return False
            if (self.writer.queued_frames > MAX_PENDING_MESSAGES
                    or self.writer.queued_bytes > MAX_PENDING_BYTES):
                await self._violation(QUOTA_EXCEEDED, "The client does not read what it is "
                                                      "sent")
                return False
        return True

    async def _handle(self, packet: packets.Packet) -> bool:
        session = self.session
        if session is None:  # the reader lets only a CONNECT come first, and only once
            assert isinstance(packet, packets.Connect)
            return await self._connect(packet)
        if isinstance(packet, packets.Publish):
            return await self._publish(session, packet)
        if isinstance(packet, packets.PubAck | packets.PubComp):
            session.acknowledged(packet.packet_id)
        elif isinstance(packet, packets.PubRec):
            session.received(packet.packet_id, packet.reason_code >= 0x80)
        elif isinstance(packet, packets.PubRel):
            known = packet.packet_id in session.unreleased
            session.unreleased.discard(packet.packet_id)
            session.send_packet(
                packets.PubComp(packet.packet_id, 0 if known else PACKET_IDENTIFIER_NOT_FOUND)
            )
        elif isinstance(packet, packets.Subscribe):
            self._subscribe(session, packet)
        elif isinstance(packet, packets.Unsubscribe):
            self._unsubscribe(session, packet)
        elif isinstance(packet, packets.PingReq):
            session.send_packet(packets.PingResp())
        elif isinstance(packet, packets.Disconnect):
            await self._disconnect(session, packet)
            return False
        else:
            name = type(packet).__name__.upper()
            await self._violation(PROTOCOL_ERROR, f"A client may not send {name}")
            return False
        return True

    # -- CONNECT ----------------------------------------------------------------------------------

    async def _connect(self, connect: packets.Connect) -> bool:
        self.version = connect.protocol_version
        client_id = connect.client_id
        assigned = False
        if not client_id and self.v5:
            client_id, assigned = uuid.uuid4().hex, True
        refusal = self._check(connect, client_id)
        if refusal is not None:
            code, reason = refusal
            await self._refuse(code, reason)
            return False
        # One CONNECT of a client id at a time: two at once would both make a session.
        async with self.endpoint.lock(self.roster.name, client_id):
            return await self._start_session(connect, client_id, assigned)

    async def _start_session(self, connect: packets.Connect, client_id: str,
                             assigned: bool) -> bool:
        existing = self.roster.connections.get(client_id)
        if existing is not None and not isinstance(existing, MqttSession):
            await self._refuse(self._identifier_rejected,
                               "The client id is in use by another connection.")
            return False
        properties = connect.properties
        try:
            accepted = await accept(
                self.service, self.client, {MQTT_SUBPROTOCOL},
                claims=self.claims,
                connection_id=client_id,
                physical_connection_id=self.physical_connection_id,
                mqtt=facts.connect_body(
                    protocol_version=connect.protocol_version,
                    clean_start=connect.clean_start,
                    username=connect.username,
                    password=connect.password,
                    user_properties=properties.user_properties if self.v5 else None,
                ),
            )
        except Refused as refused:
            code = facts.connack_code(refused.status, refused.mqtt_code, self.version)
            await self._refuse(code, refused.reason, refused.mqtt_user_properties)
            return False
        if existing is not None and existing.ended:
            existing = None  # it ended while the upstream was asked
        resumed = existing is not None and not connect.clean_start
        if existing is not None and not resumed:
            existing.closing_reason_code = SESSION_TAKEN_OVER
            existing.initiated_by_client = False
            existing.disconnect_packet = None
            await self.roster.end(existing, facts.SESSION_REPLACED)
            existing = None
        if existing is not None:
            await existing.take_over()
            session = existing
            session.connection_state = (
                accepted.connection_state or session.connection_state
            )
        else:
            created = self.roster.connect(
                client_id, MQTT, accepted.admission, accepted.connection_state, kind=MqttSession
            )
            assert isinstance(created, MqttSession)
            session = created
            session.setup(connect.protocol_version, uuid.uuid4().hex, 0.0)
        requested = self.requested_expiry = self._session_expiry(connect)
        session.protocol_version = connect.protocol_version
        session.expiry = min(requested, self.service.recovery_timeout)
        session.physical_connection_id = self.physical_connection_id
        session.will = connect.will
        session.will_publisher = lambda will: self._publish_will(session, will)
        session.initiated_by_client = False
        session.disconnect_packet = None
        session.closing_reason_code = None
        session.client_receive_maximum = properties.receive_maximum or 65535
        session.client_maximum_packet_size = properties.maximum_packet_size
        self.keep_alive = connect.keep_alive
        self.session = session

        acknowledgement = Properties()
        if self.v5:
            acknowledgement = Properties(
                assigned_client_identifier=client_id if assigned else None,
                session_expiry_interval=(
                    int(session.expiry) if session.expiry != requested else None
                ),
                receive_maximum=RECEIVE_MAXIMUM,
                retain_available=0,
                wildcard_subscription_available=0,
                shared_subscription_available=0,
                maximum_packet_size=MAX_PACKET_BYTES,
                user_properties=list(accepted.mqtt_user_properties),
            )
        self.writer.send(OutgoingFrame(packets.encode(
            packets.ConnAck(resumed, 0, acknowledgement), self.version
        )))
        session.attach(self.writer)
        what = "resumed its session" if resumed else "started a session"
        user_id = session.user_id
        self.service.trace.add(
            "connection", self.roster.name, client_id,
            f"MQTT {'5.0' if self.v5 else '3.1.1'} client {what}: "
            f"{f'user {user_id!r}' if user_id else 'anonymous'}",
        )
        logger.info("MQTT client %s %s in hub %s (user %r).", client_id, what, self.roster.name,
                    user_id)
        if not resumed:
            self.service.notify(session, "connected", {})
            groups = dict.fromkeys((*accepted.admission.groups,
                                    *self.roster.user_groups(user_id)))
            for group in list(groups)[:MAX_GROUPS]:
                self.roster.join(session, group)
        # The keep-alive runs from the CONNACK: the upstream may have taken a while.
        self.last_packet = asyncio.get_running_loop().time()
        self._arm_deadline()
        return True

    def _check(self, connect: packets.Connect, client_id: str) -> tuple[int, str] | None:
        """Why the service refuses a CONNECT before asking the upstream, if it does."""
        if not facts.CLIENT_ID.match(client_id):
            return (self._identifier_rejected,
                    "A client id has 1 to 128 letters and digits (0-9, a-z, A-Z).")
        low, high = facts.KEEP_ALIVE_RANGE
        if not self.v5 and not low <= connect.keep_alive <= high:
            return (NO_CONNACK,
                    f"An MQTT 3.1.1 client's keep-alive must be {low} to {high} seconds.")
        will = connect.will
        if will is not None:
            if not will.topic.strip() or len(will.topic) > facts.MAX_WILL_TOPIC_LENGTH:
                return (TOPIC_NAME_INVALID, "A last-will topic has a non-blank character and "
                                            f"{facts.MAX_WILL_TOPIC_LENGTH} characters at most.")
            if len(will.payload) > facts.MAX_WILL_PAYLOAD_BYTES:
                return (PACKET_TOO_LARGE, f"A last-will message has "
                                          f"{facts.MAX_WILL_PAYLOAD_BYTES} bytes at most.")
            if will.retain:
                return (RETAIN_NOT_SUPPORTED, "Retained messages are not supported.")
        if self.v5 and connect.properties.authentication_method is not None:
            return (BAD_AUTHENTICATION_METHOD,
                    "Enhanced authentication is not supported: use an access token.")
        return None

    @property
    def _identifier_rejected(self) -> int:
        return CLIENT_IDENTIFIER_NOT_VALID if self.v5 else CONNACK_IDENTIFIER_REJECTED

    def _session_expiry(self, connect: packets.Connect) -> float:
        """How long the client asks its session to outlive a network connection."""
        if self.v5:
            return float(connect.properties.session_expiry_interval or 0)
        return 0.0 if connect.clean_start else float(self.service.recovery_timeout)

    async def _refuse(
        self, code: int, reason: str, user_properties: Iterable[tuple[str, str]] = ()
    ) -> None:
        """Refuse the CONNECT: a CONNACK with ``code`` (an MQTT 3.1.1 client whose CONNECT
        breaks a limit that 3.1.1 has no code for is closed without one), then close."""
        self._trace_error(f"MQTT client refused: {reason}")
        logger.info("Refused an MQTT client of hub %s: %s", self.roster.name, reason)
        if self.v5 or 0 < code < 0x80:
            properties = Properties(reason_string=reason[:200], user_properties=list(
                user_properties)) if self.v5 else Properties()
            self._send(packets.ConnAck(False, code, properties), self.version)
        await self.writer.close(CLOSE_POLICY, reason[:120])

    # -- PUBLISH ----------------------------------------------------------------------------------

    async def _publish(self, session: MqttSession, publish: packets.Publish) -> bool:
        if publish.retain:
            await self._violation(RETAIN_NOT_SUPPORTED, "Retained messages are not supported")
            return False
        if publish.properties.topic_alias is not None:
            await self._violation(TOPIC_ALIAS_INVALID, "Topic aliases are not supported")
            return False
        packet_id = publish.packet_id
        if publish.qos == 2 and packet_id in session.unreleased:
            session.send_packet(packets.PubRec(packet_id))  # sent again: taken already
            return True
        if publish.qos == 2 and len(session.unreleased) >= RECEIVE_MAXIMUM:
            await self._violation(RECEIVE_MAXIMUM_EXCEEDED,
                                  f"More than {RECEIVE_MAXIMUM} unreleased QoS 2 messages")
            return False
        code = self._take(session, publish)
        if code == QUOTA_EXCEEDED and not self.v5:
            await self._violation(code, f"More than {MAX_INVOCATIONS} events wait for the "
                                        "upstream")
            return False
        if not self.v5:
            code = 0  # MQTT 3.1.1 has no way to refuse a PUBLISH but closing (3.3.5)
        if publish.qos == 0:
            return True
        assert packet_id is not None  # the codec refuses a QoS 1 or 2 PUBLISH without one
        if publish.qos == 1:
            session.send_packet(packets.PubAck(packet_id, code))
        else:
            if code < 0x80:
                session.unreleased.add(packet_id)
            session.send_packet(packets.PubRec(packet_id, code))
        return True

    def _take(self, session: MqttSession, publish: packets.Publish) -> int:
        """Carry out a PUBLISH: its reason code."""
        topic = publish.topic
        if len(topic) > MAX_NAME_LENGTH:
            self._trace_error(f"publish to a topic of {len(topic)} characters refused")
            return TOPIC_NAME_INVALID
        event_name = facts.event_name_of(topic)
        if event_name is not None:
            return self._user_event(session, event_name, publish)
        if facts.is_reserved_topic(topic):
            self._trace_error(f"publish to {topic[:100]!r} refused: the topic is the service's")
            return TOPIC_NAME_INVALID
        if not session.can("sendToGroup", topic):
            self._trace_error(f"no permission to publish to {topic[:100]!r}")
            return NOT_AUTHORIZED
        payload = payload_of(publish, self.version)
        expiry = publish.properties.message_expiry_interval if self.v5 else None
        message = DataMessage(
            payload, group=topic, from_user_id=session.user_id, ttl=expiry, qos=publish.qos,
            mqtt_properties=publish.properties if self.v5 else None,
        )
        members = self.roster.members(topic)
        no_local = session.subscriptions.get(topic, DEFAULT_OPTIONS).no_local
        for member in members:
            if not (no_local and member is session):
                member.deliver(message)
        self.service.trace.add(
            "message", self.roster.name, session.connection_id,
            f"MQTT publish to {topic} (QoS {publish.qos}, {payload.data_type}): "
            f"{payload.preview()}",
        )
        return 0 if members else NO_MATCHING_SUBSCRIBERS

    def _user_event(self, session: MqttSession, name: str, publish: packets.Publish) -> int:
        """Send the event upstream in the background, after the session's earlier ones, and
        publish the reply to the client; its reason code (QUOTA_EXCEEDED when
        :data:`MAX_INVOCATIONS` events wait already). The session's end cancels them."""
        if session.invocations >= MAX_INVOCATIONS:
            self._trace_error(f"event {name[:100]!r} refused: {MAX_INVOCATIONS} events wait")
            return QUOTA_EXCEEDED
        previous = session.last_event

        async def run() -> None:
            if previous is not None and not previous.done():
                await asyncio.wait({previous})
            if not session.ended:
                await self._call(session, name, publish)

        task = session.last_event = self.service.spawn(run())
        session.start_invocation(uuid.uuid4().hex, task)
        return 0

    async def _call(self, session: MqttSession, name: str, publish: packets.Publish) -> None:
        properties = publish.properties
        content_type = (properties.content_type if self.v5 else None) or (
            "application/octet-stream"
        )
        self.service.trace.add("message", self.roster.name, session.connection_id,
                               f"MQTT event {name} ({len(publish.payload)} bytes)")
        handler = self.service.upstream.handler(self.roster.name, name, system=False)
        status: int | None = None
        reply_properties: list[tuple[str, str]] = []
        ok, reply_type = False, "text/plain"
        if handler is None:
            data = f"No event handler takes the user event {name!r}.".encode()
        else:
            try:
                reply = await self.service.upstream.send(
                    handler, session, name, publish.payload, content_type, system=False,
                    extra_headers=facts.user_property_headers(
                        properties.user_properties if self.v5 else ()
                    ),
                )
            except UpstreamError as exc:
                data = f"The {name!r} event failed: {exc}".encode()
            else:
                ok, status, data = reply.ok, reply.status, reply.body
                reply_type = reply.content_type or ""
                reply_properties = facts.user_properties_from_headers(reply.mqtt_headers)
                if reply.ok:
                    session.connection_state = reply.next_connection_state(
                        session.connection_state
                    )
        if session.ended:
            return
        if status is not None:
            reply_properties.append((facts.STATUS_CODE_PROPERTY, str(status)))
        answer = Properties(
            content_type=reply_type or None,
            correlation_data=properties.correlation_data,
            user_properties=reply_properties,
        )
        topic = facts.reply_topic(name, ok)
        payload = Payload("binary", binary=data)
        session.publish(DataMessage(payload, mqtt_properties=answer), topic, publish.qos)
        self.service.trace.add(
            "upstream" if status is not None else "error", self.roster.name,
            session.connection_id, f"MQTT event {name} -> {topic}"
            + (f" ({status})" if status is not None else ""),
        )

    # -- SUBSCRIBE, UNSUBSCRIBE -------------------------------------------------------------------

    def _subscribe(self, session: MqttSession, subscribe: packets.Subscribe) -> None:
        identifiers = subscribe.properties.subscription_identifiers
        identifier = identifiers[0] if identifiers and self.v5 else None
        codes = [self._subscription(session, s, identifier) for s in subscribe.subscriptions]
        session.send_packet(packets.SubAck(subscribe.packet_id, codes))

    def _subscription(
        self, session: MqttSession, subscription: packets.Subscription, identifier: int | None
    ) -> int:
        topic = subscription.topic_filter
        if not topic or len(topic) > MAX_NAME_LENGTH:
            code, reason = TOPIC_FILTER_INVALID, (
                f"a topic filter has 1 to {MAX_NAME_LENGTH} characters"
            )
        elif "+" in topic or "#" in topic:
            code, reason = WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED, "wildcards are not supported"
        elif topic.startswith("$share/"):
            code, reason = SHARED_SUBSCRIPTIONS_NOT_SUPPORTED, "shared subscriptions are not " \
                                                               "supported"
        elif not facts.is_reserved_topic(topic) and not session.can("joinLeaveGroup", topic):
            code, reason = NOT_AUTHORIZED, "no permission to join the group"
        elif not facts.is_reserved_topic(topic) and not self.roster.join(session, topic):
            code, reason = QUOTA_EXCEEDED, f"the session is in {MAX_GROUPS} groups"
        else:
            session.subscriptions[topic] = SubscriptionOptions(
                subscription.qos, subscription.no_local, identifier
            )
            return subscription.qos
        self._trace_error(f"subscription to {topic[:100]!r} refused: {reason}")
        return code  # MQTT 3.1.1 SUBACK says 0x80 for every failure

    def _unsubscribe(self, session: MqttSession, unsubscribe: packets.Unsubscribe) -> None:
        codes = []
        for topic in unsubscribe.topic_filters:
            if topic in session.groups and not session.can("joinLeaveGroup", topic):
                codes.append(NOT_AUTHORIZED)  # and the subscription stays as it was
                continue
            existed = session.subscriptions.pop(topic, None) is not None
            if topic in session.groups:
                self.roster.leave(session, topic)
                existed = True
            codes.append(0 if existed else NO_SUBSCRIPTION_EXISTED)
        session.send_packet(packets.UnsubAck(unsubscribe.packet_id, codes))

    # -- the end ----------------------------------------------------------------------------------

    async def _disconnect(self, session: MqttSession, disconnect: packets.Disconnect) -> None:
        """The client ends the network connection; the session goes on if it has an expiry."""
        requested = disconnect.properties.session_expiry_interval
        if requested is not None and self.v5:
            if requested and not self.requested_expiry:
                await self._violation(PROTOCOL_ERROR, "A DISCONNECT may not set a "
                                      "session expiry when the CONNECT had none")
                return
            session.expiry = min(float(requested), self.service.recovery_timeout)
        self.disconnected = True
        session.initiated_by_client = True
        session.disconnect_packet = disconnect
        if disconnect.reason_code == 0:
            session.will = None  # only a normal disconnection discards the will (MQTT 5 3.14.4)
        else:
            session.release_will()
        await self.writer.close(CLOSE_NORMAL, "")
        if session.attached_to(self.writer):  # not resumed meanwhile by a new connection
            session.detach()  # ends it now when it has no expiry

    def _lost(self) -> None:
        """The network connection is gone: unless the client said DISCONNECT, its will goes
        out (after its delay) and the session waits for it as long as its expiry says."""
        session = self.session
        if session is None or session.ended or not session.attached_to(self.writer):
            return
        if not self.disconnected:
            session.initiated_by_client = False
            session.disconnect_packet = None
            session.release_will()
        session.detach()
        self.service.trace.add(
            "connection", self.roster.name, session.connection_id,
            "MQTT network connection lost"
            + (f"; the session waits {session.expiry:g} s for its client" if session.expiry
               else ""),
        )

    def _publish_will(self, session: MqttSession, will: packets.Will) -> None:
        """Publish a last will as the session's own PUBLISH to its topic."""
        publish = packets.Publish(will.topic, will.payload, qos=will.qos,
                                  properties=will.properties)
        if facts.is_reserved_topic(will.topic) or not session.can("sendToGroup", will.topic):
            self._trace_error(f"last will to {will.topic[:100]!r} not published: no permission")
            return
        self._take(session, publish)

    async def _violation(self, reason_code: int, detail: str) -> None:
        """Close the network connection for a protocol violation (an MQTT 5 client is told the
        reason code first); the session waits for its client as after any drop."""
        reason = f"{detail}."
        self._trace_error(f"MQTT connection closed: {reason}")
        logger.info("Closing an MQTT connection in hub %s: %s", self.roster.name, reason)
        if self.v5 and self.session is not None:
            self.session.send_packet(packets.Disconnect(
                reason_code, Properties(reason_string=reason[:200])
            ))
        await self.writer.close(CLOSE_POLICY, reason[:120])

    def _send(self, packet: packets.Packet, version: int) -> None:
        self.writer.send(OutgoingFrame(packets.encode(packet, version)))

    def _trace_error(self, text: str) -> None:
        connection_id = self.session.connection_id if self.session is not None else None
        self.service.trace.add("error", self.roster.name, connection_id, text)


def _text(status: int, reason: str) -> web.Response:
    return web.Response(status=status, text=reason)
