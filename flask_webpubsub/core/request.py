"""An upstream request, read as the service sends it: headers and body in, a typed event out
(docs/protocol.md section 2).

Headers come in as any case-insensitive mapping (:class:`HeaderSource`), the body as bytes. The
signature must be verified before anything here reads the body.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple, Protocol

from .errors import MalformedEvent
from .events import (
    ClientCertificate,
    ConnectedEvent,
    ConnectEvent,
    DisconnectedEvent,
    GroupJoinedEvent,
    GroupLeftEvent,
    MqttConnectProperties,
    MqttDisconnectProperties,
    MqttMessageProperties,
    MqttProperties,
    MqttUserProperty,
    UserEvent,
    WebPubSubEvent,
)
from .jsoncodec import decode_json
from .payload import decode_payload, read_metadata
from .wire import (
    CONNECT,
    CONNECTED,
    DISCONNECTED,
    GROUP_JOINED,
    GROUP_LEFT,
    GROUP_PREFIX,
    SYSTEM_PREFIX,
    TYPE_PREFIX,
    USER_PREFIX,
    clip,
    decode_attribute,
)

logger = logging.getLogger(__name__)


class HeaderSource(Protocol):
    """Case-insensitive request headers, as werkzeug's ``Headers`` provides them."""

    def get(self, key: str) -> str | None: ...

    def getlist(self, key: str) -> list[str]: ...

    def items(self) -> Iterable[tuple[str, str]]: ...


def required_header(headers: HeaderSource, name: str) -> str:
    """The value of a required ``ce-*`` header; a 400 when it is missing or empty."""
    value = headers.get(name)
    if not value or not value.strip():
        raise MalformedEvent(f"Missing required header {name}.")
    value = value.strip()
    return value if value.isascii() and "%" not in value else decode_attribute(value)


def is_mqtt(headers: HeaderSource, subprotocol: str | None = None) -> bool:
    """Whether the request is from an MQTT client (``subprotocol``: the header, if read)."""
    if subprotocol is None:
        subprotocol = headers.get("ce-subprotocol")
    return bool(
        subprotocol and "mqtt" in subprotocol.lower() and headers.get("ce-physicalConnectionId")
    )


class Attributes(NamedTuple):
    """The attributes every event must carry."""

    type: str
    hub: str
    connection_id: str


def read_attributes(headers: HeaderSource, connection_id: str | None = None) -> Attributes:
    """``ce-type``, ``ce-hub`` and ``ce-connectionId`` (pass it if already read): a 400 when one
    is missing, or when ``ce-type`` is not a Web PubSub type."""
    if connection_id is None:
        connection_id = required_header(headers, "ce-connectionId")
    ce_type = required_header(headers, "ce-type")
    if not ce_type.startswith(TYPE_PREFIX):
        raise MalformedEvent(f"Unsupported ce-type {clip(ce_type)}: not a Web PubSub event.")
    return Attributes(ce_type, required_header(headers, "ce-hub"), connection_id)


def parse_event(
    headers: HeaderSource, body: bytes, attributes: Attributes | None = None
) -> WebPubSubEvent | None:
    """Parse an upstream POST into a typed event (``attributes``: if already read).

    Returns None for a ``sys`` or ``gp`` event type this version does not know (the service may
    add some). Raises :class:`MalformedEvent` (400) with a one-line reason for a request that
    is not a well-formed Web PubSub event. The signature must be verified before calling this.
    """
    ce_type, hub, connection_id = attributes or read_attributes(headers)
    subprotocol = _attribute(headers, "ce-subprotocol")
    context: dict[str, Any] = {
        "hub": hub,
        "connection_id": connection_id,
        "type": ce_type,
        "user_id": _attribute(headers, "ce-userId"),
        "subprotocol": subprotocol,
        "state_header": headers.get("ce-connectionState"),
        "origin": headers.get("WebHook-Request-Origin"),
        "id": headers.get("ce-id"),
        "time": headers.get("ce-time"),
        "_attributes": _CloudEventAttributes(headers),
    }
    mqtt = subprotocol is not None and is_mqtt(headers, subprotocol)

    if ce_type.startswith(USER_PREFIX):
        name = ce_type[len(USER_PREFIX) :]
        if not name:
            raise MalformedEvent("Missing user event name in ce-type.")
        content_type = headers.get("Content-Type")
        data, data_type, media_type = decode_payload(body, content_type)
        return UserEvent(
            event_name=name,
            data=data,
            data_type=data_type,
            content_type=media_type,
            metadata=_HeaderMetadata(headers),
            mqtt=MqttMessageProperties(
                **_mqtt_context(headers), user_properties=_mqtt_header_properties(headers)
            )
            if mqtt
            else None,
            **context,
        )
    if ce_type == CONNECT:
        return _parse_connect(body, context, headers if mqtt else None)
    if ce_type == CONNECTED:
        return ConnectedEvent(
            event_name="connected",
            mqtt=MqttProperties(**_mqtt_context(headers)) if mqtt else None,
            **context,
        )
    if ce_type == DISCONNECTED:
        fields = _notification_body(body, ce_type)
        reason = fields.get("reason")
        mqtt_fields = fields.get("mqtt")
        if not isinstance(mqtt_fields, dict):
            mqtt_fields = {}
        return DisconnectedEvent(
            event_name="disconnected",
            reason=reason if isinstance(reason, str) else None,
            mqtt=MqttDisconnectProperties(
                **_mqtt_context(headers),
                initiated_by_client=_optional(mqtt_fields.get("initiatedByClient"), bool),
                disconnect_packet=_optional(mqtt_fields.get("disconnectPacket"), dict),
            )
            if mqtt
            else None,
            **context,
        )
    if ce_type in (GROUP_JOINED, GROUP_LEFT):
        group = _notification_body(body, ce_type).get("group")
        event_class = GroupJoinedEvent if ce_type == GROUP_JOINED else GroupLeftEvent
        return event_class(
            event_name=ce_type.rsplit(".", 1)[1],
            group=group if isinstance(group, str) else "",
            mqtt=MqttProperties(**_mqtt_context(headers)) if mqtt else None,
            **context,
        )
    if ce_type.startswith((SYSTEM_PREFIX, GROUP_PREFIX)):
        return None
    raise MalformedEvent(f"Unsupported ce-type {clip(ce_type)}.")


class _CloudEventAttributes(Mapping[str, str]):
    """The ``ce-*`` headers as CloudEvents attributes, read only when somebody asks."""

    def __init__(self, headers: HeaderSource) -> None:
        self._headers = headers

    def _read(self) -> dict[str, str]:
        # The signature authenticates the request to this app; it is not part of the event.
        return {
            name[3:].lower(): decode_attribute(value)
            for name, value in self._headers.items()
            if name.lower().startswith("ce-") and name.lower() != "ce-signature"
        }

    def __getitem__(self, key: str) -> str:
        return self._read()[key]

    def __iter__(self) -> Any:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())


class _HeaderMetadata(Mapping[str, str]):
    """A user event's metadata (:func:`.payload.read_metadata`), read from the headers when a
    handler first looks: most events carry none, and finding that out means reading every
    header."""

    __slots__ = ("_headers", "_metadata")

    def __init__(self, headers: HeaderSource) -> None:
        self._headers: HeaderSource | None = headers
        self._metadata: dict[str, str] = {}

    def _read(self) -> dict[str, str]:
        if self._headers is not None:
            self._metadata = read_metadata(self._headers.items())
            self._headers = None
        return self._metadata

    def __getitem__(self, key: str) -> str:
        return self._read()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())

    def __repr__(self) -> str:
        return repr(self._read())


def _attribute(headers: HeaderSource, name: str) -> str | None:
    """An optional ``ce-*`` attribute's text; None when absent or empty."""
    value = headers.get(name)
    if not value:
        return None
    return value if value.isascii() and "%" not in value else decode_attribute(value)


def _optional(value: Any, kind: type) -> Any:
    return value if isinstance(value, kind) else None


def _mqtt_context(headers: HeaderSource) -> dict[str, Any]:
    return {
        "physical_connection_id": _attribute(headers, "ce-physicalConnectionId") or "",
        "session_id": _attribute(headers, "ce-sessionId"),
    }


def _mqtt_header_properties(headers: HeaderSource) -> list[MqttUserProperty]:
    # WSGI servers keep no header name's case (werkzeug title-cases it): lower case is the one
    # spelling that does not depend on the server.
    return [
        MqttUserProperty(name[5:].lower(), value)
        for name, value in headers.items()
        if name.lower().startswith("mqtt-")
    ]


def _notification_body(body: bytes, ce_type: str) -> dict[str, Any]:
    """A notification's JSON body; a malformed one is logged, never an error."""
    if not body.strip():
        return {}
    try:
        value = decode_json(body)
    except (ValueError, RecursionError):
        logger.warning("Ignoring the malformed body of a %s event.", ce_type)
        return {}
    if not isinstance(value, dict):
        logger.warning("Ignoring the body of a %s event: not a JSON object.", ce_type)
        return {}
    return value


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        value = decode_json(body)
    except (ValueError, RecursionError):
        raise MalformedEvent(f"The {what} body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise MalformedEvent(f"The {what} body must be a JSON object.")
    return value


def _string_lists(value: Any, name: str) -> dict[str, list[str]]:
    """``{name: [values]}``; a lone string value is read as a one-item list."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedEvent(f"The connect body's {name} must be an object.")
    result: dict[str, list[str]] = {}
    for key, values in value.items():
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise MalformedEvent(f"The connect body's {name} values must be lists of strings.")
        result[key] = values
    return result


def _strings(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MalformedEvent(f"The connect body's {name} must be a list of strings.")
    return value


def _user_properties(value: Any) -> list[MqttUserProperty]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(p, dict) and isinstance(p.get("name"), str) and isinstance(p.get("value"), str)
        for p in value
    ):
        raise MalformedEvent("MQTT userProperties must be a list of {name, value} strings.")
    return [MqttUserProperty(p["name"], p["value"]) for p in value]


def _parse_connect(
    body: bytes, context: dict[str, Any], mqtt_headers: HeaderSource | None
) -> ConnectEvent:
    fields = _json_object(body, "connect")
    certificates = fields.get("clientCertificates") or []
    if not isinstance(certificates, list) or not all(
        isinstance(c, dict) and isinstance(c.get("thumbprint"), str) for c in certificates
    ):
        raise MalformedEvent("The connect body's clientCertificates must be a list of objects.")
    mqtt = None
    if mqtt_headers is not None:
        mqtt_fields = fields.get("mqtt") or {}
        if not isinstance(mqtt_fields, dict):
            raise MalformedEvent("The connect body's mqtt must be an object.")
        version = mqtt_fields.get("protocolVersion", 4)
        if version not in (3, 4, 5) or isinstance(version, bool):
            raise MalformedEvent("The connect body's mqtt.protocolVersion must be 4 or 5.")
        # The password is the app's to judge, whatever its form: never a reason to refuse.
        password = mqtt_fields.get("password")
        if password is not None and not isinstance(password, str):
            logger.warning(
                "The connect body's mqtt.password is a JSON %s, not a string: read as none.",
                type(password).__name__,
            )
            password = None
        username = mqtt_fields.get("username")
        mqtt = MqttConnectProperties(
            **_mqtt_context(mqtt_headers),
            protocol_version=version,
            username=username if isinstance(username, str) else None,
            password=password,
            user_properties=_user_properties(mqtt_fields.get("userProperties")),
        )
    return ConnectEvent(
        event_name="connect",
        claims=_string_lists(fields.get("claims"), "claims"),
        query=_string_lists(fields.get("query"), "query"),
        headers=_string_lists(fields.get("headers"), "headers"),
        subprotocols=_strings(fields.get("subprotocols"), "subprotocols"),
        client_certificates=[
            ClientCertificate(c["thumbprint"], str(c.get("content", ""))) for c in certificates
        ],
        mqtt=mqtt,
        _body=fields,
        **context,
    )
