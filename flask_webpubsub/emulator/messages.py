"""Payloads and frames of the client protocols (docs/protocol.md section 8), without any I/O.

A :class:`Payload` is data with its type, from wherever it came (a REST body, a client frame, an
upstream reply); it knows how every kind of client receives it. :func:`parse_request` reads a
frame of a ``json.webpubsub.azure.v1`` / ``json.reliable.webpubsub.azure.v1`` client.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from flask_webpubsub.core.jsoncodec import decode_json, encode_json
from flask_webpubsub.core.wire import parse_media_type

JSON_SUBPROTOCOL = "json.webpubsub.azure.v1"
RELIABLE_SUBPROTOCOL = "json.reliable.webpubsub.azure.v1"
#: The largest frame or message body the service takes.
MAX_MESSAGE_BYTES = 1024 * 1024
#: The longest group, user or event name.
MAX_NAME_LENGTH = 1024

DataType = Literal["text", "json", "binary", "protobuf"]

_CONTENT_TYPES: dict[str, str] = {
    "text": "text/plain; charset=utf-8",
    "json": "application/json; charset=utf-8",
    "binary": "application/octet-stream",
    "protobuf": "application/x-protobuf",
}
_MEDIA_TYPES = {"text/plain": "text", "application/json": "json", "application/octet-stream":
                "binary", "application/x-protobuf": "protobuf"}


class ProtocolViolation(ValueError):
    """A client frame the subprotocol does not allow; the service closes the connection."""


@dataclass(frozen=True, eq=False)
class Payload:
    """Data and its type: ``text`` (str), ``json`` (the JSON text) or ``binary`` (bytes)."""

    data_type: DataType
    text: str = ""
    binary: bytes = b""

    @classmethod
    def from_http(cls, content_type: str | None, body: bytes, *, strict: bool = True) -> Payload:
        """A REST body or an upstream reply. Raises ``ValueError`` for an undecodable body, and
        with ``strict`` for a media type other than text, JSON and binary."""
        media_type, parameters = parse_media_type(content_type)
        data_type = _MEDIA_TYPES.get(media_type)
        if data_type is None:
            if strict:
                raise ValueError(
                    f"unsupported Content-Type {media_type!r}: use application/json, text/plain "
                    "or application/octet-stream"
                )
            data_type = "binary"
        if data_type in ("binary", "protobuf"):
            return cls(data_type, binary=body)  # type: ignore[arg-type]
        try:
            text = body.decode(parameters.get("charset") or "utf-8")
        except (LookupError, UnicodeDecodeError):
            raise ValueError("the body does not match its charset") from None
        if data_type == "json":
            _check_json(text)
            text = text.strip()
        return cls(data_type, text=text)  # type: ignore[arg-type]

    @classmethod
    def from_frame(cls, data_type: Any, data: Any) -> Payload:
        """The ``dataType`` and ``data`` of a client's ``sendToGroup`` or ``event`` frame."""
        if data_type is None:
            data_type = "json"
        if data_type == "json":
            return cls("json", text=encode_json(data).decode())
        if data_type == "text":
            if not isinstance(data, str):
                raise ProtocolViolation("data must be a string when dataType is 'text'")
            return cls("text", text=data)
        if data_type in ("binary", "protobuf"):
            if not isinstance(data, str):
                raise ProtocolViolation(f"data must be base64 text when dataType is {data_type!r}")
            try:
                return cls(data_type, binary=base64.b64decode(data, validate=True))
            except (binascii.Error, ValueError):
                raise ProtocolViolation("data is not valid base64") from None
        raise ProtocolViolation(f"unknown dataType {data_type!r}: use json, text or binary")

    @property
    def size(self) -> int:
        return len(self.binary) if self.data_type in ("binary", "protobuf") else len(self.text)

    @property
    def content_type(self) -> str:
        """The Content-Type this payload is forwarded upstream with."""
        return _CONTENT_TYPES[self.data_type]

    @property
    def body(self) -> bytes:
        """The bytes forwarded upstream."""
        return self.binary if self.data_type in ("binary", "protobuf") else self.text.encode()

    @cached_property
    def json_data(self) -> str:
        """The value of ``data`` in a JSON frame."""
        if self.data_type == "json":
            return self.text
        if self.data_type == "text":
            return json.dumps(self.text, ensure_ascii=False)
        return '"' + base64.b64encode(self.binary).decode("ascii") + '"'

    @property
    def simple_frame(self) -> str | bytes:
        """What a simple WebSocket client receives: a text frame, or binary for binary data."""
        return self.binary if self.data_type in ("binary", "protobuf") else self.text

    def preview(self, limit: int = 120) -> str:
        """A short, printable description for the live trace."""
        if self.data_type in ("binary", "protobuf"):
            return f"<{len(self.binary)} bytes>"
        return self.text if len(self.text) <= limit else self.text[:limit] + "…"


def _check_json(text: str) -> None:
    try:
        decode_json(text)
    except (ValueError, RecursionError):
        raise ValueError("the body is not valid JSON") from None


def _frame(fields: dict[str, Any], payload: Payload) -> str:
    head = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    return f'{head[:-1]},"dataType":"{payload.data_type}","data":{payload.json_data}}}'


def server_message(payload: Payload) -> str:
    """A message from the server (REST sends and upstream replies), for JSON clients."""
    return _frame({"type": "message", "from": "server"}, payload)


def group_message(payload: Payload, group: str, from_user_id: str | None) -> str:
    """A message a client sent to a group, for JSON clients."""
    fields: dict[str, Any] = {"type": "message", "from": "group", "group": group}
    if from_user_id is not None:
        fields["fromUserId"] = from_user_id
    return _frame(fields, payload)


def websocket_frame(data: str | bytes) -> bytes:
    """``data`` as one whole WebSocket frame from the server (RFC 6455 section 5.2): final,
    unmasked, uncompressed; a text frame for ``str``, a binary frame for ``bytes``."""
    if isinstance(data, str):
        first, payload = 0x81, data.encode()
    else:
        first, payload = 0x82, data
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", first, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", first, 126, size)
    else:
        header = struct.pack("!BBQ", first, 127, size)
    return header + payload


def with_sequence_id(frame: str, sequence_id: int) -> str:
    """A message frame for a reliable client: the same JSON object with ``sequenceId``."""
    return f'{{"sequenceId":{sequence_id},{frame[1:]}'


def connected_message(
    connection_id: str, user_id: str | None, reconnection_token: str | None
) -> str:
    fields: dict[str, Any] = {
        "type": "system",
        "event": "connected",
        "userId": user_id,
        "connectionId": connection_id,
    }
    if reconnection_token is not None:
        fields["reconnectionToken"] = reconnection_token
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False)


def disconnected_message(reason: str | None) -> str:
    return json.dumps(
        {"type": "system", "event": "disconnected", "message": reason or ""},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def ack_message(ack_id: int, error: str | None = None, message: str = "") -> str:
    fields: dict[str, Any] = {"type": "ack", "ackId": ack_id, "success": error is None}
    if error is not None:
        fields["error"] = {"name": error, "message": message}
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Request:
    """One frame from a JSON client."""

    type: Literal["joinGroup", "leaveGroup", "sendToGroup", "event", "sequenceAck"]
    ack_id: int | None = None
    group: str = ""
    event: str = ""
    payload: Payload | None = None
    no_echo: bool = False
    sequence_id: int = 0


def _name(frame: dict[str, Any], key: str) -> str:
    value = frame.get(key)
    if not isinstance(value, str) or not value:
        raise ProtocolViolation(f"{key!r} must be a non-empty string")
    if len(value) > MAX_NAME_LENGTH:
        raise ProtocolViolation(f"{key!r} is longer than {MAX_NAME_LENGTH} characters")
    return value


def _integer(value: Any, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolViolation(f"{key!r} must be a non-negative integer")
    return value


def parse_request(text: str, *, reliable: bool) -> Request:
    """Read a client frame; raises :class:`ProtocolViolation` with the reason."""
    try:
        frame = decode_json(text)
    except (ValueError, RecursionError):
        raise ProtocolViolation("the frame is not valid JSON") from None
    if not isinstance(frame, dict):
        raise ProtocolViolation("the frame is not a JSON object")
    kind = frame.get("type")
    ack_id = frame.get("ackId")
    if ack_id is not None:
        ack_id = _integer(ack_id, "ackId")
    if kind in ("joinGroup", "leaveGroup"):
        return Request(kind, ack_id=ack_id, group=_name(frame, "group"))
    if kind == "sendToGroup":
        no_echo = frame.get("noEcho", False)
        if not isinstance(no_echo, bool):
            raise ProtocolViolation("'noEcho' must be true or false")
        return Request(
            kind,
            ack_id=ack_id,
            group=_name(frame, "group"),
            payload=Payload.from_frame(frame.get("dataType"), frame.get("data")),
            no_echo=no_echo,
        )
    if kind == "event":
        return Request(
            kind,
            ack_id=ack_id,
            event=_name(frame, "event"),
            payload=Payload.from_frame(frame.get("dataType"), frame.get("data")),
        )
    if kind == "sequenceAck" and reliable:
        return Request(kind, sequence_id=_integer(frame.get("sequenceId"), "sequenceId"))
    raise ProtocolViolation(f"unknown message type {str(kind)[:40]!r}")
