"""The emulator's MQTT codec: round trips of every packet type in MQTT 3.1.1 and 5.0 (also cut
into arbitrary chunks), the bytes paho-mqtt sends decoded and the bytes we send decoded by
paho-mqtt over real loopback sockets, ``set_packet_id``, and each rule a decoder must check.

The properties each packet may carry and the reason codes each packet may hold are written out
here again from the MQTT 5.0 specification (Table 2-4 and chapter 3), independently of the
codec's own tables.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import time
from collections.abc import Callable
from itertools import pairwise
from typing import Any, cast

import paho.mqtt.client as paho
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as PahoProperties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from flask_webpubsub.emulator.mqtt.packets import (
    MALFORMED_PACKET,
    MQTT_5,
    MQTT_311,
    PACKET_TOO_LARGE,
    PROTOCOL_ERROR,
    TOPIC_NAME_INVALID,
    UNSUPPORTED_PROTOCOL_VERSION,
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PacketError,
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
    UnsupportedProtocolVersion,
    Will,
    decode,
    encode,
    set_packet_id,
)

VERSIONS = st.sampled_from([MQTT_311, MQTT_5])
#: The machine running the tests may be busy: no test is slow, but one example may be late.
NO_DEADLINE = settings(deadline=None)

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


@NO_DEADLINE
@given(st.data(), VERSIONS)
def test_a_client_packet_decodes_to_itself(data: st.DataObject, version: int) -> None:
    packet = data.draw(connects(version) | client_packets(version))
    assert decode(encode(packet, version), version) == expected(packet, version)


@NO_DEADLINE
@given(st.data(), VERSIONS)
def test_a_server_packet_decodes_to_itself(data: st.DataObject, version: int) -> None:
    packet = data.draw(server_packets(version))
    assert decode(encode(packet, version), version, from_server=True) == expected(packet, version)


def test_mqtt_311_drops_what_it_has_no_field_for() -> None:
    codes = [0x00, 0x02, 0x80, 0x87, 0xA2]
    suback = encode(SubAck(9, codes, Properties(reason_string="r")), MQTT_311)
    assert suback == b"\x90\x07\x00\x09\x00\x02\x80\x80\x80"
    assert encode(PubAck(9, 0x10, Properties(reason_string="r")), MQTT_311) == b"\x40\x02\x00\x09"
    assert encode(Disconnect(0x04), MQTT_311) == b"\xe0\x00"
    assert encode(UnsubAck(9, [0x11]), MQTT_311) == b"\xb0\x02\x00\x09"
    with pytest.raises(ValueError, match="no AUTH"):
        encode(Auth(), MQTT_311)
    with pytest.raises(ValueError, match="return code 6"):
        encode(ConnAck(reason_code=6), MQTT_311)


def _chunks(data: st.DataObject, blob: bytes) -> list[bytes]:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(blob)), max_size=10)))
    return [blob[start:end] for start, end in pairwise([0, *cuts, len(blob)])]


@NO_DEADLINE
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


@NO_DEADLINE
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


# -- 4. set_packet_id ---------------------------------------------------------------------------


@NO_DEADLINE
@given(st.data(), VERSIONS, PACKET_IDS, st.booleans(), st.sampled_from([0, 200, 20_000, 200_000]))
def test_set_packet_id_changes_only_the_packet_id_and_dup(
    data: st.DataObject, version: int, packet_id: int, dup: bool, padding: int
) -> None:
    packet = data.draw(publishes().filter(lambda p: p.qos > 0))
    packet.payload += bytes(padding)  # remaining lengths of 1 to 3 bytes
    changed = set_packet_id(encode(packet, version), packet_id, dup=dup)
    want = expected(dataclasses.replace(packet, packet_id=packet_id, dup=dup), version)
    assert decode(changed, version, from_server=True) == want
    assert changed == encode(want, version)


def test_set_packet_id_refuses_what_has_no_packet_id() -> None:
    with pytest.raises(ValueError, match="QoS 1 or 2 PUBLISH"):
        set_packet_id(encode(Publish("t", b"x"), MQTT_5), 1)
    with pytest.raises(ValueError, match="QoS 1 or 2 PUBLISH"):
        set_packet_id(encode(PubAck(1), MQTT_5), 2)
    with pytest.raises(ValueError, match="1-65535"):
        set_packet_id(encode(Publish("t", b"x", 1, packet_id=1), MQTT_5), 0)


# -- 5. Bad input -------------------------------------------------------------------------------


def vbi(value: int) -> bytes:
    """A variable byte integer, shortest form (MQTT 5.0 section 1.5.5)."""
    out = bytearray()
    while True:
        value, digit = divmod(value, 128)
        out.append(digit | (0x80 if value else 0))
        if not value:
            return bytes(out)


def u16(value: int) -> bytes:
    return value.to_bytes(2, "big")


def s(text: str | bytes) -> bytes:
    """An MQTT string from its text or its raw bytes."""
    data = text.encode() if isinstance(text, str) else text
    return u16(len(data)) + data


def frame(first: int, *body: bytes) -> bytes:
    data = b"".join(body)
    return bytes((first,)) + vbi(len(data)) + data


def props(*items: bytes) -> bytes:
    data = b"".join(items)
    return vbi(len(data)) + data


def connect_body(level: int = MQTT_5, flags: int = 0x02, *, properties: bytes = b"\x00") -> bytes:
    return s("MQTT") + bytes((level, flags)) + u16(30) + (properties if level == MQTT_5 else b"")


def refused(
    data: bytes,
    version: int | None,
    code: int,
    *,
    from_server: bool = False,
    error: type[PacketError] = PacketError,
) -> PacketError:
    """The error ``data`` is refused with, checked to be exactly ``error`` with ``code``."""
    with pytest.raises(PacketError) as info:
        decode(data, version, from_server=from_server)
    assert type(info.value) is error, info.value
    assert info.value.reason_code == code, info.value
    return info.value


#: A value of each property, by identifier (MQTT 5.0 section 2.2.2.2).
PROPERTY_BYTES: dict[str, bytes] = {
    "payload_format_indicator": b"\x01\x01",
    "message_expiry_interval": b"\x02\x00\x00\x00\x3c",
    "content_type": b"\x03" + s("text/plain"),
    "response_topic": b"\x08" + s("reply"),
    "correlation_data": b"\x09" + s(b"\x01\x02"),
    "subscription_identifiers": b"\x0b\x07",
    "session_expiry_interval": b"\x11\x00\x00\x00\x3c",
    "assigned_client_identifier": b"\x12" + s("abc"),
    "server_keep_alive": b"\x13\x00\x3c",
    "authentication_method": b"\x15" + s("SCRAM"),
    "authentication_data": b"\x16" + s(b"\x00\xff"),
    "request_problem_information": b"\x17\x01",
    "will_delay_interval": b"\x18\x00\x00\x00\x05",
    "request_response_information": b"\x19\x01",
    "response_information": b"\x1a" + s("info"),
    "server_reference": b"\x1c" + s("other"),
    "reason_string": b"\x1f" + s("why"),
    "receive_maximum": b"\x21\x00\x0a",
    "topic_alias_maximum": b"\x22\x00\x0a",
    "topic_alias": b"\x23\x00\x01",
    "maximum_qos": b"\x24\x01",
    "retain_available": b"\x25\x00",
    "user_properties": b"\x26" + s("k") + s("v"),
    "maximum_packet_size": b"\x27\x00\x01\x00\x00",
    "wildcard_subscription_available": b"\x28\x00",
    "subscription_identifier_available": b"\x29\x00",
    "shared_subscription_available": b"\x2a\x00",
}
PACKET_ID = u16(7)


def packet_with(where: str, properties: bytes) -> tuple[bytes, bool]:
    """A valid MQTT 5 ``where`` packet (or CONNECT with a will) with these properties section,
    and whether a server sends it."""
    shapes: dict[str, tuple[int, bytes, bool]] = {
        "CONNECT": (0x10, connect_body(properties=properties) + s("c"), False),
        "will": (0x10, connect_body(flags=0x06) + s("c") + properties + s("t") + s(b""), False),
        "CONNACK": (0x20, b"\x00\x00" + properties, True),
        "PUBLISH": (0x30, s("t") + properties + b"payload", True),
        "PUBACK": (0x40, PACKET_ID + b"\x00" + properties, False),
        "PUBREC": (0x50, PACKET_ID + b"\x00" + properties, False),
        "PUBREL": (0x62, PACKET_ID + b"\x00" + properties, False),
        "PUBCOMP": (0x70, PACKET_ID + b"\x00" + properties, False),
        "SUBSCRIBE": (0x82, PACKET_ID + properties + s("f") + b"\x01", False),
        "SUBACK": (0x90, PACKET_ID + properties + b"\x01", True),
        "UNSUBSCRIBE": (0xA2, PACKET_ID + properties + s("f"), False),
        "UNSUBACK": (0xB0, PACKET_ID + properties + b"\x00", True),
        "DISCONNECT": (0xE0, b"\x00" + properties, False),
        "AUTH": (0xF0, b"\x00" + properties, False),
    }
    first, body, from_server = shapes[where]
    return frame(first, body), from_server


def properties_of(packet: Packet, where: str) -> Properties:
    if where == "will":
        assert isinstance(packet, Connect)
        assert packet.will is not None
        return packet.will.properties
    assert not isinstance(packet, PingReq | PingResp)
    return packet.properties


@pytest.mark.parametrize("where", list(SPEC_PROPERTIES))
def test_each_packet_takes_exactly_its_properties(where: str) -> None:
    for name, item in PROPERTY_BYTES.items():
        if name == "authentication_data" and name in SPEC_PROPERTIES[where]:
            item = PROPERTY_BYTES["authentication_method"] + item  # data needs a method
        data, from_server = packet_with(where, props(item))
        if name in SPEC_PROPERTIES[where]:
            packet = decode(data, MQTT_5, from_server=from_server)
            assert getattr(properties_of(packet, where), name) not in (None, []), name
        else:
            # "an Identifier which is not valid for its packet type" (MQTT 5.0 section 2.2.2.2)
            error = refused(data, MQTT_5, MALFORMED_PACKET, from_server=from_server)
            assert f"{name} has no place" in str(error)


@pytest.mark.parametrize("where", list(SPEC_PROPERTIES))
def test_only_user_properties_and_a_publishs_subscription_ids_repeat(where: str) -> None:
    for name in SPEC_PROPERTIES[where]:
        item = PROPERTY_BYTES[name]
        method = PROPERTY_BYTES["authentication_method"] if name == "authentication_data" else b""
        data, from_server = packet_with(where, props(method, item, item))
        repeats = name == "user_properties" or (
            where == "PUBLISH" and name == "subscription_identifiers"
        )
        if repeats:
            packet = decode(data, MQTT_5, from_server=from_server)
            assert len(getattr(properties_of(packet, where), name)) == 2
        else:
            error = refused(data, MQTT_5, PROTOCOL_ERROR, from_server=from_server)
            assert f"{name} given twice" in str(error)


@pytest.mark.parametrize("kind", [k for k in range(1, 16) if k != 3])
def test_fixed_header_flags_have_their_reserved_values(kind: int) -> None:
    required = 0b0010 if kind in (6, 8, 10) else 0  # PUBREL, SUBSCRIBE, UNSUBSCRIBE
    for flags in range(16):
        if flags != required:
            error = refused(frame(kind << 4 | flags, PACKET_ID), MQTT_5, MALFORMED_PACKET)
            assert "reserved flags" in str(error)


def test_reserved_packet_types_are_malformed() -> None:
    refused(frame(0x00), MQTT_5, MALFORMED_PACKET)
    refused(frame(0xF0), MQTT_311, MALFORMED_PACKET)  # AUTH is MQTT 5 only
    assert decode(frame(0xF0), MQTT_5) == Auth()


@pytest.mark.parametrize("version", [MQTT_311, MQTT_5])
def test_publish_flags(version: int) -> None:
    properties = b"\x00" if version == MQTT_5 else b""
    refused(frame(0x36, s("t"), PACKET_ID, properties), version, MALFORMED_PACKET)  # QoS 3
    refused(frame(0x38, s("t"), properties), version, MALFORMED_PACKET)  # DUP on QoS 0
    # DUP, QoS 2 and retain, each allowed
    assert decode(frame(0x3D, s("t"), PACKET_ID, properties), version) == Publish(
        "t", b"", qos=2, retain=True, dup=True, packet_id=7
    )


def test_remaining_length_is_at_most_4_bytes_in_shortest_form() -> None:
    refused(b"\xc0\xff\xff\xff\x7f", MQTT_5, MALFORMED_PACKET)  # 5 bytes
    refused(b"\xc0\x80\x00", MQTT_5, MALFORMED_PACKET)  # 0 in 2 bytes
    refused(b"\xc0\x80\x80\x00", MQTT_5, MALFORMED_PACKET)
    refused(b"\xc0", MQTT_5, MALFORMED_PACKET)  # no remaining length at all
    refused(b"\xc0\x80", MQTT_5, MALFORMED_PACKET)  # cut short
    reader = PacketReader(1 << 20)
    with pytest.raises(PacketError) as info:
        reader.feed(b"\x10\xff\xff\xff\xff")  # refused before any more bytes arrive
    assert info.value.reason_code == MALFORMED_PACKET
    # a property length and a property identifier are variable byte integers too
    refused(frame(0xE0, b"\x00", b"\x80\x00"), MQTT_5, MALFORMED_PACKET)
    refused(frame(0xE0, b"\x00", props(b"\x9f\x00" + s("why"))), MQTT_5, MALFORMED_PACKET)


def test_the_largest_remaining_length_is_read() -> None:
    reader = PacketReader(1 << 30)
    assert reader.feed(b"\x30\xff\xff\xff\x7f") == []
    assert reader.buffered == 5


@pytest.mark.parametrize(
    "raw",
    [
        b"\xc3\x28",  # a lead byte without its continuation
        b"\xed\xa0\x80",  # an encoded surrogate, U+D800
        b"\xc0\xaf",  # an overlong "/"
        b"\xf4\x90\x80\x80",  # past U+10FFFF
        b"a\x00b",  # U+0000
    ],
)
def test_strings_are_well_formed_utf8_without_nul(raw: bytes) -> None:
    refused(frame(0x30, s(raw), b"\x00"), MQTT_5, MALFORMED_PACKET)  # topic
    refused(frame(0x10, connect_body(MQTT_311), s(raw)), None, MALFORMED_PACKET)  # client id
    user_property = props(b"\x26" + s("k") + s(raw))
    refused(frame(0xE0, b"\x00", user_property), MQTT_5, MALFORMED_PACKET)
    refused(frame(0x82, PACKET_ID, s(raw), b"\x00"), MQTT_311, MALFORMED_PACKET)  # filter


def test_lengths_do_not_run_past_the_packet() -> None:
    refused(frame(0x30, u16(5), b"abc"), MQTT_311, MALFORMED_PACKET)  # topic
    refused(frame(0x32, s("t"), b"\x00"), MQTT_311, MALFORMED_PACKET)  # packet id
    refused(frame(0x30, s("t"), b"\x05\x01"), MQTT_5, MALFORMED_PACKET)  # properties
    refused(frame(0x30, s("t"), b"\x03\x03\x00\x05"), MQTT_5, MALFORMED_PACKET)  # content type
    # a property value may not run past the properties into the payload
    refused(frame(0x30, s("t"), b"\x02\x02\x00", b"\x00\x00\x01"), MQTT_5, MALFORMED_PACKET)
    password = u16(9) + b"abc"
    refused(frame(0x10, connect_body(MQTT_5, 0xC2), s("c"), s("u"), password), None, 0x81)
    refused(frame(0x40, b"\x00"), MQTT_311, MALFORMED_PACKET)
    refused(frame(0x20, b"\x00"), MQTT_311, MALFORMED_PACKET, from_server=True)


def test_no_bytes_after_the_end_of_a_packet() -> None:
    refused(frame(0xC0, b"\x00"), MQTT_311, MALFORMED_PACKET)  # PINGREQ
    refused(frame(0xE0, b"\x00"), MQTT_311, MALFORMED_PACKET)  # 3.1.1 DISCONNECT
    refused(frame(0x40, PACKET_ID, b"\x00"), MQTT_311, MALFORMED_PACKET)  # 3.1.1 PUBACK
    refused(frame(0x40, PACKET_ID, b"\x00\x00\x00"), MQTT_5, MALFORMED_PACKET)
    refused(frame(0xE0, b"\x00\x00\x00"), MQTT_5, MALFORMED_PACKET)
    refused(frame(0x10, connect_body(MQTT_311), s("c"), b"\x00"), None, MALFORMED_PACKET)
    refused(frame(0xB0, PACKET_ID, b"\x00"), MQTT_311, MALFORMED_PACKET, from_server=True)
    refused(frame(0x20, b"\x00\x00\x00"), MQTT_311, MALFORMED_PACKET, from_server=True)
    # decode() takes exactly one packet
    refused(frame(0xC0) + frame(0xC0), MQTT_5, MALFORMED_PACKET)
    refused(frame(0x30, s("t"), b"x")[:-1], MQTT_311, MALFORMED_PACKET)


@pytest.mark.parametrize("version", [MQTT_311, MQTT_5])
def test_packet_ids_are_not_zero(version: int) -> None:
    properties = b"\x00" if version == MQTT_5 else b""
    zero = u16(0)
    refused(frame(0x32, s("t"), zero, properties), version, PROTOCOL_ERROR)
    for first in (0x40, 0x50, 0x62, 0x70):
        refused(frame(first, zero), version, PROTOCOL_ERROR)
    refused(frame(0x82, zero, properties, s("f"), b"\x00"), version, PROTOCOL_ERROR)
    refused(frame(0xA2, zero, properties, s("f")), version, PROTOCOL_ERROR)
    refused(frame(0x90, zero, properties, b"\x00"), version, PROTOCOL_ERROR, from_server=True)
    refused(frame(0xB0, zero, properties), version, PROTOCOL_ERROR, from_server=True)


@pytest.mark.parametrize("version", [MQTT_311, MQTT_5])
def test_subscribe_and_unsubscribe_name_a_topic(version: int) -> None:
    properties = b"\x00" if version == MQTT_5 else b""
    error = refused(frame(0x82, PACKET_ID, properties), version, PROTOCOL_ERROR)
    assert "SUBSCRIBE without" in str(error)
    error = refused(frame(0xA2, PACKET_ID, properties), version, PROTOCOL_ERROR)
    assert "UNSUBSCRIBE without" in str(error)


def test_subscription_options() -> None:
    def subscribe(version: int, options: int, topic_filter: str = "f") -> bytes:
        properties = b"\x00" if version == MQTT_5 else b""
        first = s("a") + b"\x01"
        return frame(0x82, PACKET_ID, properties, first, s(topic_filter), bytes([options]))

    for reserved in (0x40, 0x80):
        refused(subscribe(MQTT_5, reserved), MQTT_5, MALFORMED_PACKET)
    for reserved in (0x04, 0x08, 0x10, 0x20, 0x40, 0x80):
        refused(subscribe(MQTT_311, reserved), MQTT_311, MALFORMED_PACKET)
    refused(subscribe(MQTT_5, 0x03), MQTT_5, PROTOCOL_ERROR)  # QoS 3
    refused(subscribe(MQTT_311, 0x03), MQTT_311, PROTOCOL_ERROR)
    refused(subscribe(MQTT_5, 0x30), MQTT_5, PROTOCOL_ERROR)  # retain handling 3
    refused(subscribe(MQTT_5, 0x04, "$share/g/t"), MQTT_5, PROTOCOL_ERROR)  # no local, shared
    packet = decode(subscribe(MQTT_5, 0x2A, "$share/g/t"), MQTT_5)
    assert isinstance(packet, Subscribe)
    assert packet.subscriptions == [
        Subscription("a", 1),
        Subscription("$share/g/t", 2, no_local=False, retain_as_published=True, retain_handling=2),
    ]
    packet = decode(subscribe(MQTT_5, 0x15), MQTT_5)
    assert isinstance(packet, Subscribe)
    assert packet.subscriptions[1] == Subscription("f", 1, no_local=True, retain_handling=1)


def test_property_values_the_spec_forbids() -> None:
    def disconnect(*items: bytes) -> bytes:
        return frame(0xE0, b"\x00", props(*items))

    def connack(*items: bytes) -> bytes:
        return frame(0x20, b"\x00\x00", props(*items))

    def connect(*items: bytes) -> bytes:
        return frame(0x10, connect_body(properties=props(*items)), s("c"))

    for ident in (0x24, 0x25, 0x28, 0x29, 0x2A):  # 0 or 1 in CONNACK
        refused(connack(bytes([ident, 2])), MQTT_5, PROTOCOL_ERROR, from_server=True)
    for ident in (0x17, 0x19):  # 0 or 1 in CONNECT
        refused(connect(bytes([ident, 2])), None, PROTOCOL_ERROR)
    refused(frame(0x30, s("t"), props(b"\x01\x02")), MQTT_5, PROTOCOL_ERROR)
    refused(connect(b"\x21\x00\x00"), None, PROTOCOL_ERROR)  # receive maximum 0
    refused(connect(b"\x27\x00\x00\x00\x00"), None, PROTOCOL_ERROR)  # maximum packet size 0
    refused(frame(0x30, s("t"), props(b"\x23\x00\x00")), MQTT_5, PROTOCOL_ERROR)  # alias 0
    refused(frame(0x82, PACKET_ID, props(b"\x0b\x00"), s("f"), b"\x00"), MQTT_5, PROTOCOL_ERROR)
    refused(connect(PROPERTY_BYTES["authentication_data"]), None, PROTOCOL_ERROR)
    refused(frame(0xF0, b"\x18", props(PROPERTY_BYTES["authentication_data"])), 5, 0x82)
    refused(disconnect(b"\x05\x00"), MQTT_5, MALFORMED_PACKET)  # no property 0x05
    refused(disconnect(b"\x7f\x00"), MQTT_5, MALFORMED_PACKET)


@pytest.mark.parametrize("version", [MQTT_311, MQTT_5])
@pytest.mark.parametrize("topic", ["a/+/b", "#", "a/#", "+", "sport+", "a#b"])
def test_topic_names_have_no_wildcards(version: int, topic: str) -> None:
    properties = b"\x00" if version == MQTT_5 else b""
    refused(frame(0x30, s(topic), properties, b"x"), version, TOPIC_NAME_INVALID)
    will = properties + s(topic) + s(b"")
    refused(frame(0x10, connect_body(version, 0x06), s("c"), will), None, TOPIC_NAME_INVALID)
    if version == MQTT_5:
        response = props(b"\x08" + s(topic))
        refused(frame(0x30, s("t"), response), version, TOPIC_NAME_INVALID)


def test_an_empty_topic_name_needs_a_topic_alias() -> None:
    refused(frame(0x30, s(""), b"x"), MQTT_311, TOPIC_NAME_INVALID)
    refused(frame(0x30, s(""), b"\x00x"), MQTT_5, TOPIC_NAME_INVALID)
    packet = decode(frame(0x30, s(""), props(b"\x23\x00\x02"), b"x"), MQTT_5)
    assert packet == Publish("", b"x", properties=Properties(topic_alias=2))


@pytest.mark.parametrize("version", [MQTT_311, MQTT_5])
def test_connect_flags(version: int) -> None:
    def connect(flags: int, *payload: bytes) -> bytes:
        return frame(0x10, connect_body(version, flags), s("c"), *payload)

    will = (b"\x00" if version == MQTT_5 else b"") + s("t") + s(b"w")
    refused(connect(0x03), None, MALFORMED_PACKET)  # the reserved flag
    refused(connect(0x08), None, MALFORMED_PACKET)  # will QoS 1 without will
    refused(connect(0x10), None, MALFORMED_PACKET)  # will QoS 2 without will
    refused(connect(0x20), None, MALFORMED_PACKET)  # will retain without will
    refused(connect(0x1C, will), None, MALFORMED_PACKET)  # will QoS 3
    packet = decode(connect(0x34, will), None)
    assert isinstance(packet, Connect)
    assert packet.will == Will("t", b"w", 2, True)
    password_only = connect(0x40, s(b"pw"))
    if version == MQTT_311:
        refused(password_only, None, MALFORMED_PACKET)
    else:
        assert decode(password_only, None) == Connect(MQTT_5, "c", False, 30, password=b"pw")


@pytest.mark.parametrize(
    ("name", "level", "asked"),
    [("MQIsdp", 3, None), ("MQTT", 3, 3), ("MQTT", 6, 6), ("mqtt", 4, None), ("MQTT", 0, 0)],
)
def test_only_mqtt_311_and_5_connect(name: str, level: int, asked: int | None) -> None:
    data = frame(0x10, s(name), bytes([level, 0x02]), u16(30), s("c"))
    error = refused(data, None, UNSUPPORTED_PROTOCOL_VERSION, error=UnsupportedProtocolVersion)
    assert isinstance(error, UnsupportedProtocolVersion)
    assert error.protocol_version == asked


def test_each_side_sends_only_its_packets() -> None:
    for first, body in [
        (0x20, b"\x00\x00"),
        (0x90, PACKET_ID + b"\x00"),
        (0xB0, PACKET_ID),
        (0xD0, b""),
    ]:
        error = refused(frame(first, body), MQTT_311, PROTOCOL_ERROR)
        assert "a client must not send" in str(error)
        decode(frame(first, body), MQTT_311, from_server=True)
    for first, body in [
        (0x10, connect_body(MQTT_311) + s("c")),
        (0x82, PACKET_ID + s("f") + b"\x00"),
        (0xA2, PACKET_ID + s("f")),
        (0xC0, b""),
    ]:
        error = refused(frame(first, body), MQTT_311, PROTOCOL_ERROR, from_server=True)
        assert "a server must not send" in str(error)
        decode(frame(first, body), MQTT_311)
    # a subscription identifier tells a client which subscription a message matched
    with_id = frame(0x30, s("t"), props(b"\x0b\x01"))
    refused(with_id, MQTT_5, PROTOCOL_ERROR)
    assert decode(with_id, MQTT_5, from_server=True) == Publish(
        "t", b"", properties=Properties(subscription_identifiers=[1])
    )


def test_reason_codes_are_those_of_the_packet() -> None:
    refused(frame(0x40, PACKET_ID, b"\x01"), MQTT_5, PROTOCOL_ERROR)
    refused(frame(0x62, PACKET_ID, b"\x10"), MQTT_5, PROTOCOL_ERROR)
    refused(frame(0xE0, b"\x05"), MQTT_5, PROTOCOL_ERROR)
    refused(frame(0xE0, b"\x8c"), MQTT_5, PROTOCOL_ERROR)
    refused(frame(0xF0, b"\x01\x00"), MQTT_5, PROTOCOL_ERROR)
    refused(frame(0x20, b"\x00\x01\x00"), MQTT_5, PROTOCOL_ERROR, from_server=True)
    refused(frame(0x20, b"\x00\x06"), MQTT_311, PROTOCOL_ERROR, from_server=True)
    refused(frame(0x20, b"\x01\x05"), MQTT_311, PROTOCOL_ERROR, from_server=True)  # refused
    refused(frame(0x20, b"\x02\x00"), MQTT_311, MALFORMED_PACKET, from_server=True)
    refused(frame(0x90, PACKET_ID, b"\x00\x03"), MQTT_5, PROTOCOL_ERROR, from_server=True)
    refused(frame(0x90, PACKET_ID, b"\x87"), MQTT_311, PROTOCOL_ERROR, from_server=True)
    refused(frame(0xB0, PACKET_ID, b"\x00\x01"), MQTT_5, PROTOCOL_ERROR, from_server=True)


def test_a_servers_reader_wants_one_connect_first() -> None:
    connect = encode(Connect(MQTT_5, "c", True, 30), MQTT_5)
    with pytest.raises(PacketError) as info:
        PacketReader(1000).feed(encode(PingReq(), MQTT_5))
    assert info.value.reason_code == PROTOCOL_ERROR
    with pytest.raises(PacketError) as info:
        PacketReader(1000).feed(connect + connect)
    assert info.value.reason_code == PROTOCOL_ERROR
    reader = PacketReader(1000)
    assert reader.feed(connect) == [Connect(MQTT_5, "c", True, 30)]
    with pytest.raises(PacketError) as info:
        reader.feed(connect)
    assert info.value.reason_code == PROTOCOL_ERROR


@pytest.mark.parametrize("version", [MQTT_311, MQTT_5])
def test_a_refused_connect_still_tells_its_version(version: int) -> None:
    reader = PacketReader(1000)
    with pytest.raises(PacketError) as info:
        reader.feed(frame(0x10, connect_body(version, 0x03), s("c")))  # the reserved flag
    assert info.value.reason_code == MALFORMED_PACKET
    assert reader.version == version
    reader = PacketReader(1000)
    with pytest.raises(UnsupportedProtocolVersion):
        reader.feed(frame(0x10, connect_body(6), s("c")))
    assert reader.version is None


def test_the_reader_refuses_a_packet_over_the_limit_from_its_fixed_header() -> None:
    connect = encode(Connect(MQTT_311, "c", True, 30), MQTT_311)
    limit = 100
    at_limit = encode(Publish("t", bytes(limit - 5)), MQTT_311)  # 2 + 3 + 95
    assert len(at_limit) == limit
    reader = PacketReader(limit)
    assert reader.feed(connect + at_limit) == [
        Connect(MQTT_311, "c", True, 30),
        Publish("t", bytes(95)),
    ]
    over = encode(Publish("t", bytes(limit - 4)), MQTT_311)
    for size in (2, 3, len(over)):  # the fixed header of this one is 2 bytes
        with pytest.raises(PacketError) as info:
            PacketReader(limit).feed(connect + over[:size])
        assert info.value.reason_code == PACKET_TOO_LARGE
    huge = b"\x30\xff\xff\xff\x7f"  # 256 MB announced, refused on its last header byte
    reader = PacketReader(limit)
    reader.feed(connect)
    assert [reader.feed(bytes([byte])) for byte in huge[:4]] == [[], [], [], []]
    with pytest.raises(PacketError) as info:
        reader.feed(huge[4:])
    assert info.value.reason_code == PACKET_TOO_LARGE
    # an incomplete fixed header as long as the limit cannot start a packet under it
    reader = PacketReader(3)
    assert reader.feed(b"\x30\xff") == []
    with pytest.raises(PacketError) as info:
        reader.feed(b"\xff")
    assert info.value.reason_code == PACKET_TOO_LARGE


# -- 5b. Fuzz -----------------------------------------------------------------------------------


@NO_DEADLINE
@given(st.binary(max_size=64), VERSIONS, st.booleans())
def test_random_bytes_raise_nothing_but_packet_error(
    data: bytes, version: int, from_server: bool
) -> None:
    with contextlib.suppress(PacketError):
        decode(data, version, from_server=from_server)


@NO_DEADLINE
@given(st.data(), VERSIONS, st.booleans())
def test_damaged_packets_raise_nothing_but_packet_error(
    data: st.DataObject, version: int, from_server: bool
) -> None:
    packets = server_packets(version) if from_server else client_packets(version)
    blob = bytearray(encode(data.draw(packets), version))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(blob) - 1))
        blob[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    with contextlib.suppress(PacketError):
        damaged = bytes(blob[:cut]) if data.draw(st.booleans()) else bytes(blob)
        decode(damaged, version, from_server=from_server)


@NO_DEADLINE
@given(st.data(), st.integers(2, 200))
def test_the_reader_holds_less_than_its_limit(data: st.DataObject, limit: int) -> None:
    reader = PacketReader(limit)
    connect = encode(Connect(MQTT_5, "c", True, 30), MQTT_5)
    chunks = [connect] if data.draw(st.booleans()) else []
    chunks += data.draw(st.lists(st.binary(max_size=300), max_size=8))
    try:
        for chunk in chunks:
            reader.feed(chunk)
            assert reader.buffered < limit
    except PacketError:
        pass


# -- 2 and 3. Against paho-mqtt over loopback TCP -----------------------------------------------

#: Text paho-mqtt decodes: it also refuses U+FEFF, which MQTT only advises against.
PAHO_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00\ufeff"), max_size=12)
PAHO_TOPIC = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00\ufeff+#"), min_size=1, max_size=12
)
SOCKET_TESTS = settings(max_examples=30, deadline=None)


def _camel(name: str) -> str:
    """paho's name of a property: ``maximum_qos`` is ``MaximumQoS``."""
    special = {
        "user_properties": "UserProperty",
        "subscription_identifiers": "SubscriptionIdentifier",
        "maximum_qos": "MaximumQoS",
    }
    return special.get(name) or "".join(word.title() for word in name.split("_"))


def to_paho(properties: Properties, packet_type: int) -> PahoProperties:
    out = PahoProperties(packet_type)  # type: ignore[no-untyped-call]
    for f in dataclasses.fields(Properties):
        value = getattr(properties, f.name)
        if value not in (None, []):
            setattr(out, _camel(f.name), value)
    return out


def from_paho(properties: PahoProperties | None) -> Properties:
    out = Properties()
    for f in dataclasses.fields(Properties):
        if properties is not None and hasattr(properties, _camel(f.name)):
            value = getattr(properties, _camel(f.name))
            if f.name == "user_properties":
                value = [tuple(pair) for pair in value]
            setattr(out, f.name, value)
    return out


def _paho_reads(properties: Properties) -> bool:
    """Whether paho-mqtt reads these properties (it refuses U+FEFF in strings)."""
    texts = [v for v in dataclasses.astuple(properties) if isinstance(v, str)]
    texts += [key + value for key, value in properties.user_properties]
    return not any("\ufeff" in text for text in texts)


def _paho_limits(properties: Properties) -> Properties:
    """``properties`` within paho-mqtt's limits: it caps the Maximum Packet Size to the largest
    possible packet, where MQTT allows any four-byte integer; and it takes the server's keep-alive
    as its own, which must be too long to ping during the test."""
    size, keep_alive = properties.maximum_packet_size, properties.server_keep_alive
    return dataclasses.replace(
        properties,
        maximum_packet_size=None if size is None else min(size, 268_435_455),
        server_keep_alive=None if keep_alive is None else max(keep_alive, 60),
    )


class PahoLink:
    """A paho-mqtt client connected over loopback TCP to a server end read with our
    :class:`PacketReader`; both are driven from the test's thread (paho's ``loop``)."""

    def __init__(self, version: int, client_id: str = "paho", *, clean: bool = True) -> None:
        self.version = version
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5 if version == MQTT_5 else paho.MQTTv311,
            clean_session=None if version == MQTT_5 else clean,
        )
        self.reader = PacketReader(1 << 20)
        self.conn: socket.socket | None = None
        self.received: list[Packet] = []
        self.events: list[tuple[Any, ...]] = []
        self.log: list[str] = []
        client = self.client
        client.on_connect = lambda _c, _u, flags, code, props: self.events.append(
            ("connect", flags.session_present, code.value, props)
        )
        client.on_message = lambda _c, _u, message: self.events.append(("message", message))
        client.on_subscribe = lambda _c, _u, mid, codes, props: self.events.append(
            ("subscribe", mid, [code.value for code in codes], props)
        )
        client.on_unsubscribe = lambda _c, _u, mid, codes, props: self.events.append(
            ("unsubscribe", mid, [code.value for code in codes], props)
        )
        client.on_disconnect = lambda _c, _u, _flags, code, props: self.events.append(
            ("disconnect", code.value, props)
        )
        client.on_log = lambda _c, _u, _level, text: self.log.append(text)

    def connect(self, **options: Any) -> Connect:
        """paho's CONNECT, decoded."""
        self.client.connect("127.0.0.1", self.listener.getsockname()[1], **options)
        self.conn, _ = self.listener.accept()
        self.conn.setblocking(False)
        [packet] = self.receive(1)
        assert isinstance(packet, Connect)
        return packet

    def accept(self, connack: ConnAck | None = None) -> tuple[Any, ...]:
        """Our CONNACK sent, and paho's on_connect arguments."""
        self.send(connack or ConnAck())
        return self.event("connect")

    def send(self, packet: Packet) -> None:
        assert self.conn is not None
        self.conn.sendall(encode(packet, self.version))

    def pump(self, done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 5
        while not done():
            assert time.monotonic() < deadline, "paho and the server end did not get there"
            self.client.loop(0.002)
            assert self.conn is not None
            try:
                data = self.conn.recv(65536)
            except BlockingIOError:
                continue
            self.received += self.reader.feed(data)

    def receive(self, count: int) -> list[Packet]:
        """The next ``count`` packets paho sends."""
        self.pump(lambda: len(self.received) >= count)
        packets, self.received = self.received[:count], self.received[count:]
        return packets

    def event(self, name: str) -> tuple[Any, ...]:
        """The next paho callback, which must be ``name``."""
        self.pump(lambda: bool(self.events))
        event = self.events.pop(0)
        assert event[0] == name, event
        return event[1:]

    def __enter__(self) -> PahoLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.loop_stop()
        self.client._sock_close()  # the socket, if a test ends before paho closes it
        self.client._reset_sockets()
        if self.conn is not None:
            self.conn.close()
        self.listener.close()


@st.composite
def paho_connects(draw: st.DrawFn, version: int) -> Connect:
    """A CONNECT paho can be asked to send."""
    packet = draw(connects(version))
    packet.client_id = draw(PAHO_TEXT.filter(bool))
    packet.keep_alive = draw(st.integers(10, 0xFFFF))  # no PINGREQ of its own during the test
    if packet.username is None:
        packet.password = None  # paho sends a password only after a username
    packet.properties = _paho_limits(packet.properties)
    return packet


@SOCKET_TESTS
@given(st.data(), VERSIONS)
def test_paho_connect_decodes_as_sent(
    data: st.DataObject, version: int
) -> None:
    want = data.draw(paho_connects(version))
    with PahoLink(version, want.client_id, clean=want.clean_start) as link:
        if want.username is not None:
            # paho's hint says str; it sends bytes as they are
            link.client.username_pw_set(want.username, cast(Any, want.password))
        if want.will is not None:
            will = want.will
            will_properties = to_paho(will.properties, PacketTypes.WILLMESSAGE)
            link.client.will_set(
                will.topic, will.payload, will.qos, will.retain, will_properties or None
            )
        options: dict[str, Any] = {"keepalive": want.keep_alive}
        if version == MQTT_5:
            options["clean_start"] = want.clean_start
            options["properties"] = to_paho(want.properties, PacketTypes.CONNECT)
        assert link.connect(**options) == expected(want, version)


@st.composite
def paho_subscriptions(draw: st.DrawFn) -> Subscription:
    subscription = draw(subscriptions())
    subscription.topic_filter = draw(PAHO_TOPIC)  # paho checks filters; any name is one
    return subscription


@SOCKET_TESTS
@given(
    st.data(),
    VERSIONS,
    st.lists(paho_subscriptions(), min_size=1, max_size=4),
    st.lists(PAHO_TOPIC, min_size=1, max_size=4),
)
def test_paho_session_packets_decode_as_sent(
    data: st.DataObject,
    version: int,
    subscribe_to: list[Subscription],
    unsubscribe_from: list[str],
) -> None:
    with PahoLink(version) as link:
        link.connect()
        link.accept()
        v5 = version == MQTT_5

        for qos in (0, 1, 2):
            sent = data.draw(publishes(from_server=False))
            sent.topic = data.draw(PAHO_TOPIC)
            sent.properties.topic_alias = None
            info = link.client.publish(
                sent.topic,
                sent.payload,
                qos,
                sent.retain,
                to_paho(sent.properties, PacketTypes.PUBLISH) if v5 else None,
            )
            packet_id = info.mid if qos else None
            want = dataclasses.replace(sent, qos=qos, dup=False, packet_id=packet_id)
            assert link.receive(1) == [expected(want, version)]
            if qos == 1:
                link.send(PubAck(info.mid))
            elif qos == 2:
                link.send(PubRec(info.mid))
                assert link.receive(1) == [PubRel(info.mid)]
                link.send(PubComp(info.mid))
            link.pump(info.is_published)

        subscribe_properties = data.draw(properties("SUBSCRIBE", one_subscription_identifier=True))
        if v5:
            _, mid = link.client.subscribe(
                [
                    (
                        s.topic_filter,
                        SubscribeOptions(
                            s.qos, s.no_local, s.retain_as_published, s.retain_handling
                        ),
                    )
                    for s in subscribe_to
                ],
                properties=to_paho(subscribe_properties, PacketTypes.SUBSCRIBE),
            )
        else:
            _, mid = link.client.subscribe([(s.topic_filter, s.qos) for s in subscribe_to])
        assert mid is not None
        want_subscribe = Subscribe(mid, subscribe_to, subscribe_properties)
        assert link.receive(1) == [expected(want_subscribe, version)]

        unsubscribe_properties = data.draw(properties("UNSUBSCRIBE"))
        _, mid = link.client.unsubscribe(
            unsubscribe_from,
            to_paho(unsubscribe_properties, PacketTypes.UNSUBSCRIBE) if v5 else None,
        )
        assert mid is not None
        want_unsubscribe = Unsubscribe(mid, unsubscribe_from, unsubscribe_properties)
        assert link.receive(1) == [expected(want_unsubscribe, version)]

        link.client._send_pingreq()  # what paho sends when the keep-alive runs out
        assert link.receive(1) == [PingReq()]

        # PUBACK, PUBREC and PUBCOMP answering the server's QoS 1 and 2 messages
        link.send(Publish("t/1", b"one", 1, packet_id=11))
        assert link.receive(1) == [PubAck(11)]
        link.send(Publish("t/2", b"two", 2, packet_id=12))
        assert link.receive(1) == [PubRec(12)]
        link.send(PubRel(12))
        assert link.receive(1) == [PubComp(12)]

        goodbye = data.draw(
            st.builds(
                Disconnect,
                st.sampled_from([0x00, 0x04, 0x80, 0x83, 0x87, 0x90, 0x93, 0x95, 0x99]),
                properties("DISCONNECT").map(
                    lambda p: dataclasses.replace(p, server_reference=None)  # the server's
                ),
            )
        )
        link.client.disconnect(
            ReasonCode(PacketTypes.DISCONNECT, identifier=goodbye.reason_code) if v5 else None,
            to_paho(goodbye.properties, PacketTypes.DISCONNECT) if v5 else None,
        )
        assert link.receive(1) == [expected(goodbye, version)]


def _paho_message(message: paho.MQTTMessage, version: int) -> Publish:
    return Publish(
        message.topic,
        bytes(message.payload),
        message.qos,
        message.retain,
        message.dup,
        message.mid if message.qos else None,
        from_paho(message.properties) if version == MQTT_5 else Properties(),
    )


PAHO_CONNACK_PROPERTIES = properties("CONNACK").filter(_paho_reads).map(_paho_limits)


@SOCKET_TESTS
@given(
    st.data(),
    VERSIONS,
    st.booleans(),
    PAHO_CONNACK_PROPERTIES,
    st.lists(reason("SUBACK"), min_size=1, max_size=4),
    st.lists(reason("UNSUBACK"), min_size=1, max_size=4),
)
def test_paho_decodes_what_we_send(
    data: st.DataObject,
    version: int,
    session_present: bool,
    connack_properties: Properties,
    suback_codes: list[int],
    unsuback_codes: list[int],
) -> None:
    with PahoLink(version) as link:
        link.connect()
        v5 = version == MQTT_5
        draw = data.draw
        connack = ConnAck(session_present, 0, connack_properties)
        present, code, got_properties = link.accept(connack)
        assert (present, code) == (session_present, 0)
        if v5:
            assert from_paho(got_properties) == connack_properties

        for qos in (0, 1, 2):
            sent = draw(publishes())
            sent = dataclasses.replace(
                sent,
                topic=draw(PAHO_TOPIC),
                qos=qos,
                dup=sent.dup and qos > 0,
                packet_id=draw(PACKET_IDS) if qos else None,
                properties=dataclasses.replace(sent.properties, topic_alias=None),
            )
            assume(_paho_reads(sent.properties))
            link.send(sent)
            if qos == 2:
                assert link.receive(1) == [PubRec(sent.packet_id or 0)]
                link.send(PubRel(sent.packet_id or 0))
            (message,) = link.event("message")
            assert _paho_message(message, version) == expected(sent, version)
            if qos == 1:
                assert link.receive(1) == [PubAck(sent.packet_id or 0)]
            elif qos == 2:
                assert link.receive(1) == [PubComp(sent.packet_id or 0)]

        suback_properties = draw(properties("SUBACK").filter(_paho_reads))
        _, mid = link.client.subscribe([(f"t/{n}", 1) for n in range(len(suback_codes))])
        [subscribe] = link.receive(1)
        assert isinstance(subscribe, Subscribe)
        suback = SubAck(subscribe.packet_id, suback_codes, suback_properties)
        link.send(suback)
        got_mid, got_codes, got_properties = link.event("subscribe")
        want_suback = expected(suback, version)
        assert isinstance(want_suback, SubAck)
        assert (got_mid, got_codes) == (mid, want_suback.reason_codes)
        if v5:
            assert from_paho(got_properties) == suback_properties

        unsuback_properties = draw(properties("UNSUBACK").filter(_paho_reads))
        topics = [f"t/{n}" for n in range(len(unsuback_codes))]
        _, mid = link.client.unsubscribe(topics)
        [unsubscribe] = link.receive(1)
        assert isinstance(unsubscribe, Unsubscribe)
        link.send(UnsubAck(unsubscribe.packet_id, unsuback_codes, unsuback_properties))
        got_mid, got_codes, got_properties = link.event("unsubscribe")
        assert got_mid == mid
        if v5:
            assert got_codes == unsuback_codes
            assert from_paho(got_properties) == unsuback_properties

        link.send(PingResp())
        link.pump(lambda: "Received PINGRESP" in link.log)

        goodbye = Disconnect(
            draw(st.sampled_from([0x00, 0x80, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x93, 0x98, 0x9C])),
            Properties(reason_string=draw(PAHO_TEXT), user_properties=[("by", "server")]),
        )
        link.send(goodbye)
        code, got_properties = link.event("disconnect")
        if v5:
            assert code == goodbye.reason_code
            assert from_paho(got_properties) == goodbye.properties
