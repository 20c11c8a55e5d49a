"""A minimal MQTT 5 client over WebSocket for load tests, on top of :mod:`benchmarks.wsload`.

Like the JSON readers of the emulator benchmark, it does what a load generator must and no
more: after the WebSocket handshake (checked by :class:`~benchmarks.wsload.LoadClient`) it sends
a CONNECT, takes the first binary frame as the CONNACK, keeps every later frame with the time
it arrived, and, when ``acknowledge`` is on, answers each QoS 1 PUBLISH with a PUBACK at once.
It asks for a keep-alive of 60 seconds, as paho-mqtt and mqtt.js do by default, and sends a
PINGREQ every 60 seconds (their PINGRESPs are not kept).
Its packets are built with the emulator's own codec (:mod:`flask_webpubsub.emulator.mqtt.packets`);
while timed it reads only the bytes a PUBACK needs (fixed header, topic length, packet id),
and the caller decodes and checks every frame with the same codec afterwards.
"""

from __future__ import annotations

import asyncio
import time

from benchmarks.wsload import LoadClient
from flask_webpubsub.emulator.mqtt import packets

SUBPROTOCOL = "mqtt"
_BINARY = 0x2
_PUBLISH_QOS = 0x06
_PUBACK = bytes((packets.PUBACK << 4, 2))
_PINGREQ = bytes((packets.PINGREQ << 4, 0))
_PINGRESP = bytes((packets.PINGRESP << 4, 0))
#: Seconds: what paho-mqtt and mqtt.js ask for unless told otherwise.
KEEP_ALIVE = 60


def frame(payload: bytes) -> bytes:
    """A client's binary WebSocket frame: final, masked with a zero key (the XOR is a no-op,
    which RFC 6455 allows; a load client sends nothing secret)."""
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | _BINARY, 0x80 | size))
    elif size < 1 << 16:
        head = bytes((0x80 | _BINARY, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x80 | _BINARY, 0x80 | 127)) + size.to_bytes(8, "big")
    return head + bytes(4) + payload


class MqttLoadClient(LoadClient):
    """One MQTT 5 client on its own WebSocket. ``first_frame`` is its CONNACK; ``frames`` holds
    (payload, receipt time) of every binary frame after it."""

    def __init__(
        self, path: str, host: str, client_id: str, keep_alive: int = KEEP_ALIVE
    ) -> None:
        super().__init__(path, host, SUBPROTOCOL)
        connect = packets.Connect(packets.MQTT_5, client_id, True, keep_alive)
        self._connect = packets.encode(connect, packets.MQTT_5)
        self._keep_alive = keep_alive
        self._pinger: asyncio.TimerHandle | None = None
        #: Answer QoS 1 PUBLISH packets with PUBACK as they arrive.
        self.acknowledge = False
        self.acknowledged = 0
        #: perf_counter() when the CONNECT was written and when the CONNACK arrived.
        self.connect_sent = 0.0
        self.connack_received = 0.0

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def send_packet(self, packet: bytes) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(frame(packet))

    def _read_head(self) -> bool:
        opened = super()._read_head()
        if opened:  # once: the socket is open, the session starts with CONNECT
            self.connect_sent = time.perf_counter()
            self.send_packet(self._connect)
            self._ping_later()
        return opened

    def _ping_later(self) -> None:
        if self._keep_alive:
            self._pinger = asyncio.get_running_loop().call_later(self._keep_alive, self._ping)

    def _ping(self) -> None:
        self.send_packet(_PINGREQ)
        self._ping_later()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
        super().connection_lost(exc)

    def _frame(self, opcode: int, payload: bytes, now: float) -> None:
        if opcode == _BINARY and self.first_frame.done():
            if payload == _PINGRESP:
                return
            self.frames.append((payload, now))
            if self.acknowledge:
                self._acknowledge(payload)
            return
        if opcode == _BINARY:
            self.connack_received = now
        super()._frame(opcode, payload, now)

    def _acknowledge(self, data: bytes) -> None:
        """A PUBACK for each QoS 1 PUBLISH the frame holds (the emulator sends one packet per
        frame; a packet split over frames fails the check afterwards)."""
        offset, end = 0, len(data)
        while offset < end:
            first, size, shift, at = data[offset], 0, 0, offset + 1
            while True:
                byte = data[at]
                at += 1
                size |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            if first >> 4 == packets.PUBLISH and first & _PUBLISH_QOS:
                topic_end = at + 2 + int.from_bytes(data[at : at + 2], "big")
                self.send_packet(_PUBACK + data[topic_end : topic_end + 2])
                self.acknowledged += 1
            offset = at + size


async def connect(
    host: str, port: int, path: str, client_id: str, timeout: float = 30
) -> tuple[MqttLoadClient, packets.ConnAck]:
    """A client whose session started: the client and its CONNACK (a refusal raises)."""
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(
        lambda: MqttLoadClient(path, f"{host}:{port}", client_id), host, port
    )
    first = await asyncio.wait_for(client.first_frame, timeout)
    connack = packets.decode(first, packets.MQTT_5, from_server=True)
    if not isinstance(connack, packets.ConnAck) or connack.reason_code:
        client.abort()
        raise RuntimeError(f"expected a successful CONNACK, got {connack!r}")
    return client, connack


def subscribe_packet(packet_id: int, topic: str, qos: int) -> bytes:
    subscription = packets.Subscription(topic, qos)
    return packets.encode(packets.Subscribe(packet_id, [subscription]), packets.MQTT_5)
