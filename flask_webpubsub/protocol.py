"""The upstream protocol without a web framework: headers and body in, typed events out, and
handler results in, exact replies out.

The extension's views, the testing helpers and the emulator all go through these functions.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import functools
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from .errors import InvalidEventError, InvalidStateError
from .events import (
    ClientCertificate,
    ConnectedEvent,
    ConnectEvent,
    ConnectResponse,
    DataType,
    DisconnectedEvent,
    GroupJoinedEvent,
    GroupLeftEvent,
    MqttConnectProperties,
    MqttDisconnectProperties,
    MqttMessageProperties,
    MqttProperties,
    MqttUserProperty,
    UserEvent,
    UserEventResponse,
    WebPubSubEvent,
)
from .jsoncodec import decode_json
from .jsoncodec import encode_json as encode_json  # part of this module's API
from .state import decode_state, encode_state

logger = logging.getLogger(__name__)

TYPE_PREFIX = "azure.webpubsub."
CONNECT = "azure.webpubsub.sys.connect"
CONNECTED = "azure.webpubsub.sys.connected"
DISCONNECTED = "azure.webpubsub.sys.disconnected"
USER_PREFIX = "azure.webpubsub.user."
GROUP_JOINED = "azure.webpubsub.gp.joined"
GROUP_LEFT = "azure.webpubsub.gp.left"

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"
BINARY_CONTENT_TYPE = "application/octet-stream"

# MQTT 3.1.1 CONNACK return codes and MQTT 5 reason codes for a rejection status.
_MQTT_CODES = {
    4: {400: 4, 401: 5, 403: 5},
    5: {400: 134, 401: 135, 403: 135},
}
_MQTT_OTHER_4XX = {4: 5, 5: 135}
_MQTT_SERVER_ERROR = {4: 3, 5: 128}


class HeaderSource(Protocol):
    """Case-insensitive request headers, as werkzeug's ``Headers`` provides them."""

    def get(self, key: str) -> str | None: ...

    def getlist(self, key: str) -> list[str]: ...

    def items(self) -> Iterable[tuple[str, str]]: ...


_ENVIRON_KEYS: dict[str, str] = {}


def _environ_key(name: str) -> str:
    key = _ENVIRON_KEYS.get(name)
    if key is None:
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        _ENVIRON_KEYS[name] = key
    return key


class WSGIHeaders:
    """Request headers read straight from a WSGI environ: one dict lookup per header.

    The server has already folded repeated header lines into one comma-separated value
    (PEP 3333), which is how ``ce-signature`` lists are read anyway.
    """

    __slots__ = ("environ",)

    def __init__(self, environ: Mapping[str, Any]) -> None:
        self.environ = environ

    def get(self, key: str) -> str | None:
        return self.environ.get(_ENVIRON_KEYS.get(key) or _environ_key(key))

    def getlist(self, key: str) -> list[str]:
        value = self.get(key)
        return [] if value is None else [value]

    def items(self) -> list[tuple[str, str]]:
        """Every header as ``(lower-case-name, value)``."""
        found = []
        for key, value in self.environ.items():
            if key.startswith("HTTP_"):
                found.append((key[5:].replace("_", "-").lower(), value))
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                found.append((key.replace("_", "-").lower(), value))
        return found


class Reply(NamedTuple):
    """An HTTP reply for the service: status, content type (None for no body) and body."""

    status: int
    content_type: str | None
    body: bytes


NO_CONTENT = Reply(204, None, b"")
EMPTY_OK = Reply(200, None, b"")


def clip(value: str) -> str:
    """A header value quoted for an error message, cut to a readable length."""
    return repr(value if len(value) <= 80 else value[:80] + "...")


def required_header(headers: HeaderSource, name: str) -> str:
    """The value of a required ``ce-*`` header; a 400 when it is missing or empty."""
    value = headers.get(name)
    if not value or not value.strip():
        raise InvalidEventError(f"Missing required header {name}.")
    return value.strip()


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
        raise InvalidEventError(f"Unsupported ce-type {clip(ce_type)}: not a Web PubSub event.")
    return Attributes(ce_type, required_header(headers, "ce-hub"), connection_id)


def parse_event(
    headers: HeaderSource, body: bytes, attributes: Attributes | None = None
) -> WebPubSubEvent | None:
    """Parse an upstream POST into a typed event (``attributes``: if already read).

    Returns None for a ``sys`` or ``gp`` event type this version does not know (the service may
    add some). Raises :class:`InvalidEventError` (400) with a one-line reason for a request that
    is not a well-formed Web PubSub event. The signature must be verified before calling this.
    """
    ce_type, hub, connection_id = attributes or read_attributes(headers)
    subprotocol = headers.get("ce-subprotocol") or None
    context: dict[str, Any] = {
        "hub": hub,
        "connection_id": connection_id,
        "type": ce_type,
        "user_id": headers.get("ce-userId") or None,
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
            raise InvalidEventError("Missing user event name in ce-type.")
        content_type = headers.get("Content-Type")
        data, data_type, media_type = decode_payload(body, content_type)
        return UserEvent(
            event_name=name,
            data=data,
            data_type=data_type,
            content_type=media_type,
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
    if ce_type.startswith(("azure.webpubsub.sys.", "azure.webpubsub.gp.")):
        return None
    raise InvalidEventError(f"Unsupported ce-type {clip(ce_type)}.")


class _CloudEventAttributes(Mapping[str, str]):
    """The ``ce-*`` headers as CloudEvents attributes, read only when somebody asks."""

    def __init__(self, headers: HeaderSource) -> None:
        self._headers = headers

    def _read(self) -> dict[str, str]:
        # The signature authenticates the request to this app; it is not part of the event.
        return {
            name[3:].lower(): value
            for name, value in self._headers.items()
            if name.lower().startswith("ce-") and name.lower() != "ce-signature"
        }

    def __getitem__(self, key: str) -> str:
        return self._read()[key]

    def __iter__(self) -> Any:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())


def _optional(value: Any, kind: type) -> Any:
    return value if isinstance(value, kind) else None


def _mqtt_context(headers: HeaderSource) -> dict[str, Any]:
    return {
        "physical_connection_id": headers.get("ce-physicalConnectionId") or "",
        "session_id": headers.get("ce-sessionId") or None,
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
        value = json.loads(body)
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
        raise InvalidEventError(f"The {what} body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise InvalidEventError(f"The {what} body must be a JSON object.")
    return value


def _string_lists(value: Any, name: str) -> dict[str, list[str]]:
    """``{name: [values]}``; a lone string value is read as a one-item list."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidEventError(f"The connect body's {name} must be an object.")
    result: dict[str, list[str]] = {}
    for key, values in value.items():
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise InvalidEventError(f"The connect body's {name} values must be lists of strings.")
        result[key] = values
    return result


def _strings(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidEventError(f"The connect body's {name} must be a list of strings.")
    return value


def _user_properties(value: Any) -> list[MqttUserProperty]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(p, dict) and isinstance(p.get("name"), str) and isinstance(p.get("value"), str)
        for p in value
    ):
        raise InvalidEventError("MQTT userProperties must be a list of {name, value} strings.")
    return [MqttUserProperty(p["name"], p["value"]) for p in value]


def _parse_connect(
    body: bytes, context: dict[str, Any], mqtt_headers: HeaderSource | None
) -> ConnectEvent:
    fields = _json_object(body, "connect")
    certificates = fields.get("clientCertificates") or []
    if not isinstance(certificates, list) or not all(
        isinstance(c, dict) and isinstance(c.get("thumbprint"), str) for c in certificates
    ):
        raise InvalidEventError("The connect body's clientCertificates must be a list of objects.")
    mqtt = None
    if mqtt_headers is not None:
        mqtt_fields = fields.get("mqtt") or {}
        if not isinstance(mqtt_fields, dict):
            raise InvalidEventError("The connect body's mqtt must be an object.")
        version = mqtt_fields.get("protocolVersion", 4)
        if version not in (3, 4, 5) or isinstance(version, bool):
            raise InvalidEventError("The connect body's mqtt.protocolVersion must be 4 or 5.")
        password = mqtt_fields.get("password")
        if password is not None:
            try:
                password = base64.b64decode(password, validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise InvalidEventError("The connect body's mqtt.password is not base64.") from None
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


def parse_media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    """Split a Content-Type into its lower-case media type and its parameters."""
    if not content_type:
        return BINARY_CONTENT_TYPE, {}
    media_type, *params = content_type.split(";")
    parameters = {}
    for param in params:
        name, _, value = param.partition("=")
        parameters[name.strip().lower()] = value.strip().strip('"')
    return media_type.strip().lower() or BINARY_CONTENT_TYPE, parameters


def _charset(parameters: dict[str, str]) -> str:
    charset = parameters.get("charset") or "utf-8"
    try:
        name = codecs.lookup(charset).name
        "a".encode(name)  # fails for codecs that are not text encodings (base64, zlib, ...)
    except (LookupError, ValueError):
        raise InvalidEventError(f"Unsupported charset {clip(charset)}.") from None
    return name


def _decode_text(body: bytes, charset: str) -> str:
    """Decode text; raises ``UnicodeError`` for bytes, or a result, that are not valid text."""
    text = body.decode(charset)
    if charset != "utf-8":
        # Some codecs (utf-7, unicode_escape) decode to lone surrogates, which no reply could
        # carry: refuse them here rather than fail with a 500 when a handler echoes them.
        text.encode()
    return text


@functools.lru_cache(maxsize=256)
def _payload_format(content_type: str | None) -> tuple[str, DataType, str]:
    """``(media type, data type, charset)`` for a Content-Type; cached, since a service sends
    the same few. Raises :class:`InvalidEventError` for a charset that is not a text encoding."""
    media_type, parameters = parse_media_type(content_type)
    if media_type == "text/plain":
        return media_type, "text", _charset(parameters)
    if media_type == "application/json":
        return media_type, "json", _charset(parameters)
    return media_type, "binary", ""


def decode_payload(body: bytes, content_type: str | None) -> tuple[Any, DataType, str]:
    """Decode a user event payload by its Content-Type: ``(data, data_type, media_type)``.

    ``text/plain`` becomes ``str`` (charset parameter, UTF-8 by default), ``application/json``
    the decoded JSON value, anything else ``bytes`` untouched.
    """
    media_type, data_type, charset = _payload_format(content_type)
    if data_type == "text":
        try:
            return _decode_text(body, charset), "text", media_type
        except UnicodeError:
            raise InvalidEventError("The text payload does not match its charset.") from None
    if data_type == "json":
        try:
            text = _decode_text(body, charset)
        except UnicodeError:
            raise InvalidEventError("The JSON payload does not match its charset.") from None
        try:
            value = decode_json(text)
            if "\\ud" in text or "\\uD" in text:
                # Escaped surrogates must pair up: a lone one is no text a reply could carry.
                json.dumps(value, ensure_ascii=False).encode()
        except UnicodeError:
            raise InvalidEventError("The JSON payload holds an unpaired surrogate.") from None
        except (ValueError, RecursionError):
            raise InvalidEventError("The JSON payload is not valid JSON.") from None
        return value, "json", media_type
    return body, "binary", media_type


_JSON_TYPES = (dict, list, int, float, bool)


def encode_user_event_reply(value: Any) -> Reply:
    """The reply for a user event handler's return value.

    ``str`` -> text, ``bytes`` -> binary, dict/list/number/bool -> JSON, None -> 204, or an
    explicit :class:`UserEventResponse`. Anything else raises ``TypeError``.
    """
    if value is None:
        return NO_CONTENT
    data_type: DataType | None = None
    if isinstance(value, UserEventResponse):
        value, data_type = value.data, value.data_type
    if data_type is None:
        if isinstance(value, str):
            data_type = "text"
        elif isinstance(value, (bytes, bytearray, memoryview)):
            data_type = "binary"
        elif isinstance(value, _JSON_TYPES):
            data_type = "json"
        else:
            raise TypeError(
                f"a user event handler returned {type(value).__name__}; return str (text), "
                "bytes (binary), a dict, list, number or bool (JSON), a UserEventResponse, "
                "or None for no reply"
            )
    if data_type == "json":
        if isinstance(value, (bytes, bytearray, memoryview)):
            return Reply(200, JSON_CONTENT_TYPE, bytes(value))
        return Reply(200, JSON_CONTENT_TYPE, encode_json(value))
    if data_type == "text":
        if not isinstance(value, str):
            raise TypeError(f"a text reply must be str, not {type(value).__name__}")
        return Reply(200, TEXT_CONTENT_TYPE, value.encode())
    if data_type == "binary":
        if isinstance(value, str):
            raise TypeError("a binary reply must be bytes, not str")
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"a binary reply must be bytes, not {type(value).__name__}")
        return Reply(200, BINARY_CONTENT_TYPE, bytes(value))
    raise TypeError(f"unknown data_type {data_type!r}: use 'text', 'json' or 'binary'")


def _string_sequence(value: Any, name: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"ConnectResponse.{name} must be a list of strings, not {value!r}")
    if not all(isinstance(item, str) for item in value):
        raise TypeError(f"ConnectResponse.{name} must contain only strings")
    return list(value)


def encode_connect_reply(value: Any, requested_subprotocols: Sequence[str] = ()) -> Reply:
    """The reply for a connect handler's return value (a :class:`ConnectResponse` or None).

    Raises ``TypeError``/``ValueError`` for a value the service could not use.
    """
    if value is None:
        return NO_CONTENT
    if not isinstance(value, ConnectResponse):
        raise TypeError(
            f"a connect handler returned {type(value).__name__}; return a ConnectResponse, "
            "None to accept as is, or abort() to reject"
        )
    body: dict[str, Any] = {}
    if value.user_id is not None:
        if not isinstance(value.user_id, str):
            raise TypeError("ConnectResponse.user_id must be a string")
        body["userId"] = value.user_id
    if value.groups is not None:
        body["groups"] = _string_sequence(value.groups, "groups")
    if value.roles is not None:
        body["roles"] = _string_sequence(value.roles, "roles")
    if value.subprotocol is not None:
        if value.subprotocol not in requested_subprotocols:
            raise ValueError(
                f"ConnectResponse.subprotocol {value.subprotocol!r} is not one the client asked "
                f"for ({list(requested_subprotocols)!r})"
            )
        body["subprotocol"] = value.subprotocol
    if value.mqtt_user_properties is not None:
        body["mqtt"] = {
            "userProperties": [
                {"name": p.name, "value": p.value} for p in value.mqtt_user_properties
            ]
        }
    if not body:
        return NO_CONTENT
    return Reply(200, JSON_CONTENT_TYPE, encode_json(body))


def decode_connect_reply(body: bytes) -> ConnectResponse:
    """Read a connect reply body as the service does (for the emulator and the test helpers).

    Raises ``ValueError`` when the body is not a connect reply.
    """
    if not body.strip():
        return ConnectResponse()
    value = json.loads(body)
    if not isinstance(value, dict):
        raise ValueError("a connect reply must be a JSON object")

    def strings(name: str) -> list[str] | None:
        items = value.get(name)
        if items is None:
            return None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ValueError(f"a connect reply's {name} must be a list of strings")
        return items

    user_id = value.get("userId")
    subprotocol = value.get("subprotocol")
    if user_id is not None and not isinstance(user_id, str):
        raise ValueError("a connect reply's userId must be a string")
    if subprotocol is not None and not isinstance(subprotocol, str):
        raise ValueError("a connect reply's subprotocol must be a string")
    mqtt = value.get("mqtt")
    properties = None
    if isinstance(mqtt, dict) and isinstance(mqtt.get("userProperties"), list):
        properties = [
            MqttUserProperty(str(p.get("name")), str(p.get("value")))
            for p in mqtt["userProperties"]
            if isinstance(p, dict)
        ]
    return ConnectResponse(
        user_id=user_id,
        groups=strings("groups"),
        roles=strings("roles"),
        subprotocol=subprotocol,
        mqtt_user_properties=properties,
    )


def mqtt_code(status: int, protocol_version: int) -> int:
    """The MQTT CONNACK code for a rejection status (3.1.1 return code or 5 reason code)."""
    version = 5 if protocol_version >= 5 else 4
    if status >= 500:
        return _MQTT_SERVER_ERROR[version]
    return _MQTT_CODES[version].get(status, _MQTT_OTHER_4XX[version])


def encode_connect_rejection(
    status: int,
    reason: str,
    mqtt: MqttConnectProperties | None = None,
    explicit_mqtt_code: int | None = None,
) -> Reply:
    """The reply that rejects a connection: the reason as text, or the MQTT JSON form."""
    if mqtt is None:
        return Reply(status, TEXT_CONTENT_TYPE, reason.encode())
    code = (
        explicit_mqtt_code
        if explicit_mqtt_code is not None
        else mqtt_code(status, mqtt.protocol_version)
    )
    return Reply(status, JSON_CONTENT_TYPE, encode_json({"mqtt": {"code": code, "reason": reason}}))


def state_header(original: str | None, state: Mapping[str, Any]) -> str | None:
    """The ``ce-connectionState`` value for a reply, given the header the request carried.

    None when the handler left the state as it was (the service keeps it), else the whole new
    state, which is the empty object when the handler cleared it. Raises ``TypeError`` or
    ``ValueError`` when the new state cannot be encoded as JSON.
    """
    if not original:
        return encode_state(state) if state else None
    try:
        initial = decode_state(original)
    except InvalidStateError:
        initial = {}
    if state == initial:
        return None
    return encode_state(state)


def reply_state(event: WebPubSubEvent) -> str | None:
    """:func:`state_header` for a blocking event's reply; None, without decoding anything, when
    the handler never looked at ``event.state``."""
    if not event.state_loaded:
        return None
    return state_header(event.state_header, event.state)


def event_type(event_name: str) -> str:
    """The CloudEvents type of an event name: ``connect`` -> ``azure.webpubsub.sys.connect``,
    ``joined`` / ``left`` -> ``azure.webpubsub.gp.*``, anything else a user event."""
    if event_name in ("connect", "connected", "disconnected"):
        return f"azure.webpubsub.sys.{event_name}"
    if event_name in ("joined", "left"):
        return f"azure.webpubsub.gp.{event_name}"
    return USER_PREFIX + event_name


def build_event_headers(
    event_name: str,
    *,
    hub: str,
    connection_id: str,
    keys: Sequence[str],
    user_id: str | None = None,
    subprotocol: str | None = None,
    state: Mapping[str, Any] | str | None = None,
    origin: str | None = None,
    event_id: str | None = None,
    ce_type: str | None = None,
    time: str | None = None,
    physical_connection_id: str | None = None,
    session_id: str | None = None,
    content_type: str | None = None,
) -> dict[str, str]:
    """The headers the service sends with an event (PROTOCOL.md section 2), signed with
    ``keys``. Used by the emulator and the testing helpers.

    ``state`` is the connection state, or its header value as the service stored it.
    ``ce_type`` names the type when the event name alone would not (a user event called
    ``connected``). ``physical_connection_id`` marks an MQTT client.
    """
    import datetime
    import uuid

    from .signature import sign

    headers = {
        "ce-specversion": "1.0",
        "ce-awpsversion": "1.0",
        "ce-type": ce_type or event_type(event_name),
        "ce-source": f"/hubs/{hub.lower()}/client/{connection_id}",
        "ce-id": event_id or uuid.uuid4().hex,
        "ce-time": time
        or datetime.datetime.now(datetime.timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "ce-hub": hub.lower(),
        "ce-eventName": event_name,
        "ce-connectionId": connection_id,
    }
    if keys:
        headers["ce-signature"] = sign(connection_id, keys)
    if user_id:
        headers["ce-userId"] = user_id
    if subprotocol:
        headers["ce-subprotocol"] = subprotocol
    if state:
        headers["ce-connectionState"] = state if isinstance(state, str) else encode_state(state)
    if physical_connection_id:
        headers["ce-physicalConnectionId"] = physical_connection_id
        if session_id and event_name != "connect":
            headers["ce-sessionId"] = session_id
    if origin:
        headers["WebHook-Request-Origin"] = origin
    if content_type:
        headers["Content-Type"] = content_type
    return headers


def encode_payload(data: Any, data_type: DataType | None = None) -> tuple[bytes, str]:
    """A user event payload as the service forwards it: ``(body, content type)``.

    ``str`` is text, ``bytes`` binary, anything else JSON, unless ``data_type`` says otherwise.
    """
    if data_type is None:
        data_type = (
            "text"
            if isinstance(data, str)
            else "binary"
            if isinstance(data, (bytes, bytearray, memoryview))
            else "json"
        )
    if data_type == "text":
        return str(data).encode(), TEXT_CONTENT_TYPE
    if data_type == "binary":
        return bytes(data), BINARY_CONTENT_TYPE
    if data_type == "json":
        return encode_json(data), JSON_CONTENT_TYPE
    raise ValueError(f"unknown data_type {data_type!r}: use 'text', 'json' or 'binary'")
