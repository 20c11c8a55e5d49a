"""A handler's result, turned into the exact reply the service expects (docs/protocol.md
sections 4 and 5)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from .events import (
    ConnectResponse,
    MqttConnectProperties,
    MqttUserProperty,
    UserEventResponse,
    WebPubSubEvent,
)
from .jsoncodec import encode_json
from .mqtt import USER_PROPERTY_HEADER_PREFIX
from .payload import metadata_headers
from .state import changed_state_header
from .wire import (
    BINARY_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    DataType,
    mqtt_code,
)


class Reply(NamedTuple):
    """An HTTP reply for the service: status, content type (None for no body), body, and any
    headers besides (a user event reply's metadata)."""

    status: int
    content_type: str | None
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


NO_CONTENT = Reply(204, None, b"")
EMPTY_OK = Reply(200, None, b"")


_JSON_TYPES = (dict, list, int, float, bool)


def encode_user_event_reply(value: Any) -> Reply:
    """The reply for a user event handler's return value.

    ``str`` -> text, ``bytes`` -> binary, dict/list/number/bool -> JSON, None -> 204, or an
    explicit :class:`UserEventResponse`, whose metadata goes as ``x-webpubsub-metadata-*``
    headers. Anything else raises ``TypeError``.
    """
    if isinstance(value, UserEventResponse):
        reply = _encode_user_data(value.data, value.data_type)
        headers = [*metadata_headers(value.metadata),
                   *_user_property_headers(value.mqtt_user_properties)]
        return reply._replace(headers=tuple(headers)) if headers else reply
    return _encode_user_data(value, None)


_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _user_property_headers(properties: Sequence[MqttUserProperty]) -> list[tuple[str, str]]:
    """``mqtt-{name}`` headers, one per property, in order (a name may repeat)."""
    if isinstance(properties, (str, bytes)) or not isinstance(properties, Sequence):
        raise TypeError("UserEventResponse.mqtt_user_properties must be a list of "
                        "MqttUserProperty")
    headers = []
    for prop in properties:
        if not isinstance(prop, MqttUserProperty):
            raise TypeError("UserEventResponse.mqtt_user_properties must be a list of "
                            f"MqttUserProperty, not {type(prop).__name__}")
        if not isinstance(prop.name, str) or not _HEADER_NAME.fullmatch(prop.name):
            raise ValueError(f"the MQTT user property name {prop.name!r} cannot be a header name")
        if not isinstance(prop.value, str) or not (prop.value.isascii()
                                                    and prop.value.isprintable()):
            raise ValueError(f"the value of the MQTT user property {prop.name!r} is not "
                             "printable ASCII")
        headers.append((USER_PROPERTY_HEADER_PREFIX + prop.name, prop.value))
    return headers


def _encode_user_data(value: Any, data_type: DataType | None) -> Reply:
    if value is None and data_type is None:
        return NO_CONTENT
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


def reply_state(event: WebPubSubEvent) -> str | None:
    """The ``ce-connectionState`` value for a blocking event's reply
    (:func:`.state.changed_state_header`); None, without decoding anything, when the handler
    never looked at ``event.state``."""
    if not event.state_loaded:
        return None
    return changed_state_header(event.state_header, event.state)
