"""The facts of the wire, each stated once: event types, media types, subprotocols, names,
paths, origins and size limits (docs/protocol.md).

The extension, the testing helpers and the emulator all read them from here, so the two sides of
the wire cannot drift apart.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal
from urllib.parse import unquote, urlsplit

# -- CloudEvents types (docs/protocol.md section 2) ---------------------------------------------

TYPE_PREFIX = "azure.webpubsub."
SYSTEM_PREFIX = "azure.webpubsub.sys."
GROUP_PREFIX = "azure.webpubsub.gp."
USER_PREFIX = "azure.webpubsub.user."
CONNECT = "azure.webpubsub.sys.connect"
CONNECTED = "azure.webpubsub.sys.connected"
DISCONNECTED = "azure.webpubsub.sys.disconnected"
GROUP_JOINED = "azure.webpubsub.gp.joined"
GROUP_LEFT = "azure.webpubsub.gp.left"

#: System events by their ``ce-eventName``, as the portal's event handler settings name them,
#: with their CloudEvents types.
SYSTEM_EVENT_TYPES: dict[str, str] = {
    "connect": CONNECT,
    "connected": CONNECTED,
    "disconnected": DISCONNECTED,
    "joined": GROUP_JOINED,
    "left": GROUP_LEFT,
}
SYSTEM_EVENTS = frozenset(SYSTEM_EVENT_TYPES)


def event_type(event_name: str) -> str:
    """The CloudEvents type of an event name: ``connect`` -> ``azure.webpubsub.sys.connect``,
    ``joined`` / ``left`` -> ``azure.webpubsub.gp.*``, anything else a user event."""
    return SYSTEM_EVENT_TYPES.get(event_name) or USER_PREFIX + event_name


# -- attribute values in headers (docs/protocol.md section 2) ----------------------------------

_PLAIN = frozenset(range(0x21, 0x7F)) - {ord('"'), ord("%")}


def encode_attribute(value: str) -> str:
    """A ``ce-*`` attribute as a header value, as the CloudEvents HTTP binding writes it
    (section 3.1.3.2): space, ``"``, ``%`` and everything outside printable ASCII
    percent-encoded as UTF-8. Ids, names and hubs of ASCII letters, digits and punctuation
    stay as they are."""
    if value.isascii() and all(ord(c) in _PLAIN for c in value):
        return value
    return "".join(
        chr(b) if b in _PLAIN else f"%{b:02X}" for b in value.encode("utf-8")
    )


def decode_attribute(value: str) -> str:
    """A ``ce-*`` header value as the attribute's text: percent-decoded (UTF-8), and raw UTF-8
    that a WSGI server handed over as Latin-1 (PEP 3333) read as UTF-8. A value that is neither
    stays as it arrived."""
    if value.isascii():
        if "%" not in value:
            return value
        try:
            return unquote(value, errors="strict")
        except UnicodeDecodeError:
            return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


# -- media types --------------------------------------------------------------------------------

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"
BINARY_CONTENT_TYPE = "application/octet-stream"
PROTOBUF_CONTENT_TYPE = "application/x-protobuf"

#: How a payload is typed on the wire.
DataType = Literal["text", "json", "binary"]
#: The same, with the protobuf type that protobuf clients may send.
MessageDataType = Literal["text", "json", "binary", "protobuf"]

#: The Content-Type a payload of each data type travels with.
CONTENT_TYPES: dict[str, str] = {
    "text": TEXT_CONTENT_TYPE,
    "json": JSON_CONTENT_TYPE,
    "binary": BINARY_CONTENT_TYPE,
    "protobuf": PROTOBUF_CONTENT_TYPE,
}
#: The data type of each media type (without parameters); any other media type is binary.
MEDIA_DATA_TYPES: dict[str, str] = {
    "text/plain": "text",
    "application/json": "json",
    "application/octet-stream": "binary",
    "application/x-protobuf": "protobuf",
}


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


# -- client subprotocols (docs/protocol.md section 8) --------------------------------------------

JSON_SUBPROTOCOL = "json.webpubsub.azure.v1"
RELIABLE_JSON_SUBPROTOCOL = "json.reliable.webpubsub.azure.v1"
PROTOBUF_SUBPROTOCOL = "protobuf.webpubsub.azure.v1"
RELIABLE_PROTOBUF_SUBPROTOCOL = "protobuf.reliable.webpubsub.azure.v1"
MQTT_SUBPROTOCOL = "mqtt"

# -- names and paths ----------------------------------------------------------------------------

#: A hub name starts with a letter and has only letters, digits and underscores, up to 128
#: characters ("Hub name" in the REST API reference).
HUB_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,127}$")
HUB_NAME_RULE = "a letter followed by letters, digits or underscores (128 characters at most)"
#: The longest group, user or event name a client or the REST API may use.
MAX_NAME_LENGTH = 1024

ClientProtocol = Literal["default", "mqtt", "socketio"]

#: The client connection path of each client protocol, before the hub name.
CLIENT_PATHS: dict[str, str] = {
    "default": "/client/hubs/",
    "mqtt": "/clients/mqtt/hubs/",
    "socketio": "/clients/socketio/hubs/",
}


def is_hub_name(name: object) -> bool:
    """Whether ``name`` is a hub name the service accepts."""
    return isinstance(name, str) and HUB_NAME.match(name) is not None


def client_path(hub: str, client_protocol: str = "default") -> str:
    """The client connection path for a hub: ``/client/hubs/{hub}`` and its MQTT/Socket.IO forms."""
    try:
        return CLIENT_PATHS[client_protocol.lower()] + hub
    except KeyError:
        raise ValueError(
            f"unknown client protocol {client_protocol!r}: use default, mqtt or socketio"
        ) from None


# -- abuse protection (docs/protocol.md section 1) ----------------------------------------------

_ORIGIN_SEPARATORS = re.compile(r"[,\s]+")


def split_origins(header: str | None) -> list[str]:
    """The origins in a ``WebHook-Request-Origin`` or ``WebHook-Allowed-Origin`` value: a list
    separated by commas and/or white space."""
    return [o for o in _ORIGIN_SEPARATORS.split(header or "") if o]


def is_loopback_host(host: str | None) -> bool:
    """Whether a URL's host is this machine: ``localhost`` or a loopback address."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def origin_host(origin: str) -> str:
    """The lower-case host of an origin given as a host, ``host:port`` or a URL."""
    origin = origin.strip()
    if "://" not in origin:
        origin = "//" + origin
    try:
        return (urlsplit(origin).hostname or "").lower()
    except ValueError:
        return ""


# -- size limits --------------------------------------------------------------------------------

#: The largest message the service takes: a client frame, a REST send's body.
MAX_MESSAGE_BYTES = 1024 * 1024
#: The largest upstream body or reply either side reads: a message and room for its envelope.
MAX_UPSTREAM_BODY_BYTES = MAX_MESSAGE_BYTES + 64 * 1024

# -- MQTT rejections (docs/protocol.md section 4) -----------------------------------------------

# MQTT 3.1.1 CONNACK return codes and MQTT 5 reason codes for a rejection status.
_MQTT_CODES = {
    4: {400: 4, 401: 5, 403: 5},
    5: {400: 134, 401: 135, 403: 135},
}
_MQTT_OTHER_4XX = {4: 5, 5: 135}
_MQTT_SERVER_ERROR = {4: 3, 5: 128}


def mqtt_code(status: int, protocol_version: int) -> int:
    """The MQTT CONNACK code for a rejection status (3.1.1 return code or 5 reason code)."""
    version = 5 if protocol_version >= 5 else 4
    if status >= 500:
        return _MQTT_SERVER_ERROR[version]
    return _MQTT_CODES[version].get(status, _MQTT_OTHER_4XX[version])


def clip(value: str) -> str:
    """A value quoted for an error message, cut to a readable length."""
    return repr(value if len(value) <= 80 else value[:80] + "...")
