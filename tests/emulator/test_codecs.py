"""Each codec behind the one codec interface: client frames (as the official clients write them)
decode to the protocol-neutral requests, and the neutral messages encode to the frames those
clients read."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from flask_webpubsub.emulator.codec import Codec, ProtocolViolation, ReliableCodec
from flask_webpubsub.emulator.json_codec import JSON, RELIABLE_JSON
from flask_webpubsub.emulator.messages import (
    Ack,
    CancelInvocation,
    Connected,
    DataMessage,
    Disconnected,
    Invoke,
    InvokeResponse,
    JoinGroup,
    LeaveGroup,
    Message,
    Ping,
    Pong,
    Request,
    SendEvent,
    SendToGroup,
    SequenceAck,
)
from flask_webpubsub.emulator.payload import Payload
from flask_webpubsub.emulator.simple_codec import SIMPLE, GroupModeCodec, codec_for

TEXT = Payload("text", text="héllo")
JSON_DATA = Payload("json", text='{"n":[1,2]}')
BINARY = Payload("binary", binary=b"\x00\xff")
PROTOBUF = Payload("protobuf", binary=b"\x08\x01")
PAYLOADS = [TEXT, JSON_DATA, BINARY, PROTOBUF]


def client_data(payload: Payload) -> dict[str, Any]:
    """``dataType`` and ``data`` as a JSON client writes them."""
    if payload.data_type == "json":
        return {"dataType": "json", "data": json.loads(payload.text)}
    if payload.data_type == "text":
        return {"dataType": "text", "data": payload.text}
    return {"dataType": payload.data_type, "data": base64.b64encode(payload.binary).decode()}


def client_frame(request: Request) -> str:
    """A request as a JSON client writes it."""
    fields: dict[str, Any]
    if isinstance(request, SequenceAck):
        return json.dumps({"type": "sequenceAck", "sequenceId": request.sequence_id})
    if isinstance(request, Ping):
        return json.dumps({"type": "ping"})
    if isinstance(request, CancelInvocation):
        return json.dumps({"type": "cancelInvocation", "invocationId": request.invocation_id})
    if isinstance(request, Invoke):
        # As @azure/web-pubsub-client writes it: no dataType and no data when it has none.
        fields = {"type": "invoke", "invocationId": request.invocation_id,
                  "target": request.target, "event": request.event}
        if request.payload is not None:
            fields.update(client_data(request.payload))
        return json.dumps(fields)
    if isinstance(request, JoinGroup):
        fields = {"type": "joinGroup", "group": request.group}
    elif isinstance(request, LeaveGroup):
        fields = {"type": "leaveGroup", "group": request.group}
    elif isinstance(request, SendToGroup):
        fields = {"type": "sendToGroup", "group": request.group, "noEcho": request.no_echo,
                  **client_data(request.payload)}
    else:
        assert isinstance(request, SendEvent), request
        fields = {"type": "event", "event": request.event, **client_data(request.payload)}
    if request.ack_id is not None:
        fields["ackId"] = request.ack_id
    return json.dumps(fields)


REQUESTS: list[Request] = [
    JoinGroup("room"),
    JoinGroup("room", ack_id=1),
    LeaveGroup("room", ack_id=2),
    *(SendToGroup("room", payload, ack_id=3) for payload in PAYLOADS),
    SendToGroup("room", TEXT, no_echo=True),
    *(SendEvent("chat", payload, ack_id=4) for payload in PAYLOADS),
    SendEvent("chat", JSON_DATA),
    *(Invoke("7", "chat", payload) for payload in PAYLOADS),
    Invoke("8", "chat", None),
    Invoke("9", "room", TEXT, target="group"),
    CancelInvocation("7"),
]


@pytest.mark.parametrize("codec", [JSON, RELIABLE_JSON], ids=["json", "reliable"])
@pytest.mark.parametrize("request_", REQUESTS, ids=repr)
def test_json_codecs_decode_every_request(codec: Codec, request_: Request) -> None:
    assert codec.decode(client_frame(request_)) == request_


def test_json_data_without_a_type_is_json() -> None:
    frame = '{"type": "sendToGroup", "group": "g", "data": {"a": 1}}'
    assert JSON.decode(frame) == SendToGroup("g", Payload("json", text='{"a":1}'))


@pytest.mark.parametrize("codec", [JSON, RELIABLE_JSON], ids=["json", "reliable"])
def test_json_codecs_answer_ping_with_pong(codec: Codec) -> None:
    assert codec.decode('{"type": "ping"}') == Ping()
    assert codec.encode(Pong()) == '{"type":"pong"}'


def test_only_the_reliable_codec_takes_sequence_acks() -> None:
    frame = client_frame(SequenceAck(7))
    assert RELIABLE_JSON.decode(frame) == SequenceAck(7)
    with pytest.raises(ProtocolViolation, match="unknown message type 'sequenceAck'"):
        JSON.decode(frame)


@pytest.mark.parametrize("codec", [JSON, RELIABLE_JSON], ids=["json", "reliable"])
def test_json_codecs_refuse_binary_frames(codec: Codec) -> None:
    with pytest.raises(ProtocolViolation, match="binary frames are not allowed"):
        codec.decode(client_frame(JoinGroup("g")).encode())


def server_view(payload: Payload, data: Any) -> Payload:
    """What a JSON client makes of a message's ``dataType`` and ``data``."""
    if payload.data_type == "json":
        return Payload("json", text=json.dumps(data, separators=(",", ":")))
    if payload.data_type == "text":
        return Payload("text", text=data)
    return Payload(payload.data_type, binary=base64.b64decode(data))


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.data_type)
@pytest.mark.parametrize("codec", [JSON, RELIABLE_JSON], ids=["json", "reliable"])
def test_json_codecs_encode_data_messages(codec: Codec, payload: Payload) -> None:
    from_server = codec.encode(DataMessage(payload))
    assert isinstance(from_server, str)
    fields = json.loads(from_server)
    assert (fields["type"], fields["from"], fields["dataType"]) == (
        "message", "server", payload.data_type
    )
    assert server_view(payload, fields["data"]) == payload
    from_group = codec.encode(DataMessage(payload, group="room", from_user_id="ann"))
    assert isinstance(from_group, str)
    fields = json.loads(from_group)
    assert (fields["from"], fields["group"], fields["fromUserId"]) == ("group", "room", "ann")
    anonymous = codec.encode(DataMessage(payload, group="room"))
    assert isinstance(anonymous, str)
    assert "fromUserId" not in json.loads(anonymous)


MESSAGES: list[tuple[Message, dict[str, Any]]] = [
    (Ack(5), {"type": "ack", "ackId": 5, "success": True}),
    (Ack(6, "Forbidden", "no"),
     {"type": "ack", "ackId": 6, "success": False,
      "error": {"name": "Forbidden", "message": "no"}}),
    (Connected("c1", None),
     {"type": "system", "event": "connected", "userId": None, "connectionId": "c1"}),
    (Connected("c1", "ann", "t0k3n"),
     {"type": "system", "event": "connected", "userId": "ann", "connectionId": "c1",
      "reconnectionToken": "t0k3n"}),
    (Disconnected("bye"), {"type": "system", "event": "disconnected", "message": "bye"}),
    (Disconnected(None), {"type": "system", "event": "disconnected", "message": ""}),
    (InvokeResponse("i1"), {"type": "invokeResponse", "invocationId": "i1", "success": True}),
    (InvokeResponse("i2", JSON_DATA),
     {"type": "invokeResponse", "invocationId": "i2", "success": True, "dataType": "json",
      "data": {"n": [1, 2]}}),
    (InvokeResponse("i3", TEXT),
     {"type": "invokeResponse", "invocationId": "i3", "success": True, "dataType": "text",
      "data": "héllo"}),
    (InvokeResponse("i4", error="InvocationFailed", reason="500"),
     {"type": "invokeResponse", "invocationId": "i4", "success": False,
      "error": {"name": "InvocationFailed", "message": "500"}}),
]


@pytest.mark.parametrize("codec", [JSON, RELIABLE_JSON], ids=["json", "reliable"])
@pytest.mark.parametrize(("message", "expected"), MESSAGES, ids=repr)
def test_json_codecs_encode_acks_and_system_messages(
    codec: Codec, message: Message, expected: dict[str, Any]
) -> None:
    frame = codec.encode(message)
    assert isinstance(frame, str)
    assert json.loads(frame) == expected


def test_the_reliable_codec_numbers_data_messages() -> None:
    assert isinstance(RELIABLE_JSON, ReliableCodec)
    assert not isinstance(JSON, ReliableCodec)
    frame = RELIABLE_JSON.encode(DataMessage(TEXT, group="room"))
    assert frame is not None
    numbered = json.loads(RELIABLE_JSON.number(frame, 42))
    assert numbered == {"sequenceId": 42, **json.loads(frame)}


def test_the_simple_codec_makes_every_frame_a_message_event() -> None:
    assert SIMPLE.decode("hi") == SendEvent("message", Payload("text", text="hi"))
    assert SIMPLE.decode(b"\x00") == SendEvent("message", Payload("binary", binary=b"\x00"))


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.data_type)
def test_the_simple_codec_sends_data_as_it_is(payload: Payload) -> None:
    frame = SIMPLE.encode(DataMessage(payload, group="room", from_user_id="ann"))
    assert frame == (payload.binary if payload.is_binary else payload.text)


@pytest.mark.parametrize("message", [*(message for message, _ in MESSAGES), Pong()], ids=repr)
def test_the_simple_codec_has_no_acks_nor_system_messages(message: Message) -> None:
    assert SIMPLE.encode(message) is None


def test_a_plain_client_in_group_mode_sends_to_its_group_and_reads_like_any_plain_client() -> None:
    codec = codec_for({"webpubsub_mode": ["sendToGroup"], "group": ["room"], "noEcho": ["true"]})
    assert isinstance(codec, GroupModeCodec)
    assert codec.decode("hi") == SendToGroup("room", Payload("text", text="hi"), no_echo=True)
    assert codec.decode(b"\x01") == SendToGroup("room", Payload("binary", binary=b"\x01"),
                                                no_echo=True)
    # Messages are encoded once for every plain client, whatever its mode.
    assert codec.encoder is SIMPLE
    assert codec_for({}) is SIMPLE
    assert codec_for({"webpubsub_mode": ["sendEvent"]}) is SIMPLE
