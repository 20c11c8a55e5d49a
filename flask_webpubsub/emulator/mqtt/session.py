"""An MQTT session: the connection of one MQTT client id in a hub (the service's "session =
connection" mapping).

A session outlives its network connections: a client that drops comes back within the session
expiry (at most the emulator's recovery window, 30 s as in the service) to the same session, with
its subscriptions, and gets again the QoS 1 and 2 messages it had not acknowledged, then those
that arrived meanwhile. Its subscriptions are its hub's groups (subscribing to a topic joins the
group of that name), so the roster, permissions, the REST API and every other client protocol
treat it as any connection; only what goes on its socket is MQTT.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask_webpubsub.core import mqtt as facts
from flask_webpubsub.core.wire import MQTT_SUBPROTOCOL
from flask_webpubsub.emulator.codec import Codec, Frame, ProtocolViolation
from flask_webpubsub.emulator.connection import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    MAX_PENDING_BYTES,
    MAX_PENDING_MESSAGES,
    Connection,
    Writer,
)
from flask_webpubsub.emulator.messages import DataMessage, Message, Request
from flask_webpubsub.emulator.payload import Payload
from flask_webpubsub.emulator.rawframe import OutgoingFrame

from . import packets
from .packets import (
    ADMINISTRATIVE_ACTION,
    MQTT_5,
    PACKET_IDENTIFIER_NOT_FOUND,
    SERVER_SHUTTING_DOWN,
    SESSION_TAKEN_OVER,
    Properties,
    Publish,
)

#: What a message's data type is called in an MQTT 5 content type, and back
#: ("Cross-protocol communication between MQTT clients and Web PubSub clients").
CONTENT_TYPES = {
    "json": "application/json",
    "text": "text/plain",
    "protobuf": "application/x-protobuf",
    "binary": "application/octet-stream",
}
DATA_TYPES = {content_type: data_type for data_type, content_type in CONTENT_TYPES.items()}
#: How many QoS 2 messages a client may send before it releases them (the service's
#: "receive maximum" in its CONNACK).
RECEIVE_MAXIMUM = 100
#: The QoS of a subscription the REST API, a token or a connect reply made (the service's
#: "default options"): REST sends reach it at QoS 1.
DEFAULT_QOS = 1

class MqttCodec(Codec):
    """The frames of MQTT clients: every message an MQTT client gets is a PUBLISH, written by
    its session (which numbers QoS 1 and 2 messages); acks and system messages of the Web
    PubSub protocols have no MQTT form. Packets from the client are read by the session's
    stream reader (:class:`.packets.PacketReader`): a WebSocket frame may hold several or part
    of one, so frames do not map to requests one by one."""

    subprotocol = MQTT_SUBPROTOCOL

    def decode(self, frame: Frame) -> Request:
        raise ProtocolViolation("MQTT packets are read as a stream, not frame by frame")

    def encode(self, message: Message) -> Frame | None:
        return None


MQTT = MqttCodec()


@dataclass(frozen=True)
class SubscriptionOptions:
    """What a client asked for when it subscribed to a topic."""

    qos: int = DEFAULT_QOS
    no_local: bool = False
    #: Its MQTT 5 subscription identifier, sent back with each message it matches.
    identifier: int | None = None


DEFAULT_OPTIONS = SubscriptionOptions()


@dataclass(frozen=True)
class _Waiting:
    """A message for the client that waits for a free packet id slot or for the client."""

    message: DataMessage
    topic: str
    qos: int
    identifier: int | None


@dataclass
class _InFlight:
    """A QoS 1 or 2 PUBLISH not yet acknowledged, or (``released``) a QoS 2 one whose PUBREL
    waits for its PUBCOMP. Sent again, encoded anew, when the client resumes its session."""

    sent: _Waiting
    size: int
    released: bool = False


class MqttSession(Connection):
    """One MQTT client id's session in a hub. The endpoint sets it up after the roster made it
    (:meth:`setup`) and feeds it the client's packets."""

    protocol_version: int = 4
    #: ``ce-sessionId``: this session's id (a new one for each new session).
    session_id: str = ""
    #: ``ce-physicalConnectionId``: the current (or last) network connection's id.
    physical_connection_id: str | None = None

    def setup(self, protocol_version: int, session_id: str, expiry: float) -> None:
        self.protocol_version = protocol_version
        self.session_id = session_id
        #: Seconds the session outlives a network connection that ends without a DISCONNECT
        #: ending it (0: it ends with it).
        self.expiry = expiry
        self.subscriptions: dict[str, SubscriptionOptions] = {}
        #: How many unacknowledged QoS 1 and 2 messages the client takes at once.
        self.client_receive_maximum = 65535
        #: The largest packet the client takes (MQTT 5), or None.
        self.client_maximum_packet_size: int | None = None
        #: The current network connection's last will: published when it ends without a
        #: DISCONNECT that discards it (:meth:`release_will`), through ``will_publisher``.
        self.will: packets.Will | None = None
        self.will_publisher: Callable[[packets.Will], None] | None = None
        #: The client's QoS 2 packet ids it has not released yet.
        self.unreleased: set[int] = set()
        #: How the session ended, for the ``disconnected`` event.
        self.initiated_by_client = False
        self.disconnect_packet: packets.Disconnect | None = None
        #: The MQTT 5 reason code of the DISCONNECT the service sends when it closes the socket.
        self.closing_reason_code: int | None = None
        self._in_flight: dict[int, _InFlight] = {}
        self._in_flight_bytes = 0
        self._waiting: deque[_Waiting] = deque()
        self._packet_ids = itertools.cycle(range(1, 65536))
        self._will_timer: asyncio.TimerHandle | None = None
        self._will_publish: Callable[[], None] | None = None
        #: The user events in flight, one after another (each waits for the one before).
        self.last_event: asyncio.Task[None] | None = None

    # -- the upstream's view ---------------------------------------------------------------------

    def disconnected_body(self, reason: str | None) -> dict[str, object]:
        packet = self.disconnect_packet
        return facts.disconnected_body(
            reason,
            initiated_by_client=self.initiated_by_client,
            disconnect_code=None if packet is None else packet.reason_code,
            user_properties=None if packet is None else packet.properties.user_properties,
        )

    # -- sending ----------------------------------------------------------------------------------

    def send_packet(self, packet: packets.Packet) -> None:
        """A packet on the current socket (lost if there is none)."""
        self._write(OutgoingFrame(packets.encode(packet, self.protocol_version)), limit=False)

    def deliver(self, message: DataMessage) -> None:
        """A message for this client: a group's on its topic (a REST send to the group too),
        any other server message (REST, to the whole hub, its user or itself) on
        ``$webpubsub/server/messages``; at the lower of the message's QoS (1 for all but MQTT
        publishes) and its subscription's."""
        if self.ended:
            return
        topic = message.group or message.sent_to_group or facts.SERVER_MESSAGES_TOPIC
        options = self.subscriptions.get(topic, DEFAULT_OPTIONS)
        qos = min(message.qos, options.qos)
        self.publish(message, topic, qos, options.identifier)

    def publish(
        self, message: DataMessage, topic: str, qos: int, identifier: int | None = None
    ) -> None:
        """Send ``message`` as a PUBLISH on ``topic`` at ``qos``; a QoS 1 or 2 one is kept until
        acknowledged, and waits while the client has as many as it takes, or is away."""
        if qos == 0:
            if self.attached:
                frame = self._frame(message, topic, 0, identifier)
                if frame is not None:
                    self._write(frame)
            return
        waiting = _Waiting(message, topic, qos, identifier)
        if self.attached and not self._waiting and self._has_room():
            self._send_numbered(waiting)
            return
        if len(self._waiting) >= MAX_PENDING_MESSAGES:
            if self.attached:
                self._overflow("undelivered")
                return
            self._waiting.popleft()  # an absent client loses the oldest first
        self._waiting.append(waiting)

    def _has_room(self) -> bool:
        """Whether another QoS 1 or 2 message may go out: within the client's receive maximum,
        and within what the service keeps for a client that does not acknowledge."""
        return (
            len(self._in_flight) < min(self.client_receive_maximum, MAX_PENDING_MESSAGES)
            and self._in_flight_bytes < MAX_PENDING_BYTES
        )

    def _send_numbered(self, waiting: _Waiting) -> None:
        frame = self._frame(waiting.message, waiting.topic, waiting.qos, waiting.identifier)
        if frame is None:
            return
        packet_id = next(self._packet_ids)
        while packet_id in self._in_flight:
            packet_id = next(self._packet_ids)
        assert isinstance(frame.data, bytes)  # MQTT frames are binary
        data = packets.set_packet_id(frame.data, packet_id)
        self._in_flight[packet_id] = _InFlight(waiting, len(data))
        self._in_flight_bytes += len(data)
        self._write(OutgoingFrame(data), limit=False)

    def _pump(self) -> None:
        """Send what waits, as far as the client takes it."""
        now = time.monotonic()
        while self._waiting and self.attached and self._has_room():
            waiting = self._waiting.popleft()
            expires = waiting.message.expires
            if expires is None or expires > now:
                self._send_numbered(waiting)

    def _frame(
        self, message: DataMessage, topic: str, qos: int, identifier: int | None,
        *, started: bool = False,
    ) -> OutgoingFrame | None:
        """The message's PUBLISH (packet id 1 for QoS 1 and 2, to be replaced), encoded once
        for every subscriber of the same protocol version and QoS; None when it has expired
        before its delivery ``started`` (which then goes on: MQTT 5 3.3.2.3.3), or is larger
        than the client takes."""
        expiry: int | None = None
        if message.expires is not None:
            left = message.expires - time.monotonic()
            if left <= 0 and not started:
                return None
            expiry = max(1, round(left))
        cacheable = identifier is None
        key = (MQTT, self.protocol_version, qos, topic, expiry)
        frame = message.frames.get(key) if cacheable else None
        if frame is None:
            properties = Properties()
            if self.protocol_version >= MQTT_5:
                forwarded = message.mqtt_properties
                if isinstance(forwarded, Properties):
                    properties = Properties(
                        payload_format_indicator=forwarded.payload_format_indicator,
                        content_type=forwarded.content_type,
                        response_topic=forwarded.response_topic,
                        correlation_data=forwarded.correlation_data,
                        user_properties=list(forwarded.user_properties),
                    )
                else:
                    properties.content_type = CONTENT_TYPES[message.payload.data_type]
                properties.message_expiry_interval = expiry
                if identifier is not None:
                    properties.subscription_identifiers = [identifier]
            publish = Publish(topic, message.payload.body, qos=qos,
                              packet_id=1 if qos else None, properties=properties)
            frame = OutgoingFrame(packets.encode(publish, self.protocol_version))
            if cacheable:
                message.frames[key] = frame
        limit = self.client_maximum_packet_size
        if limit is not None and len(frame.data) > limit:
            return None  # MQTT 5: a server never sends a packet larger than the client takes
        return frame

    # -- the client's acknowledgements -------------------------------------------------------------

    def acknowledged(self, packet_id: int) -> None:
        """PUBACK (QoS 1) or PUBCOMP (QoS 2): the message is the client's."""
        in_flight = self._in_flight.pop(packet_id, None)
        if in_flight is not None:
            self._in_flight_bytes -= in_flight.size
            self._pump()

    def received(self, packet_id: int, failed: bool) -> None:
        """PUBREC: answer PUBREL, unless the client refused the message (MQTT 5 reason code
        0x80 or above), which ends its delivery."""
        in_flight = self._in_flight.get(packet_id)
        if in_flight is None:
            if not failed:  # a PUBREC sent again after a resume: release it anyway
                code = PACKET_IDENTIFIER_NOT_FOUND if self._v5 else 0
                self.send_packet(packets.PubRel(packet_id, code))
            return
        if failed:
            self.acknowledged(packet_id)  # the client refused it: its delivery is over
            return
        in_flight.released = True
        self.send_packet(packets.PubRel(packet_id))

    @property
    def _v5(self) -> bool:
        return self.protocol_version >= MQTT_5

    # -- the socket's life ------------------------------------------------------------------------

    def attach(self, writer: Any) -> None:
        """A (new) network connection: send again what the client has not acknowledged, with
        DUP set and encoded for the connection's protocol version and limits (MQTT 3.1.1 and
        5.0 section 4.4), then what waited. A will still waiting for its delay is not sent."""
        self.cancel_will()
        super().attach(writer)
        for packet_id, in_flight in list(self._in_flight.items()):
            if in_flight.released:
                self.send_packet(packets.PubRel(packet_id))
                continue
            sent = in_flight.sent
            frame = self._frame(sent.message, sent.topic, sent.qos, sent.identifier,
                                started=True)
            if frame is None:  # larger than the new connection takes
                self.acknowledged(packet_id)
                continue
            assert isinstance(frame.data, bytes)
            data = packets.set_packet_id(frame.data, packet_id, dup=True)
            self._write(OutgoingFrame(data), limit=False)
        self._pump()

    def release_will(self, *, now: bool = False) -> None:
        """The network connection ended without a DISCONNECT that discards its will: publish it
        after its will delay (MQTT 5), or at once (``now``: the session ends); a client that
        comes back to the session first cancels it (MQTT 5 3.1.3.2.2)."""
        will, self.will = self.will, None
        publisher = self.will_publisher
        if will is None or publisher is None:
            return
        delay = 0 if now or not self._v5 else will.properties.will_delay_interval or 0
        self.schedule_will(float(delay), lambda: publisher(will))

    async def take_over(self) -> None:
        """Another network connection resumes the session: the current one is told so (MQTT 5)
        and closed, and its will released (MQTT 5 3.1.4)."""
        writer = self._writer
        if writer is None:
            return
        if self._v5:
            self.send_packet(packets.Disconnect(SESSION_TAKEN_OVER))
        self.release_will()
        self._writer = None
        await writer.close(CLOSE_NORMAL, "Session taken over")

    @property
    def reliable(self) -> bool:
        """Whether its client may come back to it after a drop: it has a session expiry."""
        return self.expiry > 0

    def hang(self) -> Writer | None:
        writer = super().hang()
        if writer is not None:
            self.release_will()
            self._wait_for_recovery()
        return writer

    def _wait_for_recovery(self) -> None:
        if self.expiry <= 0:
            reason = None if self.initiated_by_client else (
                "The network connection closed, and the session with it."
            )
            self._end_later(self, reason, CLOSE_GOING_AWAY)
            return
        self._expiry = asyncio.get_running_loop().call_later(self.expiry, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        if not self.ended and not self.attached:
            self._end_later(self, "The session expired: its client did not come back.",
                            CLOSE_GOING_AWAY)

    def schedule_will(self, delay: float, publish: Callable[[], None]) -> None:
        """Publish the last will after ``delay`` seconds (MQTT 5 will delay), unless the client
        comes back to the session first; when the session ends first, then."""
        self.cancel_will()
        if delay <= 0:
            publish()
            return

        def due() -> None:
            self._will_timer = self._will_publish = None
            publish()

        self._will_publish = publish
        self._will_timer = asyncio.get_running_loop().call_later(delay, due)

    def cancel_will(self) -> None:
        if self._will_timer is not None:
            self._will_timer.cancel()
        self._will_timer = self._will_publish = None

    async def close(self, reason: str | None, code: int) -> None:
        """End the session: an MQTT 5 client is told why with a DISCONNECT first; a connected
        client's will goes out (the service, not the client, ended its connection), and so does
        one still waiting for its delay."""
        if self.attached:
            self.release_will(now=True)
        if self.attached and self._v5:
            reason_code = self.closing_reason_code
            if reason_code is None:
                reason_code = SERVER_SHUTTING_DOWN if code == CLOSE_GOING_AWAY else (
                    ADMINISTRATIVE_ACTION
                )
            properties = Properties(reason_string=(reason or "")[:200] or None)
            self.send_packet(packets.Disconnect(reason_code, properties))
        self._in_flight.clear()
        self._in_flight_bytes = 0
        self._waiting.clear()
        will = self._will_publish
        self.cancel_will()
        await super().close(reason, code)
        if will is not None:
            will()  # a will waiting for its delay goes out when the session ends (MQTT 5 3.1.2.5)


def payload_of(publish: Publish, protocol_version: int) -> Payload:
    """A PUBLISH's payload as a message's data: typed by its MQTT 5 content type (binary
    without one, and in MQTT 3.1.1); text and JSON that do not decode stay binary, so nothing
    is lost."""
    data_type = "binary"
    if protocol_version >= MQTT_5 and publish.properties.content_type:
        data_type = DATA_TYPES.get(publish.properties.content_type.split(";")[0].strip().lower(),
                                   "binary")
    if data_type in ("text", "json"):
        try:
            return Payload.from_http(CONTENT_TYPES[data_type], publish.payload)
        except ValueError:
            data_type = "binary"
    return Payload(data_type, binary=publish.payload)  # type: ignore[arg-type]
