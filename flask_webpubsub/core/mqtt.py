"""MQTT clients on Web PubSub: the topics, headers and bodies that carry their events between the
service and the app (docs/protocol.md section 9, docs/mqtt.md).

The service's MQTT documentation ("CloudEvents extension for MQTT", "MQTT and Web PubSub term
mappings") is the source of each fact here. The emulator and the testing helpers both play the
service with these functions, so the two never disagree.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from typing import Any

from .wire import mqtt_code

#: A PUBLISH to ``$webpubsub/server/events/{name}`` is a user event ``name`` for the upstream.
SERVER_EVENTS_PREFIX = "$webpubsub/server/events/"
#: Where REST sends to a whole hub, a user or a connection reach an MQTT client (at QoS 1).
SERVER_MESSAGES_TOPIC = "$webpubsub/server/messages"
#: The user property that tells an MQTT client the HTTP status of its event's reply.
STATUS_CODE_PROPERTY = "azure-status-code"
#: An MQTT user property ``name=value`` travels as the HTTP header ``mqtt-name: value``.
USER_PROPERTY_HEADER_PREFIX = "mqtt-"
#: The ``disconnected`` reason of a session that a CONNECT with clean start replaced.
SESSION_REPLACED = "The session was replaced by a clean start."
#: A client id the service accepts: letters and digits, 1 to 128 of them.
CLIENT_ID = re.compile(r"^[0-9A-Za-z]{1,128}$")
#: How long the service keeps a session after its client dropped, at most (seconds).
MAX_SESSION_EXPIRY = 30
#: MQTT 3.1.1 keep-alive the service allows (seconds; 0, no keep-alive, is refused too).
KEEP_ALIVE_RANGE = (1, 180)
#: The last-will limits the service documents.
MAX_WILL_TOPIC_LENGTH = 1024
MAX_WILL_PAYLOAD_BYTES = 2000

#: MQTT 5 CONNACK reason codes a rejection may carry (MQTT 5.0 section 3.2.2.2).
_CONNACK_FAILURES_5 = frozenset(
    {0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
     0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F}
)
#: MQTT 3.1.1 CONNACK return codes that refuse a connection (section 3.2.2.3).
_CONNACK_FAILURES_4 = frozenset(range(1, 6))
_UNSPECIFIED_ERROR = 0x80
#: An HTTP header name (RFC 9110 token) and a value HTTP can carry.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_VALUE = re.compile(r"[\x00\r\n]")


def event_name_of(topic: str) -> str | None:
    """The user event a PUBLISH topic names (``$webpubsub/server/events/{name}``, the name
    without ``/``), or None when the topic is an ordinary one (a group)."""
    if not topic.startswith(SERVER_EVENTS_PREFIX):
        return None
    name = topic[len(SERVER_EVENTS_PREFIX):]
    return name if name and "/" not in name else None


def is_reserved_topic(topic: str) -> bool:
    """Whether a topic belongs to the service (``$webpubsub/...``) rather than to a group."""
    return topic.startswith("$webpubsub/")


def reply_topic(event_name: str, ok: bool) -> str:
    """Where the reply to an event goes: ``.../{name}/succeeded`` on 2xx, else ``.../failed``."""
    return f"{SERVER_EVENTS_PREFIX}{event_name}/{'succeeded' if ok else 'failed'}"


def user_property_headers(properties: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The ``mqtt-{name}`` headers of MQTT user properties. A name that repeats gives one
    header with the values joined by ", " (as HTTP joins repeated headers); a property whose
    name is not an HTTP token, or whose value holds a line break or NUL, cannot travel as a
    header and is left out."""
    headers: dict[str, str] = {}
    for name, value in properties:
        if not _TOKEN.match(name) or _BAD_VALUE.search(value):
            continue
        header = USER_PROPERTY_HEADER_PREFIX + name
        headers[header] = f"{headers[header]}, {value}" if header in headers else value
    return headers


def user_properties_from_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The MQTT user properties of a reply's ``mqtt-*`` headers, in order."""
    prefix = USER_PROPERTY_HEADER_PREFIX
    return [
        (name[len(prefix):], value)
        for name, value in headers
        if name.lower().startswith(prefix) and len(name) > len(prefix)
    ]


def connect_body(
    *,
    protocol_version: int,
    clean_start: bool,
    username: str | None,
    password: bytes | None,
    user_properties: Sequence[tuple[str, str]] | None,
) -> dict[str, Any]:
    """The ``mqtt`` member of a ``connect`` event's body: the password as base64 of its bytes,
    user properties as ``{name, value}`` objects (null in MQTT 3.1.1, which has none)."""
    return {
        "protocolVersion": protocol_version,
        "cleanStart": clean_start,
        "username": username,
        "password": base64.b64encode(password).decode("ascii") if password is not None else None,
        "userProperties": (
            None if user_properties is None
            else [{"name": n, "value": v} for n, v in user_properties]
        ),
    }


def disconnected_body(
    reason: str | None,
    *,
    initiated_by_client: bool,
    disconnect_code: int | None = None,
    user_properties: Sequence[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """A session's ``disconnected`` event body. ``disconnect_code``: the reason code of the
    client's DISCONNECT packet (0 in MQTT 3.1.1), None when the session ended without one."""
    packet = None
    if disconnect_code is not None:
        packet = {
            "code": disconnect_code,
            "userProperties": [{"name": n, "value": v} for n, v in user_properties or ()],
        }
    return {
        "reason": reason,
        "mqtt": {"initiatedByClient": initiated_by_client, "disconnectPacket": packet},
    }


def connack_code(status: int, code: int | None, protocol_version: int) -> int:
    """The CONNACK code that refuses a client whose ``connect`` the upstream rejected with
    ``status`` and, in the MQTT JSON form, ``code``: that code when it is one a CONNACK of the
    client's version may carry, "unspecified error" for any other code in MQTT 5, and the code
    of the status otherwise (docs/protocol.md section 4)."""
    if protocol_version >= 5:
        if code is None:
            return mqtt_code(status, 5)
        return code if code in _CONNACK_FAILURES_5 else _UNSPECIFIED_ERROR
    if code in _CONNACK_FAILURES_4:
        return code
    return mqtt_code(status, 4)

