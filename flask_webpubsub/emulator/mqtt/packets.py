"""MQTT control packets (OASIS MQTT 3.1.1 and 5.0) as typed values, and bytes to and from them.

A sans-IO codec: :func:`encode` gives a packet's bytes in protocol level 4 (3.1.1) or 5 (5.0),
:func:`decode` reads one complete packet, and :class:`PacketReader` splits a byte stream into
packets, since MQTT over WebSocket does not align packets with WebSocket messages.

One set of dataclasses serves both versions. A 3.1.1 packet decodes with the defaults for what
3.1.1 has no room for (no properties, reason code 0, default subscription options), and
encoding in 3.1.1 drops those fields again: SUBACK failure codes become 0x80, the only failure
3.1.1 knows, and a CONNACK's ``reason_code`` is the 3.1.1 return code (0 to 5).

Decoding checks what both specifications require of a packet on its own, and raises
:class:`PacketError` with the MQTT 5 reason code a server closes the connection with:

- *Malformed Packet* (0x81): data that cannot be parsed: a reserved packet type or fixed-header
  flag, QoS 3 or DUP on QoS 0 in PUBLISH, a remaining length or variable byte integer longer than
  4 bytes or not in its shortest form, lengths past the end of the packet, bytes after its end,
  ill-formed UTF-8 or U+0000 in a string, CONNECT's reserved flag or inconsistent will flags,
  a property identifier unknown or not allowed in the packet (MQTT 5.0 section 2.2.2.2), reserved
  bits in subscription options.
- *Protocol Error* (0x82): data that parses but breaks a rule: a packet id of 0, SUBSCRIBE or
  UNSUBSCRIBE without a topic, a property given twice (other than user properties and a PUBLISH's
  subscription identifiers) or with a value the specification forbids, authentication data
  without a method, a reason code the packet type does not define, a packet the sender's side
  must not send (a client's CONNACK, SUBACK, UNSUBACK or PINGRESP, a server's CONNECT, SUBSCRIBE,
  UNSUBSCRIBE or PINGREQ, a client's PUBLISH with a subscription identifier), and on a server's
  reader a first packet other than CONNECT or a second CONNECT.
- *Topic Name invalid* (0x90): ``+`` or ``#`` in a PUBLISH topic, a will topic or a response
  topic, or an empty topic name without a topic alias.
- *Packet too large* (0x95): a packet longer (fixed header included, as MQTT 5's Maximum Packet
  Size counts) than the reader's ``max_packet_size``.
- *Unsupported Protocol Version* (0x84): a CONNECT for anything but MQTT 3.1.1 or 5.0
  (:class:`UnsupportedProtocolVersion`).

Rules that need a session (topic aliases in range, filters the server supports, client ids,
keep-alive limits) are the session's job. :func:`encode` trusts its input beyond what the bytes
need: it raises :class:`ValueError` for a value that cannot be written (a string over 65535
bytes or holding U+0000, a QoS 1/2 PUBLISH without packet id, a property the packet type has no
place for, a packet over 256 MB, AUTH or a password without username in 3.1.1).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TypeAlias

MQTT_311 = 4
MQTT_5 = 5

# MQTT 5 reason codes (MQTT 5.0 section 2.4), by name.
SUCCESS = 0x00
GRANTED_QOS_1 = 0x01
GRANTED_QOS_2 = 0x02
DISCONNECT_WITH_WILL_MESSAGE = 0x04
NO_MATCHING_SUBSCRIBERS = 0x10
NO_SUBSCRIPTION_EXISTED = 0x11
CONTINUE_AUTHENTICATION = 0x18
RE_AUTHENTICATE = 0x19
UNSPECIFIED_ERROR = 0x80
MALFORMED_PACKET = 0x81
PROTOCOL_ERROR = 0x82
IMPLEMENTATION_SPECIFIC_ERROR = 0x83
UNSUPPORTED_PROTOCOL_VERSION = 0x84
CLIENT_IDENTIFIER_NOT_VALID = 0x85
BAD_USER_NAME_OR_PASSWORD = 0x86
NOT_AUTHORIZED = 0x87
SERVER_UNAVAILABLE = 0x88
SERVER_BUSY = 0x89
BANNED = 0x8A
SERVER_SHUTTING_DOWN = 0x8B
BAD_AUTHENTICATION_METHOD = 0x8C
KEEP_ALIVE_TIMEOUT = 0x8D
SESSION_TAKEN_OVER = 0x8E
TOPIC_FILTER_INVALID = 0x8F
TOPIC_NAME_INVALID = 0x90
PACKET_IDENTIFIER_IN_USE = 0x91
PACKET_IDENTIFIER_NOT_FOUND = 0x92
RECEIVE_MAXIMUM_EXCEEDED = 0x93
TOPIC_ALIAS_INVALID = 0x94
PACKET_TOO_LARGE = 0x95
MESSAGE_RATE_TOO_HIGH = 0x96
QUOTA_EXCEEDED = 0x97
ADMINISTRATIVE_ACTION = 0x98
PAYLOAD_FORMAT_INVALID = 0x99
RETAIN_NOT_SUPPORTED = 0x9A
QOS_NOT_SUPPORTED = 0x9B
USE_ANOTHER_SERVER = 0x9C
SERVER_MOVED = 0x9D
SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
CONNECTION_RATE_EXCEEDED = 0x9F
MAXIMUM_CONNECT_TIME = 0xA0
SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1
WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2

# MQTT 3.1.1 CONNACK return codes (MQTT 3.1.1 section 3.2.2.3).
CONNACK_ACCEPTED = 0
CONNACK_UNACCEPTABLE_PROTOCOL_VERSION = 1
CONNACK_IDENTIFIER_REJECTED = 2
CONNACK_SERVER_UNAVAILABLE = 3
CONNACK_BAD_USER_NAME_OR_PASSWORD = 4
CONNACK_NOT_AUTHORIZED = 5
#: The one SUBACK failure code of MQTT 3.1.1.
SUBACK_FAILURE = 0x80

#: The largest remaining length a fixed header can hold (four bytes of 7 bits).
MAX_REMAINING_LENGTH = 268_435_455

# Control packet types (the high nibble of the first byte).
CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
PUBREC = 5
PUBREL = 6
PUBCOMP = 7
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14
AUTH = 15


class PacketError(ValueError):
    """A packet the protocol does not allow; ``reason_code`` is the MQTT 5 reason code a server
    closes the connection with (DISCONNECT, or CONNACK for a bad CONNECT)."""

    def __init__(self, message: str, reason_code: int = MALFORMED_PACKET) -> None:
        super().__init__(message)
        self.reason_code = reason_code


class UnsupportedProtocolVersion(PacketError):
    """A CONNECT for a protocol other than MQTT 3.1.1 (level 4) or 5.0 (level 5).

    ``protocol_version`` is the level the client asked for, or None if the protocol name was
    not "MQTT" (MQTT 3.1 says "MQIsdp"). A 3.1.1 server answers with CONNACK return code 1, a
    5.0 server with reason code 0x84; either then closes the connection.
    """

    def __init__(self, message: str, protocol_version: int | None) -> None:
        super().__init__(message, UNSUPPORTED_PROTOCOL_VERSION)
        self.protocol_version = protocol_version


@dataclass(slots=True)
class Properties:
    """MQTT 5 properties (MQTT 5.0 section 2.2.2.2); all absent by default.

    Each packet type allows some of them (:data:`ALLOWED_PROPERTIES`). User properties keep
    their order and may repeat names; a PUBLISH from the server may carry several subscription
    identifiers, every other packet at most one of each property.
    """

    payload_format_indicator: int | None = None
    message_expiry_interval: int | None = None
    content_type: str | None = None
    response_topic: str | None = None
    correlation_data: bytes | None = None
    subscription_identifiers: list[int] = field(default_factory=list)
    session_expiry_interval: int | None = None
    assigned_client_identifier: str | None = None
    server_keep_alive: int | None = None
    authentication_method: str | None = None
    authentication_data: bytes | None = None
    request_problem_information: int | None = None
    will_delay_interval: int | None = None
    request_response_information: int | None = None
    response_information: str | None = None
    server_reference: str | None = None
    reason_string: str | None = None
    receive_maximum: int | None = None
    topic_alias_maximum: int | None = None
    topic_alias: int | None = None
    maximum_qos: int | None = None
    retain_available: int | None = None
    user_properties: list[tuple[str, str]] = field(default_factory=list)
    maximum_packet_size: int | None = None
    wildcard_subscription_available: int | None = None
    subscription_identifier_available: int | None = None
    shared_subscription_available: int | None = None


@dataclass(slots=True)
class Will:
    """The will message of a CONNECT, published when the connection ends without DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: Properties = field(default_factory=Properties)


@dataclass(slots=True)
class Connect:
    """CONNECT; ``clean_start`` is 3.1.1's Clean Session flag."""

    protocol_version: int
    client_id: str
    clean_start: bool
    keep_alive: int
    username: str | None = None
    #: Never shown in a repr: it may be a secret.
    password: bytes | None = field(default=None, repr=False)
    will: Will | None = None
    properties: Properties = field(default_factory=Properties)


@dataclass(slots=True)
class ConnAck:
    """CONNACK; in 3.1.1 ``reason_code`` is the return code (0 to 5)."""

    session_present: bool = False
    reason_code: int = 0
    properties: Properties = field(default_factory=Properties)


@dataclass(slots=True)
class Publish:
    """PUBLISH; ``packet_id`` is set exactly when ``qos`` is 1 or 2."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None
    properties: Properties = field(default_factory=Properties)


@dataclass(slots=True)
class PubAck:
    """PUBACK, the answer to a QoS 1 PUBLISH."""

    packet_id: int
    reason_code: int = 0
    properties: Properties = field(default_factory=Properties)


@dataclass(slots=True)
class PubRec:
    """PUBREC, the first answer to a QoS 2 PUBLISH."""

    packet_id: int
    reason_code: int = 0
    properties: Properties = field(default_factory=Properties)


@dataclass(slots=True)
class PubRel:
    """PUBREL, the publisher's answer to PUBREC."""

    packet_id: int
    reason_code: int = 0
    properties: Properties = field(default_factory=Properties)


@dataclass(slots=True)
class PubComp:
    """PUBCOMP, the last packet of a QoS 2 exchange."""

    packet_id: int
    reason_code: int = 0
    properties: Properties = field(default_factory=Properties)


@dataclass(slots=True)
class Subscription:
    """One topic filter of a SUBSCRIBE with its options (all but ``qos`` are MQTT 5 only)."""

    topic_filter: str
    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0


@dataclass(slots=True)
class Subscribe:
    """SUBSCRIBE, with at least one subscription."""

    packet_id: int
    subscriptions: list[Subscription]
    properties: Properties = field(default_factory=Properties)


@dataclass(slots=True)
class SubAck:
    """SUBACK, one reason code per subscription of the SUBSCRIBE it answers."""

    packet_id: int
    reason_codes: list[int]
    properties: Properties = field(default_factory=Properties)


@dataclass(slots=True)
class Unsubscribe:
    """UNSUBSCRIBE, with at least one topic filter."""

    packet_id: int
    topic_filters: list[str]
    properties: Properties = field(default_factory=Properties)


@dataclass(slots=True)
class UnsubAck:
    """UNSUBACK; the reason codes (one per topic filter) are MQTT 5 only."""

    packet_id: int
    reason_codes: list[int] = field(default_factory=list)
    properties: Properties = field(default_factory=Properties)


@dataclass(slots=True)
class PingReq:
    """PINGREQ."""


@dataclass(slots=True)
class PingResp:
    """PINGRESP."""


@dataclass(slots=True)
class Disconnect:
    """DISCONNECT; the reason code and properties are MQTT 5 only."""

    reason_code: int = 0
    properties: Properties = field(default_factory=Properties)


@dataclass(slots=True)
class Auth:
    """AUTH (MQTT 5 only), a step of enhanced authentication."""

    reason_code: int = 0
    properties: Properties = field(default_factory=Properties)


Packet: TypeAlias = (
    Connect
    | ConnAck
    | Publish
    | PubAck
    | PubRec
    | PubRel
    | PubComp
    | Subscribe
    | SubAck
    | Unsubscribe
    | UnsubAck
    | PingReq
    | PingResp
    | Disconnect
    | Auth
)

# Property data types (MQTT 5.0 section 2.2.2.2).
_BYTE, _TWO, _FOUR, _VARIABLE, _STRING, _BINARY, _PAIR = range(7)

#: Property identifier -> (field of :class:`Properties`, data type).
_PROPERTY_TYPES: dict[int, tuple[str, int]] = {
    0x01: ("payload_format_indicator", _BYTE),
    0x02: ("message_expiry_interval", _FOUR),
    0x03: ("content_type", _STRING),
    0x08: ("response_topic", _STRING),
    0x09: ("correlation_data", _BINARY),
    0x0B: ("subscription_identifiers", _VARIABLE),
    0x11: ("session_expiry_interval", _FOUR),
    0x12: ("assigned_client_identifier", _STRING),
    0x13: ("server_keep_alive", _TWO),
    0x15: ("authentication_method", _STRING),
    0x16: ("authentication_data", _BINARY),
    0x17: ("request_problem_information", _BYTE),
    0x18: ("will_delay_interval", _FOUR),
    0x19: ("request_response_information", _BYTE),
    0x1A: ("response_information", _STRING),
    0x1C: ("server_reference", _STRING),
    0x1F: ("reason_string", _STRING),
    0x21: ("receive_maximum", _TWO),
    0x22: ("topic_alias_maximum", _TWO),
    0x23: ("topic_alias", _TWO),
    0x24: ("maximum_qos", _BYTE),
    0x25: ("retain_available", _BYTE),
    0x26: ("user_properties", _PAIR),
    0x27: ("maximum_packet_size", _FOUR),
    0x28: ("wildcard_subscription_available", _BYTE),
    0x29: ("subscription_identifier_available", _BYTE),
    0x2A: ("shared_subscription_available", _BYTE),
}

#: The key of a CONNECT's will properties in :data:`ALLOWED_PROPERTIES` (0 is no packet type).
WILL_PROPERTIES = 0
_ACK_PROPERTIES = frozenset({"reason_string", "user_properties"})
#: The properties each packet type (and a CONNECT's will) may carry (MQTT 5.0 Table 2-4).
ALLOWED_PROPERTIES: dict[int, frozenset[str]] = {
    CONNECT: frozenset(
        {
            "session_expiry_interval",
            "authentication_method",
            "authentication_data",
            "request_problem_information",
            "request_response_information",
            "receive_maximum",
            "topic_alias_maximum",
            "user_properties",
            "maximum_packet_size",
        }
    ),
    WILL_PROPERTIES: frozenset(
        {
            "payload_format_indicator",
            "message_expiry_interval",
            "content_type",
            "response_topic",
            "correlation_data",
            "will_delay_interval",
            "user_properties",
        }
    ),
    CONNACK: frozenset(
        {
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
        }
    ),
    PUBLISH: frozenset(
        {
            "payload_format_indicator",
            "message_expiry_interval",
            "content_type",
            "response_topic",
            "correlation_data",
            "subscription_identifiers",
            "topic_alias",
            "user_properties",
        }
    ),
    PUBACK: _ACK_PROPERTIES,
    PUBREC: _ACK_PROPERTIES,
    PUBREL: _ACK_PROPERTIES,
    PUBCOMP: _ACK_PROPERTIES,
    SUBSCRIBE: frozenset({"subscription_identifiers", "user_properties"}),
    SUBACK: _ACK_PROPERTIES,
    UNSUBSCRIBE: frozenset({"user_properties"}),
    UNSUBACK: _ACK_PROPERTIES,
    DISCONNECT: frozenset(
        {"session_expiry_interval", "server_reference", "reason_string", "user_properties"}
    ),
    AUTH: frozenset(
        {"authentication_method", "authentication_data", "reason_string", "user_properties"}
    ),
}
# Properties whose value is 0 or 1 (MQTT 5.0 section 3.1.2.11 and 3.2.2.3).
_FLAG_PROPERTIES = frozenset(
    {
        "payload_format_indicator",
        "request_problem_information",
        "request_response_information",
        "maximum_qos",
        "retain_available",
        "wildcard_subscription_available",
        "subscription_identifier_available",
        "shared_subscription_available",
    }
)
# Properties for which 0 is a Protocol Error.
_NONZERO_PROPERTIES = frozenset({"receive_maximum", "maximum_packet_size", "topic_alias"})

#: The reason codes each MQTT 5 packet type may carry (MQTT 5.0 chapter 3).
REASON_CODES: dict[int, frozenset[int]] = {
    CONNACK: frozenset(
        {0x00, *range(0x80, 0x8B), 0x8C, 0x90, 0x95, 0x97, *range(0x99, 0x9E), 0x9F}
    ),
    PUBACK: frozenset({0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99}),
    PUBREC: frozenset({0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99}),
    PUBREL: frozenset({0x00, 0x92}),
    PUBCOMP: frozenset({0x00, 0x92}),
    SUBACK: frozenset({0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2}),
    UNSUBACK: frozenset({0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91}),
    DISCONNECT: frozenset(
        {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90}
        | set(range(0x93, 0xA3))
    ),
    AUTH: frozenset({0x00, 0x18, 0x19}),
}
_SUBACK_311_CODES = frozenset({0x00, 0x01, 0x02, SUBACK_FAILURE})

# Packets only a server sends, and packets only a client sends.
_SERVER_ONLY = frozenset({CONNACK, SUBACK, UNSUBACK, PINGRESP})
_CLIENT_ONLY = frozenset({CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ})
_NAMES = {
    WILL_PROPERTIES: "will",
    CONNECT: "CONNECT",
    CONNACK: "CONNACK",
    PUBLISH: "PUBLISH",
    PUBACK: "PUBACK",
    PUBREC: "PUBREC",
    PUBREL: "PUBREL",
    PUBCOMP: "PUBCOMP",
    SUBSCRIBE: "SUBSCRIBE",
    SUBACK: "SUBACK",
    UNSUBSCRIBE: "UNSUBSCRIBE",
    UNSUBACK: "UNSUBACK",
    PINGREQ: "PINGREQ",
    PINGRESP: "PINGRESP",
    DISCONNECT: "DISCONNECT",
    AUTH: "AUTH",
}

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_EMPTY_PROPERTIES = b"\x00"


# ---------------------------------------------------------------------------------------------
# Encoding


def _variable(value: int) -> bytes:
    """A variable byte integer (MQTT 5.0 section 1.5.5), shortest form."""
    if not 0 <= value <= MAX_REMAINING_LENGTH:
        raise ValueError(f"{value} does not fit a variable byte integer")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while True:
        value, digit = divmod(value, 0x80)
        if value:
            out.append(digit | 0x80)
        else:
            out.append(digit)
            return bytes(out)


def _string(text: str) -> bytes:
    data = text.encode()  # a lone surrogate raises UnicodeEncodeError, a ValueError
    if len(data) > 0xFFFF:
        raise ValueError(f"a string of {len(data)} bytes does not fit MQTT's 2-byte length")
    if "\x00" in text:
        raise ValueError("MQTT strings must not contain U+0000")
    return _U16.pack(len(data)) + data


def _binary(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ValueError(f"binary data of {len(data)} bytes does not fit MQTT's 2-byte length")
    return _U16.pack(len(data)) + data


def _packet_id(packet_id: int) -> bytes:
    if not 1 <= packet_id <= 0xFFFF:
        raise ValueError(f"packet id {packet_id} is not in 1-65535")
    return _U16.pack(packet_id)


def _encode_properties(properties: Properties, context: int) -> bytes:
    allowed = ALLOWED_PROPERTIES[context]
    out = bytearray()
    for ident, (name, kind) in _PROPERTY_TYPES.items():
        value = getattr(properties, name)
        if value is None or value == []:
            continue
        if name not in allowed:
            raise ValueError(f"{name} has no place in a {_NAMES[context]}")
        if kind == _PAIR:
            for key, item in value:
                out.append(ident)
                out += _string(key)
                out += _string(item)
        elif kind == _VARIABLE:
            for number in value:
                if number == 0:
                    raise ValueError("a subscription identifier is 1 or more")
                out.append(ident)
                out += _variable(number)
        else:
            out.append(ident)
            if kind == _BYTE:
                out.append(value)
            elif kind == _TWO:
                out += _U16.pack(value)
            elif kind == _FOUR:
                out += _U32.pack(value)
            elif kind == _STRING:
                out += _string(value)
            else:
                out += _binary(value)
    if not out:
        return _EMPTY_PROPERTIES
    return _variable(len(out)) + bytes(out)


def _properties_empty(properties: Properties) -> bool:
    return properties == Properties()


def _frame(first: int, *parts: bytes) -> bytes:
    size = sum(len(part) for part in parts)
    if size > MAX_REMAINING_LENGTH:
        raise ValueError(f"a packet body of {size} bytes is over MQTT's 256 MB limit")
    return b"".join((bytes((first,)), _variable(size), *parts))


def _encode_connect(packet: Connect, version: int) -> bytes:
    if packet.protocol_version != version:
        raise ValueError(
            f"a CONNECT for protocol level {packet.protocol_version} encoded as level {version}"
        )
    will = packet.will
    flags = 0x02 if packet.clean_start else 0
    if will is not None:
        if not 0 <= will.qos <= 2:
            raise ValueError(f"will QoS {will.qos}")
        flags |= 0x04 | will.qos << 3 | (0x20 if will.retain else 0)
    if packet.username is not None:
        flags |= 0x80
    if packet.password is not None:
        if version == MQTT_311 and packet.username is None:
            raise ValueError("MQTT 3.1.1 allows a password only with a username")
        flags |= 0x40
    parts = [_string("MQTT"), bytes((version, flags)), _U16.pack(packet.keep_alive)]
    if version == MQTT_5:
        parts.append(_encode_properties(packet.properties, CONNECT))
    parts.append(_string(packet.client_id))
    if will is not None:
        if version == MQTT_5:
            parts.append(_encode_properties(will.properties, WILL_PROPERTIES))
        parts += (_string(will.topic), _binary(will.payload))
    if packet.username is not None:
        parts.append(_string(packet.username))
    if packet.password is not None:
        parts.append(_binary(packet.password))
    return _frame(CONNECT << 4, *parts)


def _encode_connack(packet: ConnAck, version: int) -> bytes:
    flags = bytes((1 if packet.session_present else 0, packet.reason_code))
    if version == MQTT_311:
        if packet.reason_code > CONNACK_NOT_AUTHORIZED:
            raise ValueError(f"MQTT 3.1.1 has no CONNACK return code {packet.reason_code}")
        return _frame(CONNACK << 4, flags)
    return _frame(CONNACK << 4, flags, _encode_properties(packet.properties, CONNACK))


def _encode_publish(packet: Publish, version: int) -> bytes:
    if not 0 <= packet.qos <= 2:
        raise ValueError(f"QoS {packet.qos}")
    first = PUBLISH << 4 | packet.qos << 1 | (0x08 if packet.dup else 0)
    first |= 0x01 if packet.retain else 0
    parts = [_string(packet.topic)]
    if packet.qos:
        if packet.packet_id is None:
            raise ValueError(f"a QoS {packet.qos} PUBLISH needs a packet id")
        parts.append(_packet_id(packet.packet_id))
    if version == MQTT_5:
        parts.append(_encode_properties(packet.properties, PUBLISH))
    parts.append(packet.payload)
    return _frame(first, *parts)


def _encode_ack(
    kind: int, packet: PubAck | PubRec | PubRel | PubComp | Disconnect | Auth, version: int
) -> bytes:
    first = kind << 4 | (0x02 if kind == PUBREL else 0)
    head = b"" if isinstance(packet, Disconnect | Auth) else _packet_id(packet.packet_id)
    if version == MQTT_311:
        return _frame(first, head)
    # The reason code and then the properties may be left out when they are the defaults.
    if _properties_empty(packet.properties):
        if packet.reason_code == SUCCESS:
            return _frame(first, head)
        return _frame(first, head, bytes((packet.reason_code,)))
    properties = _encode_properties(packet.properties, kind)
    return _frame(first, head, bytes((packet.reason_code,)), properties)


def _encode_subscribe(packet: Subscribe, version: int) -> bytes:
    parts = [_packet_id(packet.packet_id)]
    if version == MQTT_5:
        parts.append(_encode_properties(packet.properties, SUBSCRIBE))
    for subscription in packet.subscriptions:
        options = subscription.qos
        if version == MQTT_5:
            options |= subscription.retain_handling << 4
            options |= (0x04 if subscription.no_local else 0) | (
                0x08 if subscription.retain_as_published else 0
            )
        parts += (_string(subscription.topic_filter), bytes((options,)))
    return _frame(SUBSCRIBE << 4 | 0x02, *parts)


def _encode_suback(packet: SubAck, version: int) -> bytes:
    if version == MQTT_311:
        codes = bytes(min(code, SUBACK_FAILURE) for code in packet.reason_codes)
        return _frame(SUBACK << 4, _packet_id(packet.packet_id), codes)
    properties = _encode_properties(packet.properties, SUBACK)
    return _frame(
        SUBACK << 4, _packet_id(packet.packet_id), properties, bytes(packet.reason_codes)
    )


def _encode_unsubscribe(packet: Unsubscribe, version: int) -> bytes:
    parts = [_packet_id(packet.packet_id)]
    if version == MQTT_5:
        parts.append(_encode_properties(packet.properties, UNSUBSCRIBE))
    parts += (_string(topic_filter) for topic_filter in packet.topic_filters)
    return _frame(UNSUBSCRIBE << 4 | 0x02, *parts)


def _encode_unsuback(packet: UnsubAck, version: int) -> bytes:
    if version == MQTT_311:
        return _frame(UNSUBACK << 4, _packet_id(packet.packet_id))
    properties = _encode_properties(packet.properties, UNSUBACK)
    return _frame(
        UNSUBACK << 4, _packet_id(packet.packet_id), properties, bytes(packet.reason_codes)
    )


def encode(packet: Packet, version: int) -> bytes:
    """The packet's bytes in protocol ``version`` (MQTT 3.1.1 drops what it has no field for:
    properties, reason codes of acks, ...; a 3.1.1 CONNACK's reason_code is its return code
    0-5)."""
    if version not in (MQTT_311, MQTT_5):
        raise ValueError(f"no MQTT protocol level {version}")
    if isinstance(packet, Publish):
        return _encode_publish(packet, version)
    if isinstance(packet, PubAck):
        return _encode_ack(PUBACK, packet, version)
    if isinstance(packet, PubRec):
        return _encode_ack(PUBREC, packet, version)
    if isinstance(packet, PubRel):
        return _encode_ack(PUBREL, packet, version)
    if isinstance(packet, PubComp):
        return _encode_ack(PUBCOMP, packet, version)
    if isinstance(packet, Connect):
        return _encode_connect(packet, version)
    if isinstance(packet, ConnAck):
        return _encode_connack(packet, version)
    if isinstance(packet, Subscribe):
        return _encode_subscribe(packet, version)
    if isinstance(packet, SubAck):
        return _encode_suback(packet, version)
    if isinstance(packet, Unsubscribe):
        return _encode_unsubscribe(packet, version)
    if isinstance(packet, UnsubAck):
        return _encode_unsuback(packet, version)
    if isinstance(packet, PingReq):
        return bytes((PINGREQ << 4, 0))
    if isinstance(packet, PingResp):
        return bytes((PINGRESP << 4, 0))
    if isinstance(packet, Disconnect):
        return _encode_ack(DISCONNECT, packet, version)
    if version == MQTT_311:
        raise ValueError("MQTT 3.1.1 has no AUTH packet")
    return _encode_ack(AUTH, packet, version)


def set_packet_id(publish: bytes, packet_id: int, *, dup: bool = False) -> bytes:
    """An encoded QoS 1/2 PUBLISH with another packet id (and DUP flag): the fan-out path
    encodes a message once per protocol version and QoS and gives each subscriber its own
    packet id. Copies the bytes once and parses only the fixed header and topic length."""
    first = publish[0]
    if first >> 4 != PUBLISH or not first & 0x06:
        raise ValueError("not an encoded QoS 1 or 2 PUBLISH")
    offset = 1
    while publish[offset] & 0x80:
        offset += 1
    offset += 1  # past the remaining length
    offset += 2 + _U16.unpack_from(publish, offset)[0]  # past the topic
    first = first | 0x08 if dup else first & ~0x08
    view = memoryview(publish)
    return b"".join(
        (bytes((first,)), view[1:offset], _packet_id(packet_id), view[offset + 2 :])
    )


# ---------------------------------------------------------------------------------------------
# Decoding


class _Reader:
    """A cursor over one packet's body that refuses to read past ``end``."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)

    def _take(self, size: int, what: str) -> int:
        start = self.pos
        if start + size > self.end:
            raise PacketError(f"the {what} runs past the end of the packet")
        self.pos = start + size
        return start

    def byte(self, what: str) -> int:
        return self.data[self._take(1, what)]

    def two(self, what: str) -> int:
        start = self._take(2, what)
        return self.data[start] << 8 | self.data[start + 1]

    def four(self, what: str) -> int:
        value: int = _U32.unpack_from(self.data, self._take(4, what))[0]
        return value

    def variable(self, what: str) -> int:
        value, offset = _read_variable(self.data, self.pos, self.end, what)
        if offset is None:
            raise PacketError(f"the {what} runs past the end of the packet")
        self.pos = offset
        return value

    def binary(self, what: str) -> bytes:
        size = self.two(what)
        start = self._take(size, what)
        return self.data[start : start + size]

    def string(self, what: str) -> str:
        data = self.binary(what)
        try:
            text = data.decode()
        except UnicodeDecodeError:
            raise PacketError(f"the {what} is not well-formed UTF-8") from None
        if "\x00" in text:
            raise PacketError(f"the {what} contains U+0000")
        return text

    def packet_id(self, kind: int) -> int:
        value = self.two("packet id")
        if value == 0:
            raise PacketError(f"{_NAMES[kind]} with packet id 0", PROTOCOL_ERROR)
        return value

    def rest(self) -> bytes:
        start, self.pos = self.pos, self.end
        return self.data[start : self.end]

    def at_end(self) -> bool:
        return self.pos >= self.end

    def finish(self, kind: int) -> None:
        if self.pos != self.end:
            raise PacketError(f"{self.end - self.pos} bytes after the end of a {_NAMES[kind]}")


def _read_variable(
    data: bytes | bytearray, pos: int, end: int, what: str
) -> tuple[int, int | None]:
    """A variable byte integer at ``pos`` and the offset after it, or (0, None) if ``data``
    ends (at ``end``) before it does. At most 4 bytes, in the shortest form."""
    value = 0
    for index in range(4):
        if pos + index >= end:
            return 0, None
        digit = data[pos + index]
        value |= (digit & 0x7F) << (7 * index)
        if not digit & 0x80:
            if digit == 0 and index:
                raise PacketError(f"the {what} is not in its shortest form")
            return value, pos + index + 1
    raise PacketError(f"the {what} is longer than 4 bytes")


def _read_properties(reader: _Reader, context: int) -> Properties:
    size = reader.variable("property length")
    end = reader.pos + size
    if end > reader.end:
        raise PacketError(f"the properties of a {_NAMES[context]} run past the end of the packet")
    outer_end, reader.end = reader.end, end
    properties = Properties()
    seen: set[str] = set()
    allowed = ALLOWED_PROPERTIES[context]
    where = f"a {_NAMES[context]}"
    while reader.pos < end:
        ident = reader.variable("property identifier")
        entry = _PROPERTY_TYPES.get(ident)
        if entry is None:
            raise PacketError(f"unknown property identifier {ident:#04x} in {where}")
        name, data_type = entry
        if name not in allowed:
            raise PacketError(f"{name} has no place in {where}")
        if data_type == _PAIR:
            pair = (reader.string("user property name"), reader.string("user property value"))
            properties.user_properties.append(pair)
            continue
        if name in seen:
            raise PacketError(f"{name} given twice in {where}", PROTOCOL_ERROR)
        if data_type == _VARIABLE:
            if context != PUBLISH:
                seen.add(name)
            number = reader.variable(name)
            if number == 0:
                raise PacketError(f"subscription identifier 0 in {where}", PROTOCOL_ERROR)
            properties.subscription_identifiers.append(number)
            continue
        seen.add(name)
        value: int | str | bytes
        if data_type == _BYTE:
            value = reader.byte(name)
            if name in _FLAG_PROPERTIES and value > 1:
                raise PacketError(f"{name} {value} in {where}; it is 0 or 1", PROTOCOL_ERROR)
        elif data_type == _TWO:
            value = reader.two(name)
        elif data_type == _FOUR:
            value = reader.four(name)
        elif data_type == _STRING:
            value = reader.string(name)
        else:
            value = reader.binary(name)
        if value == 0 and name in _NONZERO_PROPERTIES:
            raise PacketError(f"{name} 0 in {where}", PROTOCOL_ERROR)
        setattr(properties, name, value)
    reader.end = outer_end
    if properties.authentication_data is not None and properties.authentication_method is None:
        raise PacketError(f"authentication data without a method in {where}", PROTOCOL_ERROR)
    if properties.response_topic is not None:
        _check_topic_name(properties.response_topic, "response topic")
    return properties


def _check_topic_name(topic: str, what: str) -> None:
    if "+" in topic or "#" in topic:
        raise PacketError(f"a wildcard in the {what} {topic!r}", TOPIC_NAME_INVALID)
    if not topic:
        raise PacketError(f"an empty {what}", TOPIC_NAME_INVALID)


def _reason_code(reader: _Reader, kind: int) -> int:
    code = reader.byte("reason code")
    if code not in REASON_CODES[kind]:
        raise PacketError(f"{_NAMES[kind]} has no reason code {code:#04x}", PROTOCOL_ERROR)
    return code


def _decode_connect(reader: _Reader) -> Connect:
    name = reader.string("protocol name")
    if name != "MQTT":
        raise UnsupportedProtocolVersion(f"protocol {name!r} is not MQTT", None)
    level = reader.byte("protocol level")
    if level not in (MQTT_311, MQTT_5):
        raise UnsupportedProtocolVersion(f"MQTT protocol level {level}", level)
    flags = reader.byte("connect flags")
    if flags & 0x01:
        raise PacketError("the reserved CONNECT flag is set")
    has_will, will_qos, will_retain = flags & 0x04, flags >> 3 & 0x03, bool(flags & 0x20)
    if will_qos == 3:
        raise PacketError("will QoS 3")
    if not has_will and (will_qos or will_retain):
        raise PacketError("will QoS or will retain without the will flag")
    has_username, has_password = flags & 0x80, flags & 0x40
    if level == MQTT_311 and has_password and not has_username:
        raise PacketError("the password flag without the username flag")
    keep_alive = reader.two("keep alive")
    properties = _read_properties(reader, CONNECT) if level == MQTT_5 else Properties()
    client_id = reader.string("client identifier")
    will = None
    if has_will:
        will_properties = (
            _read_properties(reader, WILL_PROPERTIES) if level == MQTT_5 else Properties()
        )
        topic = reader.string("will topic")
        _check_topic_name(topic, "will topic")
        payload = reader.binary("will payload")
        will = Will(topic, payload, will_qos, will_retain, will_properties)
    username = reader.string("username") if has_username else None
    password = reader.binary("password") if has_password else None
    reader.finish(CONNECT)
    return Connect(
        level, client_id, bool(flags & 0x02), keep_alive, username, password, will, properties
    )


def _decode_connack(reader: _Reader, version: int) -> ConnAck:
    flags = reader.byte("acknowledge flags")
    if flags & 0xFE:
        raise PacketError("reserved CONNACK flags are set")
    if version == MQTT_311:
        code = reader.byte("return code")
        if code > CONNACK_NOT_AUTHORIZED:
            raise PacketError(f"CONNACK return code {code}", PROTOCOL_ERROR)
        properties = Properties()
    else:
        code = _reason_code(reader, CONNACK)
        properties = _read_properties(reader, CONNACK)
    if code and flags:
        raise PacketError("session present on a refused CONNACK", PROTOCOL_ERROR)
    reader.finish(CONNACK)
    return ConnAck(bool(flags), code, properties)


def _decode_publish(reader: _Reader, flags: int, version: int, from_server: bool) -> Publish:
    qos = flags >> 1 & 0x03
    topic = reader.string("topic name")
    packet_id = reader.packet_id(PUBLISH) if qos else None
    if version == MQTT_5:
        properties = _read_properties(reader, PUBLISH)
        if properties.subscription_identifiers and not from_server:
            raise PacketError("a client's PUBLISH with a subscription identifier", PROTOCOL_ERROR)
    else:
        properties = Properties()
    if topic or properties.topic_alias is None:
        _check_topic_name(topic, "topic name")
    return Publish(
        topic, reader.rest(), qos, bool(flags & 0x01), bool(flags & 0x08), packet_id, properties
    )


def _decode_ack(reader: _Reader, kind: int, version: int) -> PubAck | PubRec | PubRel | PubComp:
    packet_id = reader.packet_id(kind)
    code, properties = SUCCESS, Properties()
    if version == MQTT_5 and not reader.at_end():
        code = _reason_code(reader, kind)
        if not reader.at_end():
            properties = _read_properties(reader, kind)
    reader.finish(kind)
    if kind == PUBACK:
        return PubAck(packet_id, code, properties)
    if kind == PUBREC:
        return PubRec(packet_id, code, properties)
    if kind == PUBREL:
        return PubRel(packet_id, code, properties)
    return PubComp(packet_id, code, properties)


def _decode_subscribe(reader: _Reader, version: int) -> Subscribe:
    packet_id = reader.packet_id(SUBSCRIBE)
    properties = (
        _read_properties(reader, SUBSCRIBE) if version == MQTT_5 else Properties()
    )
    subscriptions = []
    reserved = 0xFC if version == MQTT_311 else 0xC0
    while not reader.at_end():
        topic_filter = reader.string("topic filter")
        options = reader.byte("subscription options")
        if options & reserved:
            raise PacketError("reserved subscription option bits are set")
        qos, retain_handling = options & 0x03, options >> 4 & 0x03
        if qos == 3:
            raise PacketError(f"QoS 3 for {topic_filter!r}", PROTOCOL_ERROR)
        if retain_handling == 3:
            raise PacketError(f"retain handling 3 for {topic_filter!r}", PROTOCOL_ERROR)
        no_local = bool(options & 0x04)
        if no_local and topic_filter.startswith("$share/"):
            raise PacketError(f"no local on the shared {topic_filter!r}", PROTOCOL_ERROR)
        subscriptions.append(
            Subscription(topic_filter, qos, no_local, bool(options & 0x08), retain_handling)
        )
    if not subscriptions:
        raise PacketError("SUBSCRIBE without a topic filter", PROTOCOL_ERROR)
    return Subscribe(packet_id, subscriptions, properties)


def _decode_suback(reader: _Reader, version: int) -> SubAck:
    packet_id = reader.packet_id(SUBACK)
    if version == MQTT_311:
        properties, allowed = Properties(), _SUBACK_311_CODES
    else:
        properties, allowed = _read_properties(reader, SUBACK), REASON_CODES[SUBACK]
    codes = list(reader.rest())
    for code in codes:
        if code not in allowed:
            raise PacketError(f"SUBACK has no reason code {code:#04x}", PROTOCOL_ERROR)
    return SubAck(packet_id, codes, properties)


def _decode_unsubscribe(reader: _Reader, version: int) -> Unsubscribe:
    packet_id = reader.packet_id(UNSUBSCRIBE)
    properties = (
        _read_properties(reader, UNSUBSCRIBE) if version == MQTT_5 else Properties()
    )
    topic_filters = []
    while not reader.at_end():
        topic_filters.append(reader.string("topic filter"))
    if not topic_filters:
        raise PacketError("UNSUBSCRIBE without a topic filter", PROTOCOL_ERROR)
    return Unsubscribe(packet_id, topic_filters, properties)


def _decode_unsuback(reader: _Reader, version: int) -> UnsubAck:
    packet_id = reader.packet_id(UNSUBACK)
    if version == MQTT_311:
        reader.finish(UNSUBACK)
        return UnsubAck(packet_id)
    properties = _read_properties(reader, UNSUBACK)
    codes = list(reader.rest())
    for code in codes:
        if code not in REASON_CODES[UNSUBACK]:
            raise PacketError(f"UNSUBACK has no reason code {code:#04x}", PROTOCOL_ERROR)
    return UnsubAck(packet_id, codes, properties)


def _decode_disconnect_or_auth(reader: _Reader, kind: int, version: int) -> Disconnect | Auth:
    code, properties = SUCCESS, Properties()
    if version == MQTT_5 and not reader.at_end():
        code = _reason_code(reader, kind)
        if not reader.at_end():
            properties = _read_properties(reader, kind)
    reader.finish(kind)
    return Disconnect(code, properties) if kind == DISCONNECT else Auth(code, properties)


def _decode_body(first: int, body: bytes, version: int | None, from_server: bool) -> Packet:
    """The packet of type and flags ``first`` with variable header and payload ``body``."""
    kind, flags = first >> 4, first & 0x0F
    if kind == 0 or (kind == AUTH and version == MQTT_311):
        raise PacketError(f"reserved packet type {kind}")
    if kind == PUBLISH:
        if flags & 0x06 == 0x06:
            raise PacketError("PUBLISH with QoS 3")
        if flags & 0x08 and not flags & 0x06:
            raise PacketError("PUBLISH with DUP set on QoS 0")
    elif flags != (0x02 if kind in (PUBREL, SUBSCRIBE, UNSUBSCRIBE) else 0):
        raise PacketError(f"reserved flags {flags:#06b} of a {_NAMES[kind]}")
    if kind in (_CLIENT_ONLY if from_server else _SERVER_ONLY):
        sender = "server" if from_server else "client"
        raise PacketError(f"a {sender} must not send {_NAMES[kind]}", PROTOCOL_ERROR)
    reader = _Reader(body)
    if kind == CONNECT:
        return _decode_connect(reader)
    if version is None:
        raise ValueError(f"a {_NAMES[kind]} needs the protocol version to decode")
    if kind == PUBLISH:
        return _decode_publish(reader, flags, version, from_server)
    if kind in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        return _decode_ack(reader, kind, version)
    if kind == CONNACK:
        return _decode_connack(reader, version)
    if kind == SUBSCRIBE:
        return _decode_subscribe(reader, version)
    if kind == SUBACK:
        return _decode_suback(reader, version)
    if kind == UNSUBSCRIBE:
        return _decode_unsubscribe(reader, version)
    if kind == UNSUBACK:
        return _decode_unsuback(reader, version)
    if kind in (PINGREQ, PINGRESP):
        reader.finish(kind)
        return PingReq() if kind == PINGREQ else PingResp()
    return _decode_disconnect_or_auth(reader, kind, version)


def decode(data: bytes, version: int | None, *, from_server: bool = False) -> Packet:
    """The one complete packet ``data`` holds, in protocol ``version`` (a CONNECT carries its
    own; None will only do for a CONNECT).

    Decodes what a client sends, refusing packets only a server sends; ``from_server`` decodes
    what a server sends instead (the view of a client, for tests).
    """
    if len(data) < 2:
        raise PacketError("a packet is at least 2 bytes long")
    size, offset = _read_variable(data, 1, len(data), "remaining length")
    if offset is None:
        raise PacketError("the remaining length runs past the end of the data")
    if offset + size != len(data):
        raise PacketError(f"the remaining length is {size}, the data {len(data) - offset} bytes")
    return _decode_body(data[0], data[offset:], version, from_server)


class PacketReader:
    """Splits a client's byte stream into packets. MQTT over WebSocket does not align packets
    with WebSocket messages: one message may hold several packets or part of one.

    ``version`` is None until a CONNECT's protocol level was read (set even when the rest of
    that CONNECT is refused, so that the CONNACK refusing it can be written in that version);
    then its protocol level. The caller may also set it.

    A server's reader (the default) also refuses a first packet other than CONNECT and a second
    CONNECT. With ``from_server`` the reader reads a server's packets instead and needs
    ``version`` before the first one.
    """

    __slots__ = ("_buffer", "_connected", "from_server", "max_packet_size", "version")

    def __init__(
        self, max_packet_size: int, *, from_server: bool = False, version: int | None = None
    ) -> None:
        if max_packet_size < 2:
            raise ValueError("an MQTT packet is at least 2 bytes long")
        self.max_packet_size = max_packet_size
        self.from_server = from_server
        self.version = version
        self._connected = False
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """How many bytes of an incomplete packet the reader holds."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Packet]:
        """Every complete packet the bytes finish, in order; PacketError when the stream is
        invalid (after which the reader is not used again). A packet longer than
        max_packet_size (fixed header included) is refused as soon as its fixed header is read
        (PACKET_TOO_LARGE), without buffering its body; a partial packet held between calls
        never exceeds max_packet_size either."""
        buffer = self._buffer
        buffer += data
        packets: list[Packet] = []
        start, end = 0, len(buffer)
        while end - start >= 2:
            size, offset = _read_variable(buffer, start + 1, end, "remaining length")
            if offset is None:
                break
            total = offset - start + size
            if total > self.max_packet_size:
                raise PacketError(
                    f"a packet of {total} bytes is over the limit of {self.max_packet_size}",
                    PACKET_TOO_LARGE,
                )
            if end - start < total:
                break
            with memoryview(buffer) as view, view[offset : start + total] as body:
                packets.append(self._decode(buffer[start], bytes(body)))
            start += total
        del buffer[:start]
        if len(buffer) >= self.max_packet_size:
            # Only a fixed header is incomplete here: the packet is longer than the bytes held.
            raise PacketError(
                f"a packet over the limit of {self.max_packet_size} bytes", PACKET_TOO_LARGE
            )
        return packets

    def _decode(self, first: int, body: bytes) -> Packet:
        is_connect = first >> 4 == CONNECT
        if not self.from_server:
            if self._connected and is_connect:
                raise PacketError("a second CONNECT", PROTOCOL_ERROR)
            if not self._connected and not is_connect:
                raise PacketError("the first packet is not CONNECT", PROTOCOL_ERROR)
            if is_connect and body[:6] == b"\x00\x04MQTT" and body[6:7] in (b"\x04", b"\x05"):
                # Known before the rest is checked: a server answers a bad CONNECT in its version.
                self.version = body[6]
        elif self.version is None:
            raise ValueError("a reader of a server's packets needs the protocol version")
        packet = _decode_body(first, body, self.version, self.from_server)
        if isinstance(packet, Connect):
            self._connected = True
            self.version = packet.protocol_version
        return packet

