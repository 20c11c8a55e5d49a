"""The emulator's MQTT codec: round trips of every packet type in MQTT 3.1.1 and 5.0 (also cut
into arbitrary chunks), the bytes paho-mqtt sends decoded and the bytes we send decoded by
paho-mqtt over real loopback sockets, ``set_packet_id``, and each rule a decoder must check.

The properties each packet may carry and the reason codes each packet may hold are written out
here again from the MQTT 5.0 specification (Table 2-4 and chapter 3), independently of the
codec's own tables.
"""

from __future__ import annotations

import dataclasses
from itertools import pairwise
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from flask_webpubsub.emulator.mqtt.packets import (
    MQTT_5,
    MQTT_311,
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PacketReader,
    PingReq,
    PingResp,
    Properties,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
    Will,
    decode,
    encode,
)

VERSIONS = st.sampled_from([MQTT_311, MQTT_5])

# -- Strategies ---------------------------------------------------------------------------------

#: Text MQTT allows: any well-formed UTF-8 but U+0000.
TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
#: A topic name: at least one character, no wildcards.
TOPIC = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00+#"), min_size=1, max_size=12
)
BINARY = st.binary(max_size=16)
FLAG = st.integers(0, 1)
U16 = st.integers(0, 0xFFFF)
U32 = st.integers(0, 0xFFFF_FFFF)

#: Values each property may take (MQTT 5.0 section 3).
PROPERTY_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "payload_format_indicator": FLAG,
    "message_expiry_interval": U32,
    "content_type": TEXT,
    "response_topic": TOPIC,
    "correlation_data": BINARY,
    "subscription_identifiers": st.lists(st.integers(1, 268_435_455), min_size=1, max_size=3),
    "session_expiry_interval": U32,
    "assigned_client_identifier": TEXT,
    "server_keep_alive": U16,
    "authentication_method": TEXT,
    "authentication_data": BINARY,
    "request_problem_information": FLAG,
    "will_delay_interval": U32,
    "request_response_information": FLAG,
    "response_information": TEXT,
    "server_reference": TEXT,
    "reason_string": TEXT,
    "receive_maximum": st.integers(1, 0xFFFF),
    "topic_alias_maximum": U16,
    "topic_alias": st.integers(1, 0xFFFF),
    "maximum_qos": FLAG,
    "retain_available": FLAG,
    "user_properties": st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=3),
    "maximum_packet_size": st.integers(1, 0xFFFF_FFFF),
    "wildcard_subscription_available": FLAG,
    "subscription_identifier_available": FLAG,
    "shared_subscription_available": FLAG,
}

_ACK = {"reason_string", "user_properties"}
#: MQTT 5.0 Table 2-4: the properties each packet (and a will) may carry.
SPEC_PROPERTIES: dict[str, set[str]] = {
    "CONNECT": {
        "session_expiry_interval",
        "authentication_method",
        "authentication_data",
        "request_problem_information",
        "request_response_information",
        "receive_maximum",
        "topic_alias_maximum",
        "user_properties",
        "maximum_packet_size",
    },
    "will": {
        "payload_format_indicator",
        "message_expiry_interval",
        "content_type",
        "response_topic",
        "correlation_data",
        "will_delay_interval",
        "user_properties",
    },
    "CONNACK": {
        "session_expiry_interval",
        "assigned_client_identifier",
        "server_keep_alive",
        "authentication_method",
        "authentication_data",
        "response_information",
        "server_reference",
        "reason_string",
        "receive_maximum",
        "topic_alias_maximum",
        "maximum_qos",
        "retain_available",
        "user_properties",
        "maximum_packet_size",
        "wildcard_subscription_available",
        "subscription_identifier_available",
        "shared_subscription_available",
    },
    "PUBLISH": {
        "payload_format_indicator",
        "message_expiry_interval",
        "content_type",
        "response_topic",
        "correlation_data",
        "subscription_identifiers",
        "topic_alias",
        "user_properties",
    },
    "PUBACK": _ACK,
    "PUBREC": _ACK,
    "PUBREL": _ACK,
    "PUBCOMP": _ACK,
    "SUBSCRIBE": {"subscription_identifiers", "user_properties"},
    "SUBACK": _ACK,
    "UNSUBSCRIBE": {"user_properties"},
    "UNSUBACK": _ACK,
    "DISCONNECT": {
        "session_expiry_interval",
        "server_reference",
        "reason_string",
        "user_properties",
    },
    "AUTH": {"authentication_method", "authentication_data", "reason_string", "user_properties"},
}

_PUBACK_CODES = [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]
#: MQTT 5.0 chapter 3: the reason codes of each packet.
SPEC_REASON_CODES: dict[str, list[int]] = {
    "CONNACK": [0x00, *range(0x80, 0x8B), 0x8C, 0x90, 0x95, 0x97, *range(0x99, 0x9E), 0x9F],
    "PUBACK": _PUBACK_CODES,
    "PUBREC": _PUBACK_CODES,
    "PUBREL": [0x00, 0x92],
    "PUBCOMP": [0x00, 0x92],
    "SUBACK": [0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2],
    "UNSUBACK": [0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91],
    "DISCONNECT": [
        *(0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90),
        *range(0x93, 0xA3),
    ],
    "AUTH": [0x00, 0x18, 0x19],
}


def _properties(values: dict[str, Any]) -> Properties:
    if "authentication_data" in values:
        values.setdefault("authentication_method", "method")
    return Properties(**values)


def properties(where: str, *, one_subscription_identifier: bool = False) -> st.SearchStrategy[
    Properties
]:
    """Any properties MQTT 5 allows in ``where`` (a packet name or "will")."""
    optional = {name: PROPERTY_VALUES[name] for name in SPEC_PROPERTIES[where]}
    if one_subscription_identifier and "subscription_identifiers" in optional:
        optional["subscription_identifiers"] = st.lists(
            st.integers(1, 268_435_455), min_size=1, max_size=1
        )
    return st.fixed_dictionaries({}, optional=optional).map(_properties)


def reason(name: str) -> st.SearchStrategy[int]:
    return st.sampled_from(SPEC_REASON_CODES[name])


PACKET_IDS = st.integers(1, 0xFFFF)


@st.composite
def publishes(draw: st.DrawFn, *, from_server: bool = True) -> Publish:
    qos = draw(st.integers(0, 2))
    props = draw(properties("PUBLISH"))
    if not from_server:
        props.subscription_identifiers = []  # only a server's PUBLISH says which subscription
    return Publish(
        topic=draw(TOPIC),
        payload=draw(st.binary(max_size=64)),
        qos=qos,
        retain=draw(st.booleans()),
        dup=draw(st.booleans()) if qos else False,
        packet_id=draw(PACKET_IDS) if qos else None,
        properties=props,
    )


@st.composite
def connects(draw: st.DrawFn, version: int) -> Connect:
    username = draw(st.none() | TEXT)
    password = draw(st.none() | BINARY)
    if version == MQTT_311 and password is not None and username is None:
        username = draw(TEXT)  # 3.1.1 has a password only after a username
    will = None
    if draw(st.booleans()):
        will = Will(
            topic=draw(TOPIC),
            payload=draw(BINARY),
            qos=draw(st.integers(0, 2)),
            retain=draw(st.booleans()),
            properties=draw(properties("will")),
        )
    return Connect(
        protocol_version=version,
        client_id=draw(TEXT),
        clean_start=draw(st.booleans()),
        keep_alive=draw(U16),
        username=username,
        password=password,
        will=will,
        properties=draw(properties("CONNECT")),
    )


@st.composite
def connacks(draw: st.DrawFn, version: int) -> ConnAck:
    code = draw(st.integers(0, 5) if version == MQTT_311 else reason("CONNACK"))
    return ConnAck(
        session_present=draw(st.booleans()) if code == 0 else False,
        reason_code=code,
        properties=draw(properties("CONNACK")),
    )


@st.composite
def subscriptions(draw: st.DrawFn) -> Subscription:
    topic_filter = draw(TEXT.filter(bool))
    return Subscription(
        topic_filter=topic_filter,
        qos=draw(st.integers(0, 2)),
        # no_local on a shared subscription is a Protocol Error (MQTT 5.0 section 3.8.3.1)
        no_local=draw(st.booleans()) and not topic_filter.startswith("$share/"),
        retain_as_published=draw(st.booleans()),
        retain_handling=draw(st.integers(0, 2)),
    )


def acks(cls: type[PubAck | PubRec | PubRel | PubComp], name: str) -> st.SearchStrategy[Packet]:
    return st.builds(cls, PACKET_IDS, reason(name), properties(name))


def client_packets(version: int) -> st.SearchStrategy[Packet]:
    """Any packet but CONNECT a client may send."""
    options: list[st.SearchStrategy[Packet]] = [
        publishes(from_server=False),
        acks(PubAck, "PUBACK"),
        acks(PubRec, "PUBREC"),
        acks(PubRel, "PUBREL"),
        acks(PubComp, "PUBCOMP"),
        st.builds(
            Subscribe,
            PACKET_IDS,
            st.lists(subscriptions(), min_size=1, max_size=4),
            properties("SUBSCRIBE", one_subscription_identifier=True),
        ),
        st.builds(
            Unsubscribe,
            PACKET_IDS,
            st.lists(TEXT.filter(bool), min_size=1, max_size=4),
            properties("UNSUBSCRIBE"),
        ),
        st.just(PingReq()),
        st.builds(Disconnect, reason("DISCONNECT"), properties("DISCONNECT")),
    ]
    if version == MQTT_5:
        options.append(st.builds(Auth, reason("AUTH"), properties("AUTH")))
    return st.one_of(options)


def server_packets(version: int) -> st.SearchStrategy[Packet]:
    """Any packet a server may send."""
    options: list[st.SearchStrategy[Packet]] = [
        connacks(version),
        publishes(),
        acks(PubAck, "PUBACK"),
        acks(PubRec, "PUBREC"),
        acks(PubRel, "PUBREL"),
        acks(PubComp, "PUBCOMP"),
        st.builds(
            SubAck, PACKET_IDS, st.lists(reason("SUBACK"), max_size=4), properties("SUBACK")
        ),
        st.builds(
            UnsubAck,
            PACKET_IDS,
            st.lists(reason("UNSUBACK"), max_size=4),
            properties("UNSUBACK"),
        ),
        st.just(PingResp()),
        st.builds(Disconnect, reason("DISCONNECT"), properties("DISCONNECT")),
    ]
    if version == MQTT_5:
        options.append(st.builds(Auth, reason("AUTH"), properties("AUTH")))
    return st.one_of(options)


def as_311(packet: Packet) -> Packet:
    """What is left of ``packet`` after a trip through MQTT 3.1.1."""
    none = Properties()
    if isinstance(packet, Connect):
        will = packet.will and dataclasses.replace(packet.will, properties=none)
        return dataclasses.replace(packet, will=will, properties=none)
    if isinstance(packet, Subscribe):
        plain = [Subscription(s.topic_filter, s.qos) for s in packet.subscriptions]
        return Subscribe(packet.packet_id, plain)
    if isinstance(packet, SubAck):
        return SubAck(packet.packet_id, [min(code, 0x80) for code in packet.reason_codes])
    if isinstance(packet, UnsubAck):
        return UnsubAck(packet.packet_id)
    if isinstance(packet, PubAck | PubRec | PubRel | PubComp):
        return type(packet)(packet.packet_id)
    if isinstance(packet, Disconnect):
        return Disconnect()
    if isinstance(packet, ConnAck | Publish | Unsubscribe):
        return dataclasses.replace(packet, properties=none)
    return packet


def expected(packet: Packet, version: int) -> Packet:
    return packet if version == MQTT_5 else as_311(packet)


# -- 1. Round trips -----------------------------------------------------------------------------


@given(st.data(), VERSIONS)
def test_a_client_packet_decodes_to_itself(data: st.DataObject, version: int) -> None:
    packet = data.draw(connects(version) | client_packets(version))
    assert decode(encode(packet, version), version) == expected(packet, version)


@given(st.data(), VERSIONS)
def test_a_server_packet_decodes_to_itself(data: st.DataObject, version: int) -> None:
    packet = data.draw(server_packets(version))
    assert decode(encode(packet, version), version, from_server=True) == expected(packet, version)


def _chunks(data: st.DataObject, blob: bytes) -> list[bytes]:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(blob)), max_size=10)))
    return [blob[start:end] for start, end in pairwise([0, *cuts, len(blob)])]


@given(st.data(), VERSIONS)
def test_a_client_stream_in_any_chunks_gives_the_same_packets(
    data: st.DataObject, version: int
) -> None:
    packets: list[Packet] = [
        data.draw(connects(version)),
        *data.draw(st.lists(client_packets(version), max_size=6)),
    ]
    reader = PacketReader(1 << 16)
    read = []
    for chunk in _chunks(data, b"".join(encode(p, version) for p in packets)):
        read += reader.feed(chunk)
    assert read == [expected(p, version) for p in packets]
    assert reader.version == version
    assert reader.buffered == 0


@given(st.data(), VERSIONS)
def test_a_server_stream_in_any_chunks_gives_the_same_packets(
    data: st.DataObject, version: int
) -> None:
    packets = data.draw(st.lists(server_packets(version), min_size=1, max_size=6))
    reader = PacketReader(1 << 16, from_server=True, version=version)
    read = []
    for chunk in _chunks(data, b"".join(encode(p, version) for p in packets)):
        read += reader.feed(chunk)
    assert read == [expected(p, version) for p in packets]
    assert reader.buffered == 0
