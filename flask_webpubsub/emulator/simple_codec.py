"""Plain WebSocket clients (no subprotocol): every frame they send is a ``message`` user event,
and they receive data as it is (text frames for text and JSON, binary frames for binary)."""

from __future__ import annotations

from .codec import Codec, Frame
from .messages import DataMessage, Message, Request, SendEvent
from .payload import Payload

#: The user event a plain WebSocket client's frames raise.
MESSAGE_EVENT = "message"


class SimpleCodec(Codec):
    subprotocol = None

    def decode(self, frame: Frame) -> Request:
        if isinstance(frame, str):
            return SendEvent(MESSAGE_EVENT, Payload("text", text=frame))
        return SendEvent(MESSAGE_EVENT, Payload("binary", binary=frame))

    def encode(self, message: Message) -> Frame | None:
        if isinstance(message, DataMessage):
            payload = message.payload
            return payload.binary if payload.is_binary else payload.text
        return None  # no acks and no system messages


SIMPLE = SimpleCodec()
