"""What clients and the service say to each other, in no client protocol in particular.

A codec decodes a client's frame into a :data:`Request` and encodes a :data:`Message` into a
frame; everything else (permissions, groups, delivery, acks, recovery, the upstream, the REST
API) works with these alone.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeAlias

from .payload import Payload
from .rawframe import OutgoingFrame

# -- requests: client to service ----------------------------------------------------------------


@dataclass(frozen=True)
class JoinGroup:
    group: str
    ack_id: int | None = None


@dataclass(frozen=True)
class LeaveGroup:
    group: str
    ack_id: int | None = None


#: A message's metadata (a preview feature of the service): string keys and values, which travel
#: beside the data to its receivers and as ``x-webpubsub-metadata-*`` headers to the upstream.
Metadata: TypeAlias = Mapping[str, str]
#: No metadata.
EMPTY: Metadata = MappingProxyType({})
#: The longest time to live a message may have, in seconds (the REST API's limit too).
MAX_TTL = 300


@dataclass(frozen=True)
class SendToGroup:
    group: str
    payload: Payload
    ack_id: int | None = None
    #: The sender does not receive its own message.
    no_echo: bool = False
    metadata: Metadata = field(default_factory=dict)
    #: Members who have not received it within this many seconds never do (None: no limit).
    ttl: int | None = None


@dataclass(frozen=True)
class SendEvent:
    """A user event for the upstream; its reply, if any, goes back to the sender."""

    event: str
    payload: Payload
    ack_id: int | None = None
    metadata: Metadata = field(default_factory=dict)


@dataclass(frozen=True)
class SequenceAck:
    """A reliable client has every data message up to ``sequence_id``."""

    sequence_id: int


@dataclass(frozen=True)
class Ping:
    """A client's keep-alive: the service answers :class:`Pong`, and the client knows the
    connection is alive (``@azure/web-pubsub-client`` sends one every 20 s)."""


@dataclass(frozen=True)
class Invoke:
    """A user event whose reply comes back as the :class:`InvokeResponse` of
    ``invocation_id`` (or as its failure), while the client's other requests go on."""

    invocation_id: str
    event: str
    #: None: the client sent no data.
    payload: Payload | None
    #: What the invocation calls: only ``"event"`` (the upstream) is served.
    target: str = "event"
    metadata: Metadata = field(default_factory=dict)


@dataclass(frozen=True)
class CancelInvocation:
    """The client no longer waits for an invocation: the service stops it and answers
    nothing."""

    invocation_id: str


@dataclass(frozen=True)
class StartStream:
    """A group stream (client spec 3.6): fragments to ``group``, ordered by their stream
    sequence ids, each acknowledged to the publisher."""

    group: str
    stream_id: str
    no_echo: bool = False
    #: Seconds without data or keep-alive after which the service ends it (None: the default).
    idle_timeout: float | None = None


@dataclass(frozen=True)
class StreamData:
    """A fragment of a stream, or with neither sequence id nor payload a keep-alive."""

    stream_id: str
    sequence_id: int | None = None
    payload: Payload | None = None


@dataclass(frozen=True)
class EndStream:
    """The publisher ends a stream, normally or (``failed``) with its own error."""

    stream_id: str
    failed: bool = False
    reason: str | None = None
    user_error_code: str | None = None


@dataclass(frozen=True)
class InvalidStreamRequest:
    """A stream request its protocol does not allow, about a stream it names: the stream is
    refused or ended (BadRequest), the connection stays."""

    stream_id: str
    reason: str


Request: TypeAlias = (
    JoinGroup | LeaveGroup | SendToGroup | SendEvent | SequenceAck | Ping | Invoke
    | CancelInvocation | StartStream | StreamData | EndStream | InvalidStreamRequest
)

# -- messages: service to client ----------------------------------------------------------------


@dataclass(frozen=True)
class StreamInfo:
    """Where a group message stands in a stream: its fragment's sequence id, or, for the
    stream's terminal message, the next one (``end``), with the error that ended it, if any."""

    stream_id: str
    sequence_id: int
    end: bool = False
    error: str | None = None
    reason: str | None = None
    #: The publisher's own error code, with error ``UserError``.
    user_error_code: str | None = None


@dataclass(eq=False)
class DataMessage:
    """Data for clients: from the server (REST sends, upstream replies), or sent to ``group``
    by a client (``from_user_id``, when it has one), as a stream fragment too (``stream``)."""

    payload: Payload
    group: str | None = None
    from_user_id: str | None = None
    metadata: Metadata = field(default_factory=dict)
    stream: StreamInfo | None = None
    #: Seconds from now within which it must reach a client, or never (None: no limit).
    ttl: float | None = None
    #: The group a server message (a REST send to a group) went to: MQTT subscribers get it on
    #: that topic (clients of the Web PubSub protocols get it as a server message).
    sent_to_group: str | None = None
    #: The QoS it was published with: an MQTT client's PUBLISH QoS; 1 for everything else (an
    #: MQTT subscriber gets it at the lower of this and its subscription's QoS).
    qos: int = 1
    #: The MQTT 5 properties of an MQTT client's PUBLISH, passed on to MQTT subscribers.
    mqtt_properties: object = None
    #: The :func:`time.monotonic` time after which it is dropped (from ``ttl``).
    expires: float | None = field(default=None, init=False)
    #: Its frame in each client protocol, by codec: encoded once for all recipients of the
    #: protocol (None when the protocol has no such message).
    frames: dict[object, OutgoingFrame | None] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        if self.ttl:  # 0, as in the service's REST API, means no limit
            self.expires = time.monotonic() + self.ttl


@dataclass(frozen=True)
class Ack:
    """The answer to a request that carried an ack id: success, or an error name and why."""

    ack_id: int
    error: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class Connected:
    connection_id: str
    user_id: str | None
    #: Lets a client of a reliable protocol recover this connection after a drop.
    reconnection_token: str | None = None


@dataclass(frozen=True)
class Disconnected:
    reason: str | None


@dataclass(frozen=True)
class Pong:
    """The answer to a :class:`Ping`."""


@dataclass(frozen=True)
class InvokeResponse:
    """The outcome of an :class:`Invoke`: the upstream's reply (None when it had no data), or
    an error name and why."""

    invocation_id: str
    payload: Payload | None = None
    error: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class StreamAck:
    """The service has every fragment of the stream before ``expected``."""

    stream_id: str
    expected: int


@dataclass(frozen=True)
class StreamNack:
    """A fragment was not taken (``InvalidSequenceId``: send again from ``expected``); the
    stream goes on."""

    stream_id: str
    expected: int
    error: str
    reason: str


@dataclass(frozen=True)
class StreamClosed:
    """A stream of the publisher is over: ended by it (no error), or refused or ended by the
    service, with the error name and why."""

    stream_id: str
    error: str | None = None
    reason: str = ""


Message: TypeAlias = (
    DataMessage | Ack | Connected | Disconnected | Pong | InvokeResponse | StreamAck
    | StreamNack | StreamClosed
)
