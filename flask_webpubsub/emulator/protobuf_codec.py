"""The protobuf subprotocols: ``protobuf.webpubsub.azure.v1`` and
``protobuf.reliable.webpubsub.azure.v1`` (sequence ids, ``SequenceAckMessage``, recovery), in
binary frames, with a small hand-written codec of the proto3 wire format (no dependency).

The messages and their field numbers are the service's (reference-protobuf-webpubsub-subprotocol
and its reliable twin on learn.microsoft.com; the client proto of Azure/azure-webpubsub's protobuf
client, which adds ``no_echo``, 64-bit ack ids and ``json_data``), with what Microsoft's emulator
adds for the newer features: ``PingMessage`` (upstream 9) and ``PongMessage`` (downstream 4),
``ttl_seconds`` (5) and ``metadata`` (6) on ``SendToGroupMessage``, ``metadata`` on
``EventMessage`` (4) and ``DataMessage`` (5)::

    UpstreamMessage { oneof message {
        SendToGroupMessage send_to_group_message = 1;  // group 1, ack_id 2, data 3,
                                                       // no_echo 4, ttl_seconds 5, metadata 6
        EventMessage event_message = 5;                // event 1, data 2, ack_id 3, metadata 4
        JoinGroupMessage join_group_message = 6;       // group 1, ack_id 2
        LeaveGroupMessage leave_group_message = 7;     // group 1, ack_id 2
        SequenceAckMessage sequence_ack_message = 8;   // sequence_id 1 (reliable only)
        PingMessage ping_message = 9; } }
    DownstreamMessage { oneof message {
        AckMessage ack_message = 1;        // ack_id 1, success 2, error 3 {name 1, message 2}
        DataMessage data_message = 2;      // from 1, group 2, data 3, sequence_id 4, metadata 5
        SystemMessage system_message = 3;  // connected_message 1 {connection_id 1, user_id 2,
                                           //   reconnection_token 3}, disconnected_message 2
                                           //   {reason 2}
        PongMessage pong_message = 4; } }
    MessageData { oneof data { string text_data = 1; bytes binary_data = 2;
                               google.protobuf.Any protobuf_data = 3; string json_data = 4; } }

Data types cross protocols as the reference says: ``protobuf_data`` travels as the bytes of its
``Any`` (base64 to JSON clients, ``application/x-protobuf`` upstream), JSON as ``json_data``.
Invocations and streams have no protobuf messages; stream fragments reach protobuf clients as
plain data messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask_webpubsub.core.jsoncodec import decode_json
from flask_webpubsub.core.wire import (
    MAX_NAME_LENGTH,
    PROTOBUF_SUBPROTOCOL,
    RELIABLE_PROTOBUF_SUBPROTOCOL,
)

from .codec import Codec, Frame, ProtocolViolation, ReliableCodec
from .messages import (
    EMPTY,
    MAX_TTL,
    Ack,
    Connected,
    DataMessage,
    Disconnected,
    JoinGroup,
    LeaveGroup,
    Message,
    Metadata,
    Ping,
    Pong,
    Request,
    SendEvent,
    SendToGroup,
    SequenceAck,
)
from .metadata import InvalidMetadataError
from .metadata import validate as validate_metadata
from .payload import Payload

_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5
#: The field number of each ``MessageData`` data type.
_DATA_FIELDS = {"text": 1, "binary": 2, "protobuf": 3, "json": 4}
_DATA_TYPES = {number: data_type for data_type, number in _DATA_FIELDS.items()}

Fields = dict[int, list[Any]]


class ProtobufCodec(Codec):
    subprotocol: str | None = PROTOBUF_SUBPROTOCOL

    def decode(self, frame: Frame) -> Request:
        if not isinstance(frame, bytes):
            raise ProtocolViolation("text frames are not allowed with a protobuf subprotocol")
        message = _oneof(frame, (1, 5, 6, 7, 8, 9))
        if message is None:
            raise ProtocolViolation("the UpstreamMessage has no message")
        number, body = message
        fields = _fields(_bytes(body, "message"))
        return self._request(number, fields)

    def _request(self, number: int, fields: Fields) -> Request:
        if number == 1:
            if 7 in fields:
                raise ProtocolViolation("streams are not served over protobuf")
            metadata = _metadata(fields, 6)
            return SendToGroup(
                _name(fields, 1, "group"), _data(fields, 3, metadata), _ack_id(fields, 2),
                bool(_varint(fields, 4)), metadata, _ttl(fields),
            )
        if number == 5:
            metadata = _metadata(fields, 4)
            return SendEvent(
                _name(fields, 1, "event"), _data(fields, 2, metadata), _ack_id(fields, 3), metadata
            )
        if number == 6:
            return JoinGroup(_name(fields, 1, "group"), _ack_id(fields, 2))
        if number == 7:
            return LeaveGroup(_name(fields, 1, "group"), _ack_id(fields, 2))
        if number == 9:
            return Ping()
        raise ProtocolViolation("sequence acks are for the reliable protocol only")

    def encode(self, message: Message) -> Frame | None:
        if isinstance(message, DataMessage):
            if message.stream is not None and message.stream.end:
                return None  # no protobuf message says that a stream ended
            body = _string(1, "server" if message.group is None else "group")
            if message.group is not None:
                body += _string(2, message.group)
            payload = message.payload
            data = payload.binary if payload.is_binary else payload.text.encode()
            body += _field(3, _field(_DATA_FIELDS[payload.data_type], data))
            for key, value in message.metadata.items():
                body += _field(5, _string(1, key) + _string(2, value))
            return _field(2, body)
        if isinstance(message, Ack):
            body = _varint_field(1, message.ack_id)
            if message.error is None:
                body += _varint_field(2, 1)
            else:
                body += _field(3, _string(1, message.error) + _string(2, message.reason))
            return _field(1, body)
        if isinstance(message, Connected):
            body = _string(1, message.connection_id) + _string(2, message.user_id or "")
            if message.reconnection_token is not None:
                body += _string(3, message.reconnection_token)
            return _field(3, _field(1, body))
        if isinstance(message, Disconnected):
            return _field(3, _field(2, _string(2, message.reason or "")))
        if isinstance(message, Pong):
            return _field(4, b"")
        return None  # invocations and streams have no protobuf messages


class ReliableProtobufCodec(ProtobufCodec, ReliableCodec):
    subprotocol = RELIABLE_PROTOBUF_SUBPROTOCOL

    def _request(self, number: int, fields: Fields) -> Request:
        if number == 8:
            return SequenceAck(_varint(fields, 1))
        return super()._request(number, fields)

    def number(self, frame: Frame, sequence_id: int) -> Frame:
        """The data message with ``sequence_id`` (field 4) appended to its body: fields may
        come in any order."""
        assert isinstance(frame, bytes)
        _, start = _read_varint(frame, 1)  # after the tag of data_message, its length
        return _field(2, frame[start:] + _varint_field(4, sequence_id))


PROTOBUF = ProtobufCodec()
RELIABLE_PROTOBUF = ReliableProtobufCodec()

# -- reading ------------------------------------------------------------------------------------


def _fields(data: bytes) -> Fields:
    """Every field of a message by number, in order (varints as ints, length-delimited fields
    as bytes); fixed-size fields are skipped, as unknown fields are by the readers."""
    fields: Fields = {}
    for number, value in _walk(data):
        fields.setdefault(number, []).append(value)
    return fields


def _walk(data: bytes) -> Iterator[tuple[int, Any]]:
    index, end = 0, len(data)
    while index < end:
        key, index = _read_varint(data, index)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ProtocolViolation("a field has number 0")
        value: int | bytes
        if wire_type == _VARINT:
            value, index = _read_varint(data, index)
        elif wire_type == _LEN:
            length, index = _read_varint(data, index)
            if length > end - index:
                raise ProtocolViolation("a field runs past the end of the frame")
            value, index = data[index:index + length], index + length
        elif wire_type in (_FIXED64, _FIXED32):
            index += 8 if wire_type == _FIXED64 else 4
            if index > end:
                raise ProtocolViolation("a field runs past the end of the frame")
            continue
        else:
            raise ProtocolViolation(f"wire type {wire_type} is not proto3's")
        yield number, value


def _read_varint(data: bytes, index: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if index >= len(data):
            raise ProtocolViolation("a varint runs past the end of the frame")
        byte = data[index]
        index += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index
        shift += 7
        if shift >= 70:
            raise ProtocolViolation("a varint is longer than 10 bytes")


def _oneof(data: bytes, numbers: tuple[int, ...]) -> tuple[int, Any] | None:
    """The member of a oneof that came last in a message (as proto3 readers take it), with
    its number."""
    found = None
    for number, value in _walk(data):
        if number in numbers:
            found = number, value
    return found


def _bytes(value: Any, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise ProtocolViolation(f"{what} is not length-delimited")
    return value


def _text(value: Any, what: str) -> str:
    try:
        return _bytes(value, what).decode()
    except UnicodeDecodeError:
        raise ProtocolViolation(f"{what} is not UTF-8") from None


def _varint(fields: Fields, number: int) -> int:
    value = fields.get(number, [0])[-1]
    if not isinstance(value, int):
        raise ProtocolViolation(f"field {number} is not a varint")
    return value


def _name(fields: Fields, number: int, what: str) -> str:
    name = _text(fields.get(number, [b""])[-1], what)
    if not name:
        raise ProtocolViolation(f"{what!r} must be a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        raise ProtocolViolation(f"{what!r} is longer than {MAX_NAME_LENGTH} characters")
    return name


def _ack_id(fields: Fields, number: int) -> int | None:
    if number not in fields:
        return None
    ack_id = _varint(fields, number)
    if ack_id >= 1 << 63:  # a negative int32 or int64, as two's complement
        raise ProtocolViolation("'ack_id' must not be negative")
    return ack_id


def _ttl(fields: Fields) -> int | None:
    if 5 not in fields:
        return None
    ttl = _varint(fields, 5)
    if ttl > MAX_TTL:
        raise ProtocolViolation(f"'ttl_seconds' must be from 0 to {MAX_TTL}")
    return ttl


def _metadata(fields: Fields, number: int) -> Metadata:
    if number not in fields:
        return EMPTY
    metadata: dict[str, str] = {}
    for entry in fields[number]:
        pair = _fields(_bytes(entry, "a metadata entry"))
        metadata[_text(pair.get(1, [b""])[-1], "a metadata key")] = _text(
            pair.get(2, [b""])[-1], "a metadata value"
        )
    try:
        validate_metadata(metadata)
    except InvalidMetadataError as exc:
        raise ProtocolViolation(str(exc)) from None
    return metadata


def _data(fields: Fields, number: int, metadata: Metadata) -> Payload:
    """A ``MessageData``: its one data field gives the data type."""
    if number not in fields:
        if metadata:
            return Payload("text")  # metadata alone, as in the JSON protocols
        raise ProtocolViolation("the message has no data")
    found = _oneof(_bytes(fields[number][-1], "data"), (1, 2, 3, 4))
    if found is None:
        raise ProtocolViolation("the MessageData has no data")
    data_field, value = found
    data_type = _DATA_TYPES[data_field]
    if data_type == "protobuf":
        _fields(_bytes(value, "protobuf_data"))  # a well-formed google.protobuf.Any
    if data_type in ("binary", "protobuf"):
        return Payload(data_type, binary=_bytes(value, data_type))  # type: ignore[arg-type]
    text = _text(value, f"{data_type} data")
    if data_type == "json":
        try:
            decode_json(text)
        except (ValueError, RecursionError):
            raise ProtocolViolation("json_data is not valid JSON") from None
    return Payload(data_type, text=text)  # type: ignore[arg-type]


# -- writing ------------------------------------------------------------------------------------


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, value: bytes) -> bytes:
    """A length-delimited field."""
    return _varint_bytes(number << 3 | _LEN) + _varint_bytes(len(value)) + value


def _varint_field(number: int, value: int) -> bytes:
    return _varint_bytes(number << 3 | _VARINT) + _varint_bytes(value)


def _string(number: int, value: str) -> bytes:
    return _field(number, value.encode())
