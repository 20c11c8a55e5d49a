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
and sends them with every later event. Signatures, state and payloads go through the same codecs
the extension uses.
"""

from __future__ import annotations

import base64
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
from .core.wire import JSON_CONTENT_TYPE, DataType

__all__ = ["ConnectResult", "EventResult", "TestConnection", "WebPubSubTestClient"]

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
        body: dict[str, Any] = {
            "claims": {k: list(v) for k, v in (claims or {}).items()},
            "query": {k: list(v) for k, v in (query or {}).items()},
            "headers": {k: list(v) for k, v in (headers or {}).items()},
            "subprotocols": list(subprotocols or ()),
            "clientCertificates": [dict(c) for c in client_certificates or ()],
        }
        if self.user_id:
            body["claims"].setdefault("sub", [self.user_id])
        if self.physical_connection_id:
            body["mqtt"] = _mqtt_connect_body(mqtt or {})
        http = self._send("connect", encode_json(body), JSON_CONTENT_TYPE)
        response = None
        if http.ok:
            response = decode_connect_reply(http.body)
            token = Admission(self.user_id, tuple(self.roles), tuple(self.groups), self.subprotocol)
            try:
                admitted = admit(response, token, body["subprotocols"])
            except ValueError as exc:
                raise AssertionError(f"the service refuses this connect reply: {exc}") from None
            self.user_id = admitted.user_id
            self.roles = list(admitted.roles)
            self.groups = list(admitted.groups)
            self.subprotocol = admitted.subprotocol
        self.result = ConnectResult(http.status, http.headers, http.body, response)
        return self.result

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


def _mqtt_connect_body(mqtt: Mapping[str, Any]) -> dict[str, Any]:
    password = mqtt.get("password")
    if isinstance(password, str):
        password = password.encode()
    return {
        "protocolVersion": mqtt.get("protocol_version", 4),
        "username": mqtt.get("username"),
        "password": base64.b64encode(password).decode() if password is not None else None,
        "userProperties": [
            {"name": p.name, "value": p.value} for p in mqtt.get("user_properties", ())
        ],
    }


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
