"""Test your handlers in one line: signed events sent exactly as the service sends them.

::

    from flask_webpubsub.testing import WebPubSubTestClient

    def test_echo(app):
        client = WebPubSubTestClient(app)
        connection = client.connect(user_id="alice")
        assert connection.accepted
        assert connection.user_event("echo", "hi").data == "hi"

A :class:`WebPubSubTestClient` talks to an app through Flask's test client, or to a running
server through its base URL. Each :class:`TestConnection` is one simulated client connection:
like the service, it keeps the user id, groups, roles and connection state the app's replies set,
and sends them with every later event. A :class:`MqttTestClient` is one simulated MQTT client,
with sessions that outlive its network connections. Signatures, state and payloads go through
the same codecs the extension uses.
"""

from __future__ import annotations

import itertools
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from werkzeug.datastructures import Headers

from .binding import EXTENSION_KEY, AppBinding
from .core import mqtt as mqtt_facts
from .core.endpoint import parse_connection_string
from .core.errors import MalformedEvent
from .core.events import ConnectResponse, MqttUserProperty
from .core.jsoncodec import encode_json
from .core.payload import (
    InvalidMetadataError,
    decode_payload,
    encode_payload,
    metadata_headers,
    read_metadata,
    validate_metadata,
)
from .core.service import (
    Admission,
    admit,
    build_event_headers,
    decode_connect_reply,
    read_rejection,
)
from .core.state import decode_state
from .core.wire import BINARY_CONTENT_TYPE, JSON_CONTENT_TYPE, MQTT_SUBPROTOCOL, DataType

__all__ = [
    "ConnectResult",
    "EventResult",
    "HTTPResult",
    "MqttConnectResult",
    "MqttMessage",
    "MqttTestClient",
    "TestConnection",
    "WebPubSubTestClient",
]

#: Request headers: a mapping, or ``(name, value)`` pairs to send a header more than once.
HeaderItems = Mapping[str, str] | Sequence[tuple[str, str]]


@dataclass(frozen=True)
class HTTPResult:
    """An HTTP reply from the event handler."""

    status: int
    headers: Headers = field(repr=False)
    body: bytes = field(repr=False)

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    @property
    def reason(self) -> str | None:
        """The rejection reason of a non-2xx reply (text, or the MQTT JSON form's reason)."""
        return None if self.ok else read_rejection(self.body)[0]

    @property
    def state_header(self) -> str | None:
        """The ``ce-connectionState`` header of the reply, if any."""
        return self.headers.get("ce-connectionState")


@dataclass(frozen=True)
class ConnectResult(HTTPResult):
    """The reply to ``connect``: accepted (2xx) or rejected, and what the app set."""

    response: ConnectResponse | None = None

    @property
    def accepted(self) -> bool:
        return self.ok

    @property
    def user_id(self) -> str | None:
        return self.response.user_id if self.response else None

    @property
    def groups(self) -> list[str]:
        return list(self.response.groups or ()) if self.response else []

    @property
    def roles(self) -> list[str]:
        return list(self.response.roles or ()) if self.response else []

    @property
    def subprotocol(self) -> str | None:
        return self.response.subprotocol if self.response else None

    @property
    def mqtt_code(self) -> int | None:
        """The MQTT CONNACK code of a rejected MQTT connection."""
        return None if self.ok else read_rejection(self.body)[1]


@dataclass(frozen=True)
class EventResult(HTTPResult):
    """The reply to a user event (or 200 for a notification)."""

    #: The reply payload: ``str`` for text, the value for JSON, ``bytes`` for binary, None if
    #: there is none.
    data: Any = None
    data_type: DataType | None = None
    #: The metadata of the message the client receives (the reply's
    #: ``x-webpubsub-metadata-*`` headers), keys lower-cased.
    metadata: Mapping[str, str] = field(default_factory=dict)


class TestConnection:
    """One simulated client connection."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        client: WebPubSubTestClient,
        connection_id: str,
        *,
        user_id: str | None,
        subprotocol: str | None,
        mqtt: bool,
        hub: str,
    ) -> None:
        self.client = client
        self.connection_id = connection_id
        self.hub = hub
        self.user_id = user_id
        self.subprotocol = subprotocol
        self.groups: list[str] = []
        self.roles: list[str] = []
        #: The connection state, as the service keeps it.
        self.state: dict[str, Any] = {}
        self.physical_connection_id = uuid.uuid4().hex if mqtt else None
        self.session_id = uuid.uuid4().hex if mqtt else None
        self.result: ConnectResult | None = None

    def __repr__(self) -> str:
        return f"<TestConnection {self.connection_id!r} user={self.user_id!r} hub={self.hub!r}>"

    @property
    def accepted(self) -> bool:
        """Whether ``connect`` was accepted."""
        return self.result is not None and self.result.accepted

    def _send(self, event_name: str, body: bytes, content_type: str | None,
              extra_headers: Mapping[str, str] | None = None) -> HTTPResult:
        headers = build_event_headers(
            event_name,
            hub=self.hub,
            connection_id=self.connection_id,
            keys=self.client.keys,
            user_id=self.user_id,
            subprotocol=self.subprotocol,
            state=self.state,
            origin=self.client.origin,
            physical_connection_id=self.physical_connection_id,
            session_id=self.session_id,
            content_type=content_type,
        )
        if extra_headers:
            headers.update(extra_headers)
        result = self.client.post(headers, body)
        if result.ok and result.state_header is not None:
            self.state = decode_state(result.state_header)
        return result

    def connect(
        self,
        *,
        claims: Mapping[str, Sequence[str]] | None = None,
        query: Mapping[str, Sequence[str]] | None = None,
        headers: Mapping[str, Sequence[str]] | None = None,
        subprotocols: Sequence[str] | None = None,
        client_certificates: Sequence[Mapping[str, str]] | None = None,
        mqtt: Mapping[str, Any] | None = None,
    ) -> ConnectResult:
        """Send ``connect`` and apply the reply as the service would."""
        body = _connect_body(claims, query, headers, subprotocols, client_certificates,
                             self.user_id)
        if self.physical_connection_id:
            body["mqtt"] = _mqtt_connect_body(mqtt or {})
        http, response = self._connect_request(body)
        if response is not None:
            self._admit(response, body["subprotocols"])
        self.result = ConnectResult(http.status, http.headers, http.body, response)
        return self.result

    def _connect_request(self, body: dict[str, Any]) -> tuple[HTTPResult, ConnectResponse | None]:
        """Send ``connect``: the reply, and what it sets when it accepts."""
        http = self._send("connect", encode_json(body), JSON_CONTENT_TYPE)
        return http, decode_connect_reply(http.body) if http.ok else None

    def _admit(self, response: ConnectResponse, offered: Sequence[str]) -> None:
        """Apply an accepting reply: who the connection is and where it belongs."""
        token = Admission(self.user_id, tuple(self.roles), tuple(self.groups), self.subprotocol)
        try:
            admitted = admit(response, token, offered)
        except ValueError as exc:
            raise AssertionError(f"the service refuses this connect reply: {exc}") from None
        self.user_id = admitted.user_id
        self.roles = list(admitted.roles)
        self.groups = list(admitted.groups)
        self.subprotocol = admitted.subprotocol

    def connected(self) -> EventResult:
        """Send ``connected``."""
        return self._event("connected", b"{}", JSON_CONTENT_TYPE)

    def user_event(
        self,
        name: str,
        data: Any = "",
        *,
        data_type: DataType | None = None,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        mqtt_user_properties: Sequence[MqttUserProperty] = (),
    ) -> EventResult:
        """Send a user event. ``str`` goes as text, ``bytes`` as binary, anything else as JSON,
        unless ``data_type`` says otherwise; ``content_type`` overrides the media type.

        ``metadata`` is the message's metadata, sent as the service sends it (keys lower-cased
        in ``x-webpubsub-metadata-*`` headers); metadata the service would refuse raises
        :class:`~flask_webpubsub.InvalidMetadataError` or ``TypeError``.
        """
        body, default_type = encode_payload(data, data_type)
        extra = {f"mqtt-{p.name}": p.value for p in mqtt_user_properties}
        if metadata:
            extra.update(metadata_headers(validate_metadata(metadata)))
        return self._event(name, body, content_type or default_type, extra)

    def disconnected(self, reason: str | None = None) -> EventResult:
        """Send ``disconnected``."""
        body = encode_json({"reason": reason})
        return self._event("disconnected", body, JSON_CONTENT_TYPE)

    def group_joined(self, group: str) -> EventResult:
        """Send ``gp.joined``; the connection is then in the group."""
        if group not in self.groups:
            self.groups.append(group)
        return self._event("joined", encode_json({"group": group}), JSON_CONTENT_TYPE)

    def group_left(self, group: str) -> EventResult:
        """Send ``gp.left``; the connection is then no longer in the group."""
        if group in self.groups:
            self.groups.remove(group)
        return self._event("left", encode_json({"group": group}), JSON_CONTENT_TYPE)

    def _event(self, name: str, body: bytes, content_type: str,
               extra_headers: Mapping[str, str] | None = None) -> EventResult:
        http = self._send(name, body, content_type, extra_headers)
        data: Any = None
        data_type: DataType | None = None
        metadata: dict[str, str] = {}
        if http.ok and http.body:
            try:
                data, data_type, _ = decode_payload(http.body, http.headers.get("Content-Type"))
            except MalformedEvent as exc:
                raise AssertionError(f"the app replied with a malformed payload: {exc}") from None
        if http.ok:
            try:
                metadata = validate_metadata(read_metadata(http.headers.items()))
            except InvalidMetadataError as exc:
                raise AssertionError(f"the service refuses this reply's metadata: {exc}") from None
        return EventResult(http.status, http.headers, http.body, data, data_type, metadata)


@dataclass(frozen=True)
class MqttConnectResult(ConnectResult):
    """The CONNACK an MQTT client gets for a CONNECT, with the ``connect`` reply behind it."""

    protocol_version: int = 4
    #: Whether the client resumed a session (CONNACK's Session Present flag).
    session_present: bool = False

    @property
    def connack_code(self) -> int:
        """0 when accepted, else the MQTT 3.1.1 return code or MQTT 5 reason code the service
        refuses the client with."""
        if self.ok:
            return 0
        status_code = read_rejection(self.body)[1]
        return mqtt_facts.connack_code(self.status, status_code, self.protocol_version)

    @property
    def user_properties(self) -> list[MqttUserProperty]:
        """The MQTT 5 user properties the app's reply put in the CONNACK."""
        return list(self.response.mqtt_user_properties or ()) if self.response else []


@dataclass(frozen=True)
class MqttMessage:
    """A PUBLISH the service sends an MQTT client: the reply to its event."""

    topic: str
    payload: bytes
    qos: int = 0
    #: MQTT 5 only (MQTT 3.1.1 has no properties): the content type, the user properties
    #: (the reply's ``mqtt-*`` headers, then ``azure-status-code``), the correlation data.
    content_type: str | None = None
    user_properties: tuple[MqttUserProperty, ...] = ()
    correlation_data: bytes | None = None
    #: The app's HTTP reply the message was made from.
    http: HTTPResult | None = field(default=None, repr=False, compare=False)

    @property
    def succeeded(self) -> bool:
        """Whether it came on the ``.../succeeded`` topic (the app answered 2xx)."""
        return self.topic.endswith("/succeeded")

    @property
    def status_code(self) -> int | None:
        """The ``azure-status-code`` user property, as a number (MQTT 5)."""
        for prop in self.user_properties:
            if prop.name == mqtt_facts.STATUS_CODE_PROPERTY:
                return int(prop.value)
        return None

    @property
    def text(self) -> str:
        """The payload as UTF-8 text."""
        return self.payload.decode()


class MqttTestClient:
    """A simulated MQTT client: the events the service sends for its packets, and what the
    service makes of the app's replies (docs/testing.md).

    The client id is the connection id; each :meth:`connect` is a new network connection with a
    new physical connection id. A session lives across network connections until it ends: at
    once when its expiry is 0 (MQTT 3.1.1 clean session, MQTT 5 by default), else when
    :meth:`expire` says its time ran out. ``connected`` is sent for a new session only, and the
    ``connect`` reply's user id, groups and roles apply to a new session only; ``disconnected``
    is sent when the session ends.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        client: WebPubSubTestClient,
        client_id: str,
        *,
        protocol_version: int,
        user_id: str | None,
        roles: Sequence[str],
        groups: Sequence[str],
        hub: str,
    ) -> None:
        if not isinstance(client_id, str) or not mqtt_facts.CLIENT_ID.match(client_id):
            raise ValueError(
                f"the service refuses the client id {client_id!r}: use 1 to 128 letters and "
                "digits"
            )
        if protocol_version not in (4, 5):
            raise ValueError(
                f"protocol_version must be 4 (MQTT 3.1.1) or 5 (MQTT 5.0), not {protocol_version!r}"
            )
        self.client = client
        self.client_id = client_id
        self.protocol_version = protocol_version
        self.hub = hub
        #: What the client's access token says it is.
        self.token = Admission(user_id, tuple(roles), tuple(groups), MQTT_SUBPROTOCOL)
        #: The session, while there is one: its user id, groups, roles, state and session id.
        self.session: TestConnection | None = None
        #: Whether a network connection is open.
        self.online = False
        self.physical_connection_id: str | None = None
        #: Seconds the session outlives its network connection (the service keeps it 30 at most).
        self.session_expiry = 0
        self._ended_by: tuple[int, Sequence[tuple[str, str]]] | None = None

    def __repr__(self) -> str:
        state = "online" if self.online else "session kept" if self.session else "no session"
        return f"<MqttTestClient {self.client_id!r} MQTT {self.protocol_version} {state}>"

    @property
    def user_id(self) -> str | None:
        return self.session.user_id if self.session else None

    @property
    def groups(self) -> list[str]:
        return list(self.session.groups) if self.session else []

    @property
    def roles(self) -> list[str]:
        return list(self.session.roles) if self.session else []

    @property
    def state(self) -> dict[str, Any]:
        """The session's connection state, as the service keeps it."""
        return self.session.state if self.session else {}

    @property
    def session_id(self) -> str | None:
        return self.session.session_id if self.session else None

    def connect(
        self,
        *,
        clean_start: bool = True,
        session_expiry: int | None = None,
        username: str | None = None,
        password: str | bytes | None = None,
        user_properties: Sequence[MqttUserProperty | tuple[str, str]] = (),
        claims: Mapping[str, Sequence[str]] | None = None,
        query: Mapping[str, Sequence[str]] | None = None,
        headers: Mapping[str, Sequence[str]] | None = None,
    ) -> MqttConnectResult:
        """A CONNECT on a new network connection: ``connect``, then ``connected`` when a new
        session begins.

        ``clean_start`` is MQTT 3.1.1's Clean Session flag. ``session_expiry`` is MQTT 5's
        Session Expiry Interval (default 0); in MQTT 3.1.1 a session without clean start is
        kept for the service's 30 seconds. A ``str`` password is sent as its UTF-8 bytes. A
        client that is online already is taken over: its network connection ends, and the
        session goes on unless ``clean_start``.
        """
        properties = [_property_pair(p) for p in user_properties]
        if self.protocol_version < 5 and (properties or session_expiry is not None):
            raise ValueError("MQTT 3.1.1 has no user properties and no session expiry")
        self.online = False  # a second CONNECT takes the session over
        existing = self.session
        resume = existing is not None and not clean_start
        if existing is not None and resume:
            session = existing
        else:
            session = TestConnection(
                self.client, self.client_id, user_id=self.token.user_id,
                subprotocol=MQTT_SUBPROTOCOL, mqtt=True, hub=self.hub,
            )
            session.roles, session.groups = list(self.token.roles), list(self.token.groups)
        physical_connection_id = uuid.uuid4().hex
        previous_physical = session.physical_connection_id
        session.physical_connection_id = physical_connection_id
        body = _connect_body(claims, query, headers, [MQTT_SUBPROTOCOL], None,
                             self.token.user_id)
        body["mqtt"] = mqtt_facts.connect_body(
            protocol_version=self.protocol_version,
            clean_start=clean_start,
            username=username,
            password=_password_bytes(password),
            user_properties=properties if self.protocol_version >= 5 else None,
        )
        http, response = session._connect_request(body)
        result = MqttConnectResult(
            http.status, http.headers, http.body, response,
            protocol_version=self.protocol_version, session_present=resume and http.ok,
        )
        if response is None:  # refused: any session stays as it was
            session.physical_connection_id = previous_physical
            return result
        self.online = True
        self.physical_connection_id = physical_connection_id
        if self.protocol_version >= 5:
            self.session_expiry = min(session_expiry or 0, mqtt_facts.MAX_SESSION_EXPIRY)
        else:
            self.session_expiry = 0 if clean_start else mqtt_facts.MAX_SESSION_EXPIRY
        self._ended_by = None
        session.result = result
        if not resume:
            if existing is not None:
                self._end(existing, mqtt_facts.SESSION_REPLACED, None)
            session._admit(response, body["subprotocols"])
            self.session = session
            session.connected()
        return result

    def publish(
        self,
        topic: str,
        payload: str | bytes = b"",
        *,
        qos: int = 0,
        content_type: str | None = None,
        user_properties: Sequence[MqttUserProperty | tuple[str, str]] = (),
        correlation_data: bytes | None = None,
    ) -> MqttMessage:
        """A PUBLISH to ``$webpubsub/server/events/{name}``: the user event ``name``, and the
        reply the client gets on ``.../succeeded`` or ``.../failed``.

        The payload is the event's body (a ``str`` as UTF-8); ``content_type`` (MQTT 5) its
        Content-Type, ``application/octet-stream`` without one; user properties go as
        ``mqtt-{name}`` headers. Other topics are groups, which only the emulator serves.
        """
        name = mqtt_facts.event_name_of(topic)
        if name is None:
            raise ValueError(
                f"{topic!r} is not an event topic: a PUBLISH reaches the app on "
                f"{mqtt_facts.SERVER_EVENTS_PREFIX}{{name}}; group topics need the emulator"
            )
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, not {qos!r}")
        properties = [_property_pair(p) for p in user_properties]
        if self.protocol_version < 5 and (
            properties or content_type is not None or correlation_data is not None
        ):
            raise ValueError(
                "MQTT 3.1.1 has no content type, user properties or correlation data"
            )
        session = self._online_session("publish")
        body = payload.encode() if isinstance(payload, str) else bytes(payload)
        http = session._send(
            name, body, content_type or BINARY_CONTENT_TYPE,
            mqtt_facts.user_property_headers(properties),
        )
        if self.protocol_version < 5:
            return MqttMessage(mqtt_facts.reply_topic(name, http.ok), http.body, qos, http=http)
        replied = [
            MqttUserProperty(n, v)
            for n, v in mqtt_facts.user_properties_from_headers(http.headers.items())
        ]
        replied.append(MqttUserProperty(mqtt_facts.STATUS_CODE_PROPERTY, str(http.status)))
        return MqttMessage(
            mqtt_facts.reply_topic(name, http.ok), http.body, qos,
            http.headers.get("Content-Type"), tuple(replied), correlation_data, http,
        )

    def subscribe(self, topic: str) -> EventResult | None:
        """SUBSCRIBE: the session joins the group of that name (``joined`` is sent). The
        service's own topics (``$webpubsub/...``) are no group: None. Wildcard and shared
        subscriptions are refused, as the service refuses them."""
        self._check_topic(topic)
        session = self._online_session("subscribe")
        if mqtt_facts.is_reserved_topic(topic):
            return None
        return session.group_joined(topic)

    def unsubscribe(self, topic: str) -> EventResult | None:
        """UNSUBSCRIBE: the session leaves the group (``left`` is sent)."""
        self._check_topic(topic)
        session = self._online_session("unsubscribe")
        if mqtt_facts.is_reserved_topic(topic):
            return None
        return session.group_left(topic)

    def disconnect(
        self,
        code: int = 0,
        *,
        user_properties: Sequence[MqttUserProperty | tuple[str, str]] = (),
        session_expiry: int | None = None,
        reason: str | None = None,
    ) -> EventResult | None:
        """A DISCONNECT (``code``: its MQTT 5 reason code; 0 in MQTT 3.1.1), and the network
        connection ends. When that ends the session, ``disconnected`` is sent (its result is
        returned) with ``initiatedByClient`` and the packet's code and user properties; else
        None, and the session waits for a :meth:`connect` or :meth:`expire`. ``session_expiry``
        (MQTT 5) changes the session's expiry on the way out."""
        properties = [_property_pair(p) for p in user_properties]
        if self.protocol_version < 5 and (code or properties or session_expiry is not None):
            raise ValueError("MQTT 3.1.1's DISCONNECT has no reason code or properties")
        session = self._online_session("disconnect")
        self.online = False
        self._ended_by = (code, properties)
        if session_expiry is not None:
            self.session_expiry = min(session_expiry, mqtt_facts.MAX_SESSION_EXPIRY)
        if self.session_expiry == 0:
            return self._end(session, reason, self._ended_by)
        return None

    def drop(self, reason: str | None = None) -> EventResult | None:
        """The network connection ends without a DISCONNECT (the device lost its network).
        A session whose expiry is 0 ends with it (``disconnected`` is sent, not initiated by
        the client); a persistent one waits for a :meth:`connect` or :meth:`expire`."""
        session = self._online_session("drop")
        self.online = False
        self._ended_by = None
        if self.session_expiry == 0:
            return self._end(session, reason, None)
        return None

    def expire(self, reason: str | None = None) -> EventResult:
        """A kept session's expiry passed with no client back: the session ends and
        ``disconnected`` is sent, telling how the last network connection ended."""
        if self.online or self.session is None:
            raise RuntimeError("only a session kept while its client is offline can expire")
        return self._end(self.session, reason, self._ended_by)

    def _end(
        self,
        session: TestConnection,
        reason: str | None,
        ended_by: tuple[int, Sequence[tuple[str, str]]] | None,
    ) -> EventResult:
        if self.session is session:
            self.session = None
        body = mqtt_facts.disconnected_body(
            reason,
            initiated_by_client=ended_by is not None,
            disconnect_code=None if ended_by is None else ended_by[0],
            user_properties=None if ended_by is None else ended_by[1],
        )
        return session._event("disconnected", encode_json(body), JSON_CONTENT_TYPE)

    def _online_session(self, what: str) -> TestConnection:
        if not self.online or self.session is None:
            raise RuntimeError(f"cannot {what}: the client is not connected; call connect() first")
        return self.session

    @staticmethod
    def _check_topic(topic: str) -> None:
        if not topic or "+" in topic or "#" in topic or topic.startswith("$share/"):
            raise ValueError(
                f"the service refuses the topic filter {topic!r}: no wildcard or shared "
                "subscriptions"
            )


def _connect_body(
    claims: Mapping[str, Sequence[str]] | None,
    query: Mapping[str, Sequence[str]] | None,
    headers: Mapping[str, Sequence[str]] | None,
    subprotocols: Sequence[str] | None,
    client_certificates: Sequence[Mapping[str, str]] | None,
    user_id: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "claims": {k: list(v) for k, v in (claims or {}).items()},
        "query": {k: list(v) for k, v in (query or {}).items()},
        "headers": {k: list(v) for k, v in (headers or {}).items()},
        "subprotocols": list(subprotocols or ()),
        "clientCertificates": [dict(c) for c in client_certificates or ()],
    }
    if user_id:
        body["claims"].setdefault("sub", [user_id])
    return body


def _mqtt_connect_body(mqtt: Mapping[str, Any]) -> dict[str, Any]:
    version = mqtt.get("protocol_version", 4)
    properties = [_property_pair(p) for p in mqtt.get("user_properties", ())]
    return mqtt_facts.connect_body(
        protocol_version=version,
        clean_start=mqtt.get("clean_start", True),
        username=mqtt.get("username"),
        password=_password_bytes(mqtt.get("password")),
        user_properties=properties if version >= 5 or properties else None,
    )


def _password_bytes(password: str | bytes | None) -> bytes | None:
    return password.encode() if isinstance(password, str) else password


def _property_pair(prop: MqttUserProperty | tuple[str, str]) -> tuple[str, str]:
    if isinstance(prop, MqttUserProperty):
        return prop.name, prop.value
    name, value = prop
    return name, value


class WebPubSubTestClient:
    """Sends signed Web PubSub events to an app, as the service would.

    Bound to a Flask ``app`` (through its test client; key, hub and path come from its
    config), or to a running server's ``base_url`` (then pass ``connection_string`` or
    ``access_key``, and ``hub``).
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: Flask | None = None,
        *,
        base_url: str | None = None,
        hub: str | None = None,
        path: str | None = None,
        access_key: str | None = None,
        connection_string: str | None = None,
        origin: str | None = None,
    ) -> None:
        if (app is None) == (base_url is None):
            raise TypeError("pass either a Flask app or a base_url")
        self.application = app
        self.base_url = base_url.rstrip("/") if base_url else None
        keys: list[str] = []
        endpoint_host: str | None = None
        if app is not None:
            binding: AppBinding | None = app.extensions.get(EXTENSION_KEY)
            if binding is None:
                raise RuntimeError("the app has no WebPubSub extension; call init_app first")
            settings = binding.settings
            keys = list(settings.signature_keys[:1])
            hub = hub or settings.hub
            path = path or settings.event_handler_path
            endpoint_host = settings.endpoint.host
        if connection_string:
            endpoint = parse_connection_string(connection_string)
            keys = [endpoint.access_key] if endpoint.access_key else []
            endpoint_host = endpoint.host
        if access_key:
            keys = [access_key]
        if not hub:
            raise TypeError("pass the hub name")
        #: The keys events are signed with; replace to test signature failures.
        self.keys: list[str] = keys
        self.hub = hub
        self.path = path or "/eventhandler"
        self.origin = origin or endpoint_host
        self._ids = itertools.count(1)
        self._test_client = app.test_client() if app is not None else None

    def __repr__(self) -> str:
        target = self.base_url or repr(self.application)
        return f"<WebPubSubTestClient {target} hub={self.hub!r}>"

    def connection(
        self,
        *,
        user_id: str | None = None,
        connection_id: str | None = None,
        subprotocol: str | None = None,
        mqtt: bool = False,
        hub: str | None = None,
    ) -> TestConnection:
        """A new simulated connection that has sent nothing yet."""
        return TestConnection(
            self,
            connection_id or f"conn-{next(self._ids)}-{uuid.uuid4().hex[:8]}",
            user_id=user_id,
            subprotocol="mqtt" if mqtt and subprotocol is None else subprotocol,
            mqtt=mqtt,
            hub=hub or self.hub,
        )

    def mqtt_client(
        self,
        client_id: str | None = None,
        *,
        protocol_version: int = 5,
        user_id: str | None = None,
        roles: Sequence[str] = (),
        groups: Sequence[str] = (),
        hub: str | None = None,
    ) -> MqttTestClient:
        """A simulated MQTT client that has sent nothing yet. ``user_id``, ``roles`` and
        ``groups`` are what its access token says; ``protocol_version`` is 4 (MQTT 3.1.1) or 5.
        """
        return MqttTestClient(
            self,
            f"mqtt{next(self._ids)}x{uuid.uuid4().hex[:8]}" if client_id is None else client_id,
            protocol_version=protocol_version,
            user_id=user_id,
            roles=roles,
            groups=groups,
            hub=hub or self.hub,
        )

    def connect(
        self,
        *,
        user_id: str | None = None,
        connection_id: str | None = None,
        subprotocol: str | None = None,
        mqtt: Mapping[str, Any] | bool | None = None,
        hub: str | None = None,
        **connect_fields: Any,
    ) -> TestConnection:
        """A new connection that has sent ``connect`` (and, when accepted, ``connected``).

        ``connect_fields`` are those of :meth:`TestConnection.connect` (claims, query, headers,
        subprotocols, client_certificates). ``mqtt`` makes it an MQTT client; a mapping gives
        its CONNECT properties (protocol_version, username, password, user_properties).
        """
        connection = self.connection(
            user_id=user_id,
            connection_id=connection_id,
            subprotocol=subprotocol,
            mqtt=bool(mqtt),
            hub=hub,
        )
        mqtt_fields = mqtt if isinstance(mqtt, Mapping) else None
        if connection.connect(mqtt=mqtt_fields, **connect_fields).accepted:
            connection.connected()
        return connection

    def post(self, headers: HeaderItems, body: bytes) -> HTTPResult:
        """POST raw headers (a mapping, or pairs to repeat a header) and a body."""
        return self.request("POST", headers, body)

    def options(self, origin: str | None = None) -> HTTPResult:
        """The abuse-protection check, from ``origin`` (the endpoint's host by default)."""
        headers = {"ce-awpsversion": "1.0"}
        if origin or self.origin:
            headers["WebHook-Request-Origin"] = origin or self.origin or ""
        return self.request("OPTIONS", headers, b"")

    def request(self, method: str, headers: HeaderItems, body: bytes) -> HTTPResult:
        """Send any request to the event handler path."""
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
        if self._test_client is not None:
            response = self._test_client.open(
                self.path, method=method, headers=Headers(pairs), data=body
            )
            return HTTPResult(response.status_code, Headers(response.headers), response.data)
        request = urllib.request.Request(  # noqa: S310 - the URL is the caller's own server
            f"{self.base_url}{self.path}", data=body or None, method=method
        )
        for name, value in pairs:
            # urllib keeps one value per header name: fold repeats as HTTP allows.
            existing = request.get_header(name.capitalize())
            request.add_header(name, f"{existing}, {value}" if existing else value)
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310
                return HTTPResult(reply.status, Headers(list(reply.headers.items())), reply.read())
        except urllib.error.HTTPError as error:
            with error:
                return HTTPResult(error.code, Headers(list(error.headers.items())), error.read())
