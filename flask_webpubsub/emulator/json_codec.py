"""The JSON subprotocols (docs/protocol.md section 8): ``json.webpubsub.azure.v1`` and
``json.reliable.webpubsub.azure.v1``, which adds sequence ids, ``sequenceAck`` and recovery.

Clients send text frames only. Data travels as ``"dataType"`` and ``"data"``: JSON as it is,
text as a JSON string, binary and protobuf as base64.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from flask_webpubsub.core.jsoncodec import decode_json, encode_json
from flask_webpubsub.core.wire import (
    JSON_SUBPROTOCOL,
    MAX_NAME_LENGTH,
    RELIABLE_JSON_SUBPROTOCOL,
)

from .codec import Codec, Frame, ProtocolViolation, ReliableCodec
from .messages import (
    EMPTY,
    MAX_TTL,
    Ack,
    CancelInvocation,
    Connected,
    DataMessage,
    EndStream,
    InvalidStreamRequest,
    Invoke,
    InvokeResponse,
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
    StartStream,
    StreamAck,
    StreamClosed,
    StreamData,
    StreamInfo,
    StreamNack,
)
from .metadata import InvalidMetadataError
from .metadata import validate as validate_metadata
from .payload import Payload


class JsonCodec(Codec):
    subprotocol: str | None = JSON_SUBPROTOCOL

    def decode(self, frame: Frame) -> Request:
        if not isinstance(frame, str):
            raise ProtocolViolation("binary frames are not allowed with a JSON subprotocol")
        try:
            fields = decode_json(frame)
        except (ValueError, RecursionError):
            raise ProtocolViolation("the frame is not valid JSON") from None
        if not isinstance(fields, dict):
            raise ProtocolViolation("the frame is not a JSON object")
        ack_id = fields.get("ackId")
        if ack_id is not None:
            ack_id = _integer(ack_id, "ackId")
        return self._request(fields.get("type"), fields, ack_id)

    def _request(self, request_type: Any, fields: dict[str, Any], ack_id: int | None) -> Request:
        if request_type == "joinGroup":
            return JoinGroup(_name(fields, "group"), ack_id)
        if request_type == "leaveGroup":
            return LeaveGroup(_name(fields, "group"), ack_id)
        if request_type == "sendToGroup":
            no_echo = fields.get("noEcho", False)
            if not isinstance(no_echo, bool):
                raise ProtocolViolation("'noEcho' must be true or false")
            if "stream" in fields:
                return _start_stream(fields, ack_id, no_echo)
            metadata = _metadata(fields)
            return SendToGroup(
                _name(fields, "group"), _payload(fields, metadata), ack_id, no_echo, metadata,
                _ttl(fields),
            )
        if request_type == "event":
            metadata = _metadata(fields)
            return SendEvent(_name(fields, "event"), _payload(fields, metadata), ack_id, metadata)
        if request_type == "ping":
            return Ping()
        if request_type == "invoke":
            target = fields.get("target", "event")
            if not isinstance(target, str):
                raise ProtocolViolation("'target' must be a string")
            metadata = _metadata(fields)
            payload = (
                _payload(fields, metadata) if "data" in fields or "dataType" in fields else None
            )
            return Invoke(
                _name(fields, "invocationId"), _name(fields, "event"), payload, target, metadata
            )
        if request_type == "cancelInvocation":
            return CancelInvocation(_name(fields, "invocationId"))
        if request_type == "streamData":
            return _stream_data(fields)
        if request_type == "streamEnd":
            return _end_stream(fields)
        raise ProtocolViolation(f"unknown message type {str(request_type)[:40]!r}")

    def encode(self, message: Message) -> Frame | None:
        if isinstance(message, DataMessage):
            fields: dict[str, Any] = {"type": "message"}
            if message.group is None:
                fields["from"] = "server"
            else:
                fields["from"] = "group"
                fields["group"] = message.group
                if message.from_user_id is not None:
                    fields["fromUserId"] = message.from_user_id
            return _with_data(fields, message.payload, message.metadata, message.stream)
        if isinstance(message, Ack):
            fields = {"type": "ack", "ackId": message.ack_id, "success": message.error is None}
            if message.error is not None:
                fields["error"] = {"name": message.error, "message": message.reason}
            return _text(fields)
        if isinstance(message, Connected):
            fields = {
                "type": "system",
                "event": "connected",
                "userId": message.user_id,
                "connectionId": message.connection_id,
            }
            if message.reconnection_token is not None:
                fields["reconnectionToken"] = message.reconnection_token
            return _text(fields)
        if isinstance(message, Pong):
            return '{"type":"pong"}'
        if isinstance(message, StreamAck):
            return _text({"type": "streamAck", "streamId": message.stream_id,
                          "expectedSequenceId": message.expected})
        if isinstance(message, StreamNack):
            return _text({"type": "streamNack", "streamId": message.stream_id,
                          "expectedSequenceId": message.expected, "name": message.error,
                          "message": message.reason})
        if isinstance(message, StreamClosed):
            fields = {"type": "streamClosed", "streamId": message.stream_id}
            if message.error is not None:
                fields["error"] = {"name": message.error, "message": message.reason}
            return _text(fields)
        if isinstance(message, InvokeResponse):
            fields = {
                "type": "invokeResponse",
                "invocationId": message.invocation_id,
                "success": message.error is None,
            }
            if message.error is not None:
                fields["error"] = {"name": message.error, "message": message.reason}
            return _text(fields) if message.payload is None else _with_data(fields, message.payload)
        return _text(  # Disconnected
            {"type": "system", "event": "disconnected", "message": message.reason or ""}
        )


class ReliableJsonCodec(JsonCodec, ReliableCodec):
    subprotocol = RELIABLE_JSON_SUBPROTOCOL

    def _request(self, request_type: Any, fields: dict[str, Any], ack_id: int | None) -> Request:
        if request_type == "sequenceAck":
            return SequenceAck(_integer(fields.get("sequenceId"), "sequenceId"))
        return super()._request(request_type, fields, ack_id)

    def number(self, frame: Frame, sequence_id: int) -> Frame:
        assert isinstance(frame, str)
        return f'{{"sequenceId":{sequence_id},{frame[1:]}'


JSON = JsonCodec()
RELIABLE_JSON = ReliableJsonCodec()


def _text(value: Any) -> str:
    return encode_json(value).decode()


def _with_data(
    fields: dict[str, Any],
    payload: Payload,
    metadata: Metadata = EMPTY,
    stream: StreamInfo | None = None,
) -> str:
    """A frame of ``fields``, the payload's ``dataType`` and ``data`` (its JSON text goes in as
    it is, not parsed and encoded again), and its ``metadata`` and ``stream``, if any."""
    head = _text(fields)
    tail = f',"metadata":{_text(dict(metadata))}' if metadata else ""
    if stream is not None:
        tail += f',"stream":{_text(_stream_fields(stream))}'
    return f'{head[:-1]},"dataType":"{payload.data_type}","data":{_data(payload)}{tail}}}'


def _stream_fields(stream: StreamInfo) -> dict[str, Any]:
    fields: dict[str, Any] = {"streamId": stream.stream_id,
                              "streamSequenceId": stream.sequence_id}
    if stream.end:
        fields["endOfStream"] = True
    if stream.error is not None:
        error = {"name": stream.error, "message": stream.reason or ""}
        if stream.user_error_code is not None:
            error["userErrorCode"] = stream.user_error_code
        fields["error"] = error
    return fields


def _data(payload: Payload) -> str:
    """The value of ``data`` in a frame."""
    if payload.data_type == "json":
        return payload.text
    if payload.data_type == "text":
        return _text(payload.text)
    return '"' + base64.b64encode(payload.binary).decode("ascii") + '"'


def _payload(fields: dict[str, Any], metadata: Metadata) -> Payload:
    """The ``dataType`` and ``data`` of a ``sendToGroup``, ``event`` or ``invoke`` frame; a
    frame with metadata may have no data (empty text, as in Microsoft's emulator)."""
    if "data" not in fields:
        if metadata:
            return Payload("text")
        raise ProtocolViolation("'data' is missing")
    data_type, data = fields.get("dataType"), fields["data"]
    if data_type is None or data_type == "json":
        if data is None:
            # Nothing to deliver: what a stream start or a keep-alive looks like to a service
            # that does not know them, and never a message for the whole group.
            raise ProtocolViolation("'data' is null")
        return Payload("json", text=_text(data))
    if data_type == "text":
        if not isinstance(data, str):
            raise ProtocolViolation("data must be a string when dataType is 'text'")
        return Payload("text", text=data)
    if data_type in ("binary", "protobuf"):
        if not isinstance(data, str):
            raise ProtocolViolation(f"data must be base64 text when dataType is {data_type!r}")
        try:
            return Payload(data_type, binary=base64.b64decode(data, validate=True))
        except (binascii.Error, ValueError):
            raise ProtocolViolation("data is not valid base64") from None
    raise ProtocolViolation(f"unknown dataType {data_type!r}: use json, text or binary")


def _start_stream(fields: dict[str, Any], ack_id: int | None, no_echo: bool) -> Request:
    """A ``sendToGroup`` with a ``stream`` property starts a stream; it has no data."""
    stream = fields["stream"]
    if not isinstance(stream, dict):
        raise ProtocolViolation("'stream' must be an object")
    stream_id = _name(stream, "streamId")
    group = _name(fields, "group")
    if "data" in fields or "dataType" in fields or ack_id is not None:
        return InvalidStreamRequest(stream_id, "A stream start has no data, dataType or ackId.")
    idle = stream.get("idleTimeoutMs")
    if idle is not None and (not isinstance(idle, int) or isinstance(idle, bool) or idle <= 0):
        return InvalidStreamRequest(stream_id, "idleTimeoutMs must be a positive integer.")
    return StartStream(group, stream_id, no_echo, None if idle is None else idle / 1000)


def _stream_data(fields: dict[str, Any]) -> Request:
    """A ``streamData`` fragment: sequence id, dataType and data, or none of them (a
    keep-alive)."""
    stream_id = _name(fields, "streamId")
    given = [key for key in ("streamSequenceId", "dataType", "data") if key in fields]
    if not given:
        return StreamData(stream_id)
    if len(given) < 3:
        return InvalidStreamRequest(
            stream_id, "Stream data needs streamSequenceId, dataType and data together."
        )
    sequence_id = fields["streamSequenceId"]
    if not isinstance(sequence_id, int) or isinstance(sequence_id, bool) or sequence_id < 1:
        return InvalidStreamRequest(stream_id, "streamSequenceId must be a positive integer.")
    try:
        payload = _payload(fields, EMPTY)
    except ProtocolViolation as exc:
        return InvalidStreamRequest(stream_id, f"Invalid stream data: {exc}.")
    return StreamData(stream_id, sequence_id, payload)


def _end_stream(fields: dict[str, Any]) -> Request:
    """A ``streamEnd``, with the publisher's own error (``message``, ``userErrorCode``) or
    not."""
    stream_id = _name(fields, "streamId")
    error = fields.get("error")
    if error is None:
        return EndStream(stream_id)
    if not isinstance(error, dict):
        return InvalidStreamRequest(stream_id, "A stream's error must be an object.")
    reason, code = error.get("message"), error.get("userErrorCode")
    if not all(
        value is None or (isinstance(value, str) and len(value) <= MAX_NAME_LENGTH)
        for value in (reason, code)
    ):
        return InvalidStreamRequest(
            stream_id, f"A stream's error has a message and a userErrorCode of at most "
                       f"{MAX_NAME_LENGTH} characters."
        )
    return EndStream(stream_id, True, reason, code)


def _metadata(fields: dict[str, Any]) -> Metadata:
    value = fields.get("metadata")
    if value is None:
        return EMPTY
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ProtocolViolation("'metadata' must be an object of strings")
    try:
        validate_metadata(value)
    except InvalidMetadataError as exc:
        raise ProtocolViolation(str(exc)) from None
    return value


def _ttl(fields: dict[str, Any]) -> int | None:
    value = fields.get("ttlSeconds")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_TTL:
        raise ProtocolViolation(f"'ttlSeconds' must be an integer from 0 to {MAX_TTL}")
    return value


def _name(fields: dict[str, Any], key: str) -> str:
    value = fields.get(key)
    if not isinstance(value, str) or not value:
        raise ProtocolViolation(f"{key!r} must be a non-empty string")
    if len(value) > MAX_NAME_LENGTH:
        raise ProtocolViolation(f"{key!r} is longer than {MAX_NAME_LENGTH} characters")
    return value


def _integer(value: Any, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolViolation(f"{key!r} must be a non-negative integer")
    return value
