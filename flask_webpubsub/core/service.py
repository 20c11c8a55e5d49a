"""The service's side of the wire: the requests it sends to the app, what it makes of the
replies, and the tokens it checks.

Only the emulator and the testing helpers play the service; they share these functions, so the
two can never disagree about what the service does.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt

from .errors import InvalidTokenError
from .events import ConnectResponse, MqttUserProperty
from .jsoncodec import decode_json
from .signature import sign
from .state import encode_state
from .wire import encode_attribute, event_type


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
    """The headers the service sends with an event (docs/protocol.md section 2), signed with
    ``keys``. Used by the emulator and the testing helpers.

    ``state`` is the connection state, or its header value as the service stored it.
    ``ce_type`` names the type when the event name alone would not (a user event called
    ``connected``). ``physical_connection_id`` marks an MQTT client. Attribute values are
    written as the CloudEvents HTTP binding writes them (:func:`.wire.encode_attribute`): a
    user id such as "José" travels percent-encoded.
    """
    encode = encode_attribute
    headers = {
        "ce-specversion": "1.0",
        "ce-awpsversion": "1.0",
        "ce-type": encode(ce_type or event_type(event_name)),
        "ce-source": encode(
            f"/hubs/{hub.lower()}/client/{connection_id}"
            + (f"/{physical_connection_id}" if physical_connection_id else "")
        ),
        "ce-id": event_id or uuid.uuid4().hex,
        "ce-time": time
        or datetime.datetime.now(datetime.timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "ce-hub": encode(hub.lower()),
        "ce-eventName": encode(event_name),
        "ce-connectionId": encode(connection_id),
    }
    if keys:
        headers["ce-signature"] = sign(connection_id, keys)
    if user_id:
        headers["ce-userId"] = encode(user_id)
    if subprotocol:
        headers["ce-subprotocol"] = encode(subprotocol)
    if state:
        headers["ce-connectionState"] = state if isinstance(state, str) else encode_state(state)
    if physical_connection_id:
        headers["ce-physicalConnectionId"] = encode(physical_connection_id)
        if session_id and event_name != "connect":
            headers["ce-sessionId"] = encode(session_id)
    if origin:
        headers["WebHook-Request-Origin"] = origin
    if content_type:
        headers["Content-Type"] = content_type
    return headers


def decode_connect_reply(body: bytes) -> ConnectResponse:
    """Read a connect reply body as the service does (for the emulator and the test helpers).

    Raises ``ValueError`` when the body is not a connect reply.
    """
    if not body.strip():
        return ConnectResponse()
    value = decode_json(body)
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


def _normalize_audience(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def verify_token(token: str, keys: Sequence[str], audience: str) -> dict[str, Any]:
    """Verify an HS256 token's signature (with any key), expiry and audience; return its claims.

    The audience is compared without query string, trailing slash or case of scheme and host.
    Raises :class:`InvalidTokenError` with a reason that does not contain the token.
    """
    claims: dict[str, Any] | None = None
    for key in keys:
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["HS256"],
                options={"verify_aud": False, "require": ["exp"]},
            )
            break
        except jwt.ExpiredSignatureError:
            raise InvalidTokenError("the token has expired") from None
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError:
            raise InvalidTokenError("the token is malformed") from None
    if claims is None:
        raise InvalidTokenError("the token's signature does not match any access key")
    aud = claims.get("aud")
    if not isinstance(aud, str) or _normalize_audience(aud) != _normalize_audience(audience):
        raise InvalidTokenError("the token's audience does not match this URL")
    return claims


@dataclass(frozen=True)
class Admission:
    """Who a connection is and where it belongs, as the service sets it up."""

    user_id: str | None = None
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    subprotocol: str | None = None


def admit(reply: ConnectResponse, token: Admission, offered: Sequence[str]) -> Admission:
    """What the service makes of an accepted ``connect``, given what the client's token said.

    The reply's user id replaces the token's (an empty one makes the connection anonymous); its
    roles and groups come in addition to the token's; its subprotocol is chosen, and must be one
    the client offered, else ``ValueError``.
    """
    if reply.subprotocol is not None and reply.subprotocol not in offered:
        raise ValueError(
            f"the upstream chose the subprotocol {reply.subprotocol!r}, which the client did "
            "not offer"
        )
    return Admission(
        user_id=token.user_id if reply.user_id is None else (reply.user_id or None),
        roles=tuple(dict.fromkeys([*token.roles, *(reply.roles or ())])),
        groups=tuple(dict.fromkeys([*token.groups, *(reply.groups or ())])),
        subprotocol=token.subprotocol if reply.subprotocol is None else reply.subprotocol,
    )


def read_rejection(body: bytes) -> tuple[str, int | None]:
    """The reason of a rejecting reply, and its MQTT code when it has the MQTT JSON form
    ``{"mqtt": {"code": c, "reason": r}}`` (docs/protocol.md section 4)."""
    try:
        mqtt = decode_json(body)["mqtt"]
    except (ValueError, KeyError, TypeError, RecursionError):
        mqtt = None
    if isinstance(mqtt, dict):
        code = mqtt.get("code")
        return str(mqtt.get("reason", "")), code if isinstance(code, int) else None
    return body.decode("utf-8", "replace"), None
