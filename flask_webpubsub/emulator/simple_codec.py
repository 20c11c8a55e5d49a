"""Plain WebSocket clients (no subprotocol), in the two modes the service gives them
(concept-client-protocols.md, "The simple WebSocket client"): in ``sendEvent`` mode, the default,
every frame they send is a ``message`` user event; in ``sendToGroup`` mode
(``?webpubsub_mode=sendToGroup&group=<g>``, optionally ``&noEcho=true``) every frame is a message
to that one group. Either way they receive data as it is (text frames for text and JSON, binary
frames for binary), and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask_webpubsub.core.wire import MAX_NAME_LENGTH

from .codec import Codec, Frame
from .messages import DataMessage, Message, Request, SendEvent, SendToGroup
from .payload import Payload

#: The user event a plain WebSocket client's frames raise in ``sendEvent`` mode.
MESSAGE_EVENT = "message"


class SimpleCodec(Codec):
    subprotocol = None

    def decode(self, frame: Frame) -> Request:
        return SendEvent(MESSAGE_EVENT, _payload(frame))

    def encode(self, message: Message) -> Frame | None:
        if isinstance(message, DataMessage):
            if message.stream is not None and message.stream.end:
                return None  # a stream's end is no data, and a plain client sees nothing else
            payload = message.payload
            return payload.binary if payload.is_binary else payload.text
        return None  # no acks and no system messages


SIMPLE = SimpleCodec()


class GroupModeCodec(SimpleCodec):
    """A plain client in ``sendToGroup`` mode: its frames go to ``group``."""

    def __init__(self, group: str, no_echo: bool) -> None:
        self.group = group
        self.no_echo = no_echo

    @property
    def encoder(self) -> Codec:
        return SIMPLE

    def decode(self, frame: Frame) -> Request:
        return SendToGroup(self.group, _payload(frame), no_echo=self.no_echo)


class InvalidMode(ValueError):
    """A plain client's mode parameters the service refuses; the message says why."""


def codec_for(query: Mapping[str, list[str]]) -> SimpleCodec:
    """The codec of a plain client with these query parameters (each with all its values)."""
    mode = _single(query, "webpubsub_mode") or "sendEvent"
    if mode.lower() == "sendevent":
        return SIMPLE
    if mode.lower() != "sendtogroup":
        raise InvalidMode(f"Unknown webpubsub_mode {mode[:40]!r}: use sendEvent or sendToGroup.")
    group = _single(query, "group")
    if not group or len(group) > MAX_NAME_LENGTH:
        raise InvalidMode(
            f"webpubsub_mode=sendToGroup needs one group: 1 to {MAX_NAME_LENGTH} characters."
        )
    no_echo = (_single(query, "noEcho") or "false").lower()
    if no_echo not in ("true", "false"):
        raise InvalidMode("noEcho must be true or false.")
    return GroupModeCodec(group, no_echo == "true")


def _single(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name, [])
    if len(values) > 1:
        raise InvalidMode(f"{name} may be given once only.")
    return values[0] if values else None


def _payload(frame: Frame) -> Payload:
    if isinstance(frame, str):
        return Payload("text", text=frame)
    return Payload("binary", binary=frame)
