"""The emulator's MQTT endpoint byte for byte over a real WebSocket: bad input and the service's
limits, each of which closes only that connection with the reason code the service uses while a
bystander (a paho-mqtt client) goes on publishing and receiving; and flow control."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from flask_webpubsub.emulator.mqtt import packets
from flask_webpubsub.emulator.mqtt.packets import (
    MQTT_5,
    MQTT_311,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
)

from .mqtt_support import ALL_ROLES, HUB, V5, Client, MqttStack, mqtt_stack


@pytest.fixture(scope="module")
def stack() -> Iterator[MqttStack]:
    with mqtt_stack(upstream=None, heartbeat=1.0) as stack:
        yield stack


@pytest.fixture
def bystander(stack: MqttStack) -> Iterator[Client]:
    client = stack.client("bystander", V5, token=stack.token(roles=ALL_ROLES))
    client.connect()
    assert client.subscribe("room")[0].value == 1
    yield client
    client.stop()


class Raw:
    """Raw WebSocket connections to the MQTT endpoint, closed after the test."""

    def __init__(self, stack: MqttStack, sockets: ExitStack) -> None:
        self.stack = stack
        self.sockets = sockets

    def open(self) -> ClientConnection:
        url = self.stack.emulator.url.replace("http", "ws", 1)
        return self.sockets.enter_context(connect(
            f"{url}/clients/mqtt/hubs/{HUB}?access_token={self.stack.token()}",
            subprotocols=[Subprotocol("mqtt")], open_timeout=10, max_size=None,
        ))

    def connected(self, version: int = MQTT_5, client_id: str = "raw") -> ClientConnection:
        ws = self.open()
        ws.send(packets.encode(Connect(version, client_id, True, 30), version))
        frame = ws.recv(timeout=10)
        assert isinstance(frame, bytes)
        connack = packets.decode(frame, version, from_server=True)
        assert isinstance(connack, ConnAck)
        assert connack.reason_code == 0
        return ws


@pytest.fixture
def raw(stack: MqttStack) -> Iterator[Raw]:
    with ExitStack() as sockets:
        yield Raw(stack, sockets)


def closed_after(ws: ClientConnection, version: int) -> list[Packet]:
    """What the server sent before it closed the socket."""
    reader = packets.PacketReader(1 << 24, from_server=True, version=version)
    seen: list[Packet] = []
    with pytest.raises(ConnectionClosed):
        read_forever(ws, reader, seen)
    return seen


def close_frame(ws: ClientConnection) -> tuple[int, str]:
    """The server's close frame, after whatever it sent first."""
    reader = packets.PacketReader(1 << 24, from_server=True, version=MQTT_5)
    with pytest.raises(ConnectionClosed) as closed:
        read_forever(ws, reader, [])
    frame = closed.value.rcvd
    assert frame is not None
    return frame.code, frame.reason


def read_forever(ws: ClientConnection, reader: packets.PacketReader, seen: list[Packet]) -> None:
    while True:
        frame = ws.recv(timeout=10)
        assert isinstance(frame, bytes), "MQTT travels in binary frames"
        seen.extend(reader.feed(frame))


def still_served(stack: MqttStack, bystander: Client) -> None:
    stack.service.send_to_group("room", "still here", content_type="text/plain")
    assert bystander.next_message().payload == b"still here"


@pytest.mark.parametrize("version", [MQTT_311, MQTT_5], ids=["3.1.1", "5.0"])
def test_a_malformed_packet_closes_the_connection(
    stack: MqttStack, raw: Raw, bystander: Client, version: int
) -> None:
    ws = raw.connected(version)
    ws.send(bytes([0x36, 0x03, 0x00, 0x01, 0x61]))  # PUBLISH with QoS 3
    seen = closed_after(ws, version)
    if version == MQTT_5:
        [disconnect] = seen
        assert isinstance(disconnect, Disconnect)
        assert disconnect.reason_code == packets.MALFORMED_PACKET
        assert "QoS" in (disconnect.properties.reason_string or "")
    else:
        assert seen == []  # MQTT 3.1.1 has no way to say why
    still_served(stack, bystander)


def test_an_oversized_packet_is_refused_from_its_header(
    stack: MqttStack, raw: Raw, bystander: Client
) -> None:
    ws = raw.connected()
    # A PUBLISH announcing 200 MB: refused from the fixed header, before any body is read.
    ws.send(bytes([0x30, 0x80, 0x80, 0x80, 0x64]))
    [disconnect] = closed_after(ws, MQTT_5)
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == packets.PACKET_TOO_LARGE
    still_served(stack, bystander)


def test_a_frame_over_the_message_limit_is_refused(
    stack: MqttStack, raw: Raw, bystander: Client
) -> None:
    ws = raw.connected()
    # Only the header of a binary frame of 2 MB: refused from its length alone, so nothing the
    # client still sends can race the close frame.
    size = 2 * 1024 * 1024
    ws.socket.sendall(bytes([0x82, 0x80 | 127]) + size.to_bytes(8, "big") + b"\x00" * 5)
    assert close_frame(ws)[0] == 1009
    still_served(stack, bystander)


@pytest.mark.parametrize(
    ("name", "level"), [(b"MQIsdp", 3), (b"MQTT", 3), (b"MQTT", 6)],
    ids=["MQTT 3.1", "level 3", "level 6"],
)
def test_an_unsupported_protocol_level_is_refused_with_connack_1(
    stack: MqttStack, raw: Raw, bystander: Client, name: bytes, level: int
) -> None:
    ws = raw.open()
    body = len(name).to_bytes(2, "big") + name + bytes([level, 0x02, 0, 30, 0, 1]) + b"x"
    ws.send(bytes([0x10, len(body)]) + body)
    seen = closed_after(ws, MQTT_311)
    assert seen == [ConnAck(False, packets.CONNACK_UNACCEPTABLE_PROTOCOL_VERSION)]
    still_served(stack, bystander)


def test_a_client_that_never_sends_connect_is_closed(
    stack: MqttStack, raw: Raw, bystander: Client
) -> None:
    ws = raw.open()  # the hub's keep-alive interval is 1 s here
    code, reason = close_frame(ws)
    assert code == 1008
    assert "CONNECT" in reason
    still_served(stack, bystander)


def test_a_first_packet_other_than_connect_closes_the_connection(
    stack: MqttStack, raw: Raw, bystander: Client
) -> None:
    ws = raw.open()
    ws.send(packets.encode(packets.PingReq(), MQTT_311))
    assert closed_after(ws, MQTT_311) == []
    still_served(stack, bystander)


def test_a_second_connect_is_a_protocol_error(
    stack: MqttStack, raw: Raw, bystander: Client
) -> None:
    ws = raw.connected()
    ws.send(packets.encode(Connect(MQTT_5, "raw", True, 30), MQTT_5))
    [disconnect] = closed_after(ws, MQTT_5)
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == packets.PROTOCOL_ERROR
    still_served(stack, bystander)


def test_a_text_frame_is_a_protocol_error(
    stack: MqttStack, raw: Raw, bystander: Client
) -> None:
    ws = raw.connected()
    ws.send("CONNECT")
    [disconnect] = closed_after(ws, MQTT_5)
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == packets.PROTOCOL_ERROR
    still_served(stack, bystander)


def test_a_silent_client_is_closed_after_one_and_a_half_keep_alives(
    stack: MqttStack, raw: Raw, bystander: Client
) -> None:
    ws = raw.open()
    ws.send(packets.encode(Connect(MQTT_5, "silent", True, 1), MQTT_5))
    seen = closed_after(ws, MQTT_5)
    assert isinstance(seen[0], ConnAck)
    assert isinstance(seen[1], Disconnect)
    assert seen[1].reason_code == packets.KEEP_ALIVE_TIMEOUT
    still_served(stack, bystander)


def test_a_publish_to_a_wildcard_topic_is_refused(
    stack: MqttStack, raw: Raw, bystander: Client
) -> None:
    ws = raw.connected()
    topic = b"room/#"
    ws.send(bytes([0x30, 2 + len(topic) + 1]) + len(topic).to_bytes(2, "big") + topic + b"\x00"
            + b"x")
    [disconnect] = closed_after(ws, MQTT_5)
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == packets.TOPIC_NAME_INVALID
    still_served(stack, bystander)


def connack_for(raw: Raw, connect: Connect) -> list[Packet]:
    ws = raw.open()
    ws.send(packets.encode(connect, connect.protocol_version))
    return closed_after(ws, connect.protocol_version)


@pytest.mark.parametrize("keep_alive", [0, 181])
def test_an_mqtt_311_keep_alive_outside_1_to_180_s_is_refused(
    stack: MqttStack, raw: Raw, bystander: Client, keep_alive: int
) -> None:
    # MQTT 3.1.1 has no CONNACK code for it: the connection closes without one.
    assert connack_for(raw, Connect(MQTT_311, "device", True, keep_alive)) == []
    still_served(stack, bystander)


@pytest.mark.parametrize(
    ("will", "code"),
    [
        (packets.Will("status", b"x" * 2001), packets.PACKET_TOO_LARGE),
        (packets.Will("s" * 1025, b"gone"), packets.TOPIC_NAME_INVALID),
        (packets.Will("   ", b"gone"), packets.TOPIC_NAME_INVALID),
        (packets.Will("status", b"gone", retain=True), packets.RETAIN_NOT_SUPPORTED),
    ],
    ids=["payload over 2,000 bytes", "topic over 1,024 characters", "blank topic", "retained"],
)
def test_last_wills_past_the_service_limits_are_refused(
    stack: MqttStack, raw: Raw, bystander: Client, will: packets.Will, code: int
) -> None:
    [connack] = connack_for(raw, Connect(MQTT_5, "device", True, 30, will=will))
    assert isinstance(connack, ConnAck)
    assert connack.reason_code == code
    assert connack.properties.reason_string
    # In MQTT 3.1.1 the same CONNECT closes the connection without a CONNACK.
    assert connack_for(raw, Connect(MQTT_311, "device", True, 30, will=will)) == []
    still_served(stack, bystander)


def test_a_topic_alias_is_refused(stack: MqttStack, raw: Raw, bystander: Client) -> None:
    ws = raw.connected()
    ws.send(packets.encode(packets.Publish(
        "room", b"x", properties=packets.Properties(topic_alias=1)), MQTT_5))
    [disconnect] = closed_after(ws, MQTT_5)
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == packets.TOPIC_ALIAS_INVALID
    still_served(stack, bystander)


def test_flow_control_keeps_to_the_clients_receive_maximum(
    stack: MqttStack, raw: Raw
) -> None:
    ws = raw.open()
    connect_packet = Connect(MQTT_5, "slow", True, 30,
                          properties=packets.Properties(receive_maximum=1))
    ws.send(packets.encode(connect_packet, MQTT_5))
    reader = packets.PacketReader(1 << 24, from_server=True, version=MQTT_5)

    def next_packet() -> Packet:
        while True:
            frame = ws.recv(timeout=10)
            assert isinstance(frame, bytes)
            got = reader.feed(frame)
            if got:
                assert len(got) == 1
                return got[0]

    assert isinstance(next_packet(), ConnAck)
    for n in range(3):
        stack.service.send_to_connection("slow", f"m{n}", content_type="text/plain")
    first = next_packet()
    assert isinstance(first, packets.Publish)
    assert (first.payload, first.qos) == (b"m0", 1)
    with pytest.raises(TimeoutError):
        ws.recv(timeout=0.5)  # the second waits for the first's PUBACK
    for expected in (b"m1", b"m2"):
        assert first.packet_id is not None
        ws.send(packets.encode(packets.PubAck(first.packet_id), MQTT_5))
        first = next_packet()
        assert isinstance(first, packets.Publish)
        assert first.payload == expected


@pytest.mark.parametrize("topic", ["", "t" * 1025], ids=["empty", "over 1,024 characters"])
def test_topic_filters_the_service_cannot_have_are_refused(
    stack: MqttStack, raw: Raw, topic: str
) -> None:
    ws = raw.connected()
    ws.send(packets.encode(packets.Subscribe(1, [packets.Subscription(topic, 1),
                                                 packets.Subscription("fine", 1)]), MQTT_5))
    frame = ws.recv(timeout=10)
    assert isinstance(frame, bytes)
    suback = packets.decode(frame, MQTT_5, from_server=True)
    assert isinstance(suback, packets.SubAck)
    # Each subscription on its own: the second fails only for want of a role.
    assert suback.reason_codes == [packets.TOPIC_FILTER_INVALID, packets.NOT_AUTHORIZED]
