"""Typed Web PubSub events and the replies handlers give.

Every event carries its connection's context (hub, connection id, user, state ...). Blocking
events (:class:`ConnectEvent`, :class:`UserEvent`) are answered by the handler's return value;
the others are notifications.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeAlias

from .payload import validate_metadata
from .state import read_state_header
from .wire import BINARY_CONTENT_TYPE, DataType

if TYPE_CHECKING:
    from cloudevents.http import CloudEvent

#: A value that JSON can represent.
JsonValue: TypeAlias = "dict[str, Any] | list[Any] | str | int | float | bool | None"

_NO_METADATA: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class ClientCertificate:
    """A client certificate the service received during the TLS handshake."""

    thumbprint: str
    content: str = field(repr=False)


@dataclass(frozen=True)
class MqttUserProperty:
    """One MQTT 5 user property."""

    name: str
    value: str


@dataclass
class MqttProperties:
    """What every event of an MQTT client carries besides the common context."""

    physical_connection_id: str
    #: The MQTT session; sent on every event but ``connect``.
    session_id: str | None = None


@dataclass
class MqttConnectProperties(MqttProperties):
    """The MQTT CONNECT packet's properties."""

    protocol_version: int = 4
    username: str | None = None
    #: The password as the service sends it: base64 of the packet's password bytes; None when
    #: the client sent none. Never shown in a repr.
    password: str | None = field(default=None, repr=False)
    user_properties: list[MqttUserProperty] = field(default_factory=list)

    @property
    def password_bytes(self) -> bytes | None:
        """The password's bytes (:attr:`password` decoded); None when there is none, or when
        it is not valid base64 (the connect is not refused for it: the handler decides)."""
        if self.password is None:
            return None
        try:
            return base64.b64decode(self.password, validate=True)
        except (binascii.Error, ValueError):
            return None


@dataclass
class MqttMessageProperties(MqttProperties):
    """MQTT 5 user properties of a PUBLISH packet, from the ``mqtt-<name>`` headers."""

    user_properties: list[MqttUserProperty] = field(default_factory=list)


@dataclass
class MqttDisconnectProperties(MqttProperties):
    """How an MQTT client went away."""

    initiated_by_client: bool | None = None
    disconnect_packet: dict[str, Any] | None = None


@dataclass(eq=False)
class WebPubSubEvent:
    """The context every Web PubSub event carries."""

    #: The hub name, as the service sent it (lower case).
    hub: str
    connection_id: str
    #: ``connect``, ``connected``, ``disconnected``, ``joined``, ``left`` or the user event name.
    event_name: str
    #: The full CloudEvents type, such as ``azure.webpubsub.user.message``.
    type: str
    #: None for anonymous connections.
    user_id: str | None = None
    subprotocol: str | None = None
    #: The ``ce-connectionState`` header as it arrived; :attr:`state` is its decoded form.
    state_header: str | None = field(default=None, repr=False)
    #: The service host that sent the event.
    origin: str | None = None
    #: The CloudEvents ``id`` and ``time`` attributes.
    id: str | None = None
    time: str | None = None
    #: For MQTT clients only.
    mqtt: MqttProperties | None = None
    _attributes: Mapping[str, str] = field(default_factory=dict, repr=False)
    _state: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def state(self) -> dict[str, Any]:
        """The connection state: a dict to read and change. Blocking handlers' changes are sent
        back, and the service keeps them. Decoded on first use, so handlers that never look at
        it cost nothing; an invalid header reads as ``{}`` (and is logged)."""
        if self._state is None:
            self._state = read_state_header(self.state_header)
        return self._state

    @state.setter
    def state(self, value: dict[str, Any]) -> None:
        self._state = value

    @property
    def state_loaded(self) -> bool:
        """Whether :attr:`state` was read or set."""
        return self._state is not None

    @property
    def is_mqtt(self) -> bool:
        """Whether the client connected over MQTT."""
        return self.mqtt is not None

    def _cloudevent_data(self) -> Any:
        return None

    @cached_property
    def cloudevent(self) -> CloudEvent:
        """This event as a ``cloudevents`` SDK event, for other CloudEvents tooling.

        Built on first access; its attributes are exactly the ``ce-*`` headers that arrived.
        """
        try:
            from cloudevents.http import CloudEvent
        except ImportError:  # cloudevents 2 keeps the 1.x API under cloudevents.v1
            from cloudevents.v1.http import CloudEvent

        return CloudEvent(dict(self._attributes), self._cloudevent_data())


@dataclass(eq=False)
class ConnectEvent(WebPubSubEvent):
    """A client asks to connect: accept (return a :class:`ConnectResponse` or None) or ``abort``."""

    claims: dict[str, list[str]] = field(default_factory=dict, repr=False)
    query: dict[str, list[str]] = field(default_factory=dict, repr=False)
    headers: dict[str, list[str]] = field(default_factory=dict, repr=False)
    subprotocols: list[str] = field(default_factory=list)
    client_certificates: list[ClientCertificate] = field(default_factory=list, repr=False)
    mqtt: MqttConnectProperties | None = None
    _body: dict[str, Any] = field(default_factory=dict, repr=False)

    def _cloudevent_data(self) -> Any:
        return self._body


@dataclass(eq=False)
class ConnectedEvent(WebPubSubEvent):
    """The client is connected."""


@dataclass(eq=False)
class UserEvent(WebPubSubEvent):
    """A message from a client; the handler's return value is the reply to it."""

    #: ``str`` for text, the decoded value for JSON, ``bytes`` for anything else.
    data: JsonValue | bytes = None
    data_type: DataType = "binary"
    #: The media type the payload arrived with, without parameters.
    content_type: str = BINARY_CONTENT_TYPE
    #: The message's metadata (the ``x-webpubsub-metadata-{key}`` headers), read-only; keys
    #: lower-cased, as header names have no case.
    metadata: Mapping[str, str] = field(default_factory=lambda: _NO_METADATA)
    mqtt: MqttMessageProperties | None = None

    def _cloudevent_data(self) -> Any:
        return self.data


@dataclass(eq=False)
class DisconnectedEvent(WebPubSubEvent):
    """The client is gone."""

    reason: str | None = None
    mqtt: MqttDisconnectProperties | None = None

    def _cloudevent_data(self) -> Any:
        return {"reason": self.reason}


@dataclass(eq=False)
class GroupEvent(WebPubSubEvent):
    """A connection joined or left a group."""

    group: str = ""

    def _cloudevent_data(self) -> Any:
        return {"group": self.group}


@dataclass(eq=False)
class GroupJoinedEvent(GroupEvent):
    """A connection joined a group (``azure.webpubsub.gp.joined``)."""


@dataclass(eq=False)
class GroupLeftEvent(GroupEvent):
    """A connection left a group (``azure.webpubsub.gp.left``)."""


@dataclass(frozen=True)
class ConnectResponse:
    """Accept a connection, setting who it is and where it belongs. Every field is optional."""

    user_id: str | None = None
    groups: Sequence[str] | None = None
    roles: Sequence[str] | None = None
    #: Must be one of :attr:`ConnectEvent.subprotocols`.
    subprotocol: str | None = None
    #: MQTT 5 user properties sent back in the CONNACK packet.
    mqtt_user_properties: Sequence[MqttUserProperty] | None = None


@dataclass(frozen=True)
class UserEventResponse:
    """An explicit reply to a user event, for when the Python type does not say the wire type.

    ``UserEventResponse("hi", data_type="json")`` replies with the JSON string ``"hi"``;
    ``UserEventResponse(b'{"a":1}', data_type="json")`` sends already-encoded JSON as it is;
    ``UserEventResponse({"a": 1})`` is the same as returning the dict;
    ``UserEventResponse("hi", metadata={"lang": "en"})`` sends metadata with the message, and
    ``UserEventResponse(metadata={"seen": "1"})`` metadata alone (a 204, with no payload).
    Invalid metadata raises ``TypeError`` or :class:`.payload.InvalidMetadataError` here.
    """

    data: JsonValue | bytes = None
    data_type: DataType | None = None
    #: Metadata for the message the client receives (``x-webpubsub-metadata-{key}`` headers):
    #: string keys and values within the service's limits, checked here
    #: (:func:`.payload.validate_metadata`); keys are kept lower-cased, as they travel.
    metadata: Mapping[str, str] = field(default_factory=lambda: _NO_METADATA, kw_only=True)
    #: For MQTT 5 clients: user properties of the reply's PUBLISH (``mqtt-{name}`` headers).
    #: A name is an HTTP token, a value printable ASCII.
    mqtt_user_properties: Sequence[MqttUserProperty] = field(default=(), kw_only=True)

    def __post_init__(self) -> None:
        if self.metadata is not _NO_METADATA:
            object.__setattr__(self, "metadata", MappingProxyType(validate_metadata(self.metadata)))
