"""The one interface of every client protocol: a codec turns a client's frame into a
:data:`~.messages.Request` and a :data:`~.messages.Message` into a frame.

A new client protocol is a new codec; delivery, acks, recovery, permissions, the upstream and the
REST API work with requests and messages only, and stay as they are.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TypeAlias

from .messages import Message, Request

#: What one WebSocket data frame carries, as a client sends or receives it: text for ``str``,
#: binary for ``bytes`` (the service sends every message in one frame).
Frame: TypeAlias = "str | bytes"


class ProtocolViolation(ValueError):
    """A client frame its protocol does not allow; the service closes the connection."""


class Codec(ABC):
    """A client protocol's frames."""

    #: The WebSocket subprotocol it speaks; None for a plain WebSocket client.
    subprotocol: str | None = None

    @abstractmethod
    def decode(self, frame: Frame) -> Request:
        """The request a client's frame makes; :class:`ProtocolViolation` says why there is
        none."""

    @abstractmethod
    def encode(self, message: Message) -> Frame | None:
        """The frame of a message, or None when the protocol has no such message (a plain
        WebSocket client gets data only)."""

    @property
    def encoder(self) -> Codec:
        """The codec whose frames this one sends: itself, unless it differs only in what it
        reads (messages are encoded once per encoder, for all the clients that share it)."""
        return self


class ReliableCodec(Codec):
    """A protocol whose clients acknowledge data messages by sequence id and, after a drop,
    recover the same connection and get again what they had not acknowledged."""

    @abstractmethod
    def number(self, frame: Frame, sequence_id: int) -> Frame:
        """A data message's frame (from :meth:`encode`) with its sequence id."""
