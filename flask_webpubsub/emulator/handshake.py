"""Accepting a client, whatever its protocol: its access token, then the upstream's ``connect``
event (docs/protocol.md sections 3 and 6), as the service does before it upgrades the socket.

:func:`accept` raises :class:`Refused` with the HTTP status and reason that answer the client's
handshake.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flask_webpubsub.core.errors import InvalidTokenError
from flask_webpubsub.core.jsoncodec import encode_json
from flask_webpubsub.core.service import (
    Admission,
    admit,
    decode_connect_reply,
    read_rejection,
    verify_token,
)
from flask_webpubsub.core.wire import JSON_CONTENT_TYPE, client_path

from .service import Service
from .upstream import UpstreamError

logger = logging.getLogger(__name__)

#: Never forwarded upstream: they carry the client's credentials.
_PRIVATE_QUERY = frozenset({"access_token"})
_PRIVATE_HEADERS = frozenset({"authorization", "cookie"})
#: The longest rejection reason passed on to the client.
_MAX_REASON = 512


class Refused(Exception):
    """The client is not accepted: the handshake's HTTP status, and why (no secrets).

    ``mqtt_code`` and ``mqtt_user_properties`` are what a rejection in the MQTT JSON form
    asked an MQTT client to be told."""

    def __init__(
        self,
        status: int,
        reason: str,
        *,
        mqtt_code: int | None = None,
        mqtt_user_properties: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.mqtt_code = mqtt_code
        self.mqtt_user_properties = tuple(mqtt_user_properties)


@dataclass(frozen=True)
class ClientRequest:
    """What a client's handshake asks for."""

    hub_name: str
    #: Its access token, from the query or the Authorization header.
    token: str | None
    #: The URL its token must be for.
    audience: str
    query: Sequence[tuple[str, str]]
    headers: Sequence[tuple[str, str]]
    #: The subprotocols it offers, in its order.
    subprotocols: Sequence[str]


def client_request(
    hub_name: str,
    client_protocol: str,
    *,
    origin: str,
    query: Sequence[tuple[str, str]],
    headers: Sequence[tuple[str, str]],
    subprotocols: Sequence[str],
) -> ClientRequest:
    """What a client's handshake asks for, at ``origin`` (``scheme://host``) on the client
    path of ``client_protocol``: its access token is the query's ``access_token``, else a
    ``Bearer`` Authorization header; its audience is that path's URL."""
    token = next((value for name, value in query if name == "access_token"), None)
    if not token:
        authorization = next(
            (value for name, value in headers if name.lower() == "authorization"), ""
        )
        if authorization[:7].lower() == "bearer ":
            token = authorization[7:].strip()
    return ClientRequest(
        hub_name=hub_name,
        token=token,
        audience=origin + client_path(hub_name, client_protocol),
        query=query,
        headers=headers,
        subprotocols=subprotocols,
    )


@dataclass(frozen=True)
class Accepted:
    connection_id: str
    admission: Admission
    connection_state: str | None
    #: The MQTT user properties the upstream's reply gives the client (in its CONNACK).
    mqtt_user_properties: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class _Candidate:
    """The event context of a connection that is not accepted yet."""

    hub_name: str
    connection_id: str
    user_id: str | None
    subprotocol: str | None = None
    connection_state: str | None = None
    #: An MQTT client's network connection (``ce-physicalConnectionId``).
    physical_connection_id: str | None = None


async def accept(
    service: Service,
    client: ClientRequest,
    spoken: Container[str | None],
    *,
    claims: Mapping[str, Any] | None = None,
    connection_id: str | None = None,
    physical_connection_id: str | None = None,
    mqtt: Mapping[str, Any] | None = None,
) -> Accepted:
    """Check the token (none at all is fine in a hub that allows anonymous connections) and ask
    the upstream (``connect``, when a handler takes it).

    The subprotocol is the upstream's choice, else the first offered one in ``spoken``. An MQTT
    client, whose token was checked (:func:`verify`) when its socket opened, is asked about on
    each CONNECT packet: its ``claims``, its client id as ``connection_id``, its network
    connection's id, and the ``mqtt`` member of the event's body.
    """
    hub_name = client.hub_name.lower()
    if claims is None:
        claims = verify(service, client)
    sub = claims.get("sub")
    token = Admission(
        user_id=sub if isinstance(sub, str) and sub else None,
        roles=tuple(_strings(claims.get("role"))),
        groups=tuple(_strings(claims.get("webpubsub.group") or claims.get("group"))),
        subprotocol=next((p for p in client.subprotocols if p in spoken), None),
    )
    candidate = _Candidate(
        hub_name, connection_id or uuid.uuid4().hex, token.user_id,
        subprotocol=token.subprotocol if mqtt is not None else None,
        physical_connection_id=physical_connection_id,
    )
    handler = service.upstream.handler(hub_name, "connect", system=True)
    if handler is None:
        return Accepted(candidate.connection_id, token, None)
    body = {
        "claims": {name: _strings(value) for name, value in claims.items()},
        "query": _multi(client.query, _PRIVATE_QUERY),
        "headers": _multi(client.headers, _PRIVATE_HEADERS),
        "subprotocols": list(client.subprotocols),
        "clientCertificates": [],
    }
    if mqtt is not None:
        body["mqtt"] = dict(mqtt)
    try:
        reply = await service.upstream.send(
            handler, candidate, "connect", encode_json(body), JSON_CONTENT_TYPE, system=True
        )
    except UpstreamError as exc:
        service.trace.add("error", hub_name, candidate.connection_id, f"connect failed: {exc}")
        raise Refused(500, f"The upstream connect event failed: {exc}") from None
    if not reply.ok:
        reason, mqtt_code = read_rejection(reply.body)
        reason = reason[:_MAX_REASON]
        service.trace.add(
            "upstream", hub_name, candidate.connection_id,
            f"connect rejected: {reply.status} {reason}".rstrip(),
        )
        raise Refused(
            reply.status if 400 <= reply.status < 500 else 500,
            reason or f"The upstream rejected the connection ({reply.status}).",
            mqtt_code=mqtt_code,
            mqtt_user_properties=_mqtt_user_properties(reply.body),
        )
    try:
        response = decode_connect_reply(reply.body if reply.status != 204 else b"")
    except ValueError as exc:
        logger.warning("The upstream's connect reply is invalid: %s.", exc)
        raise Refused(500, f"The upstream's connect reply is invalid: {exc}.") from None
    try:
        admission = admit(response, token, client.subprotocols)
    except ValueError as exc:
        logger.warning("%s.", str(exc)[0].upper() + str(exc)[1:])
        raise Refused(500, "The upstream chose a subprotocol the client did not offer.") from None
    return Accepted(
        candidate.connection_id, admission, reply.next_connection_state(None),
        tuple((p.name, p.value) for p in response.mqtt_user_properties or ()),
    )


def _mqtt_user_properties(body: bytes) -> list[tuple[str, str]]:
    """The ``mqtt.userProperties`` of a rejection in the MQTT JSON form (none otherwise)."""
    try:
        properties = decode_connect_reply(body).mqtt_user_properties
    except (ValueError, RecursionError):
        return []
    return [(p.name, p.value) for p in properties or ()]


def verify(service: Service, client: ClientRequest) -> dict[str, Any]:
    """The claims of the client's access token; :class:`Refused` (401) without a valid one,
    unless the hub allows anonymous clients."""
    if not client.token:
        if service.allows_anonymous(client.hub_name):
            return {}  # the hub's anonymousConnectPolicy is allow: no claims, no user
        raise Refused(401, "Missing access token: pass access_token in the query or a Bearer "
                           "Authorization header (the hub's anonymous connect policy is deny).")
    try:
        return verify_token(client.token, service.access_keys, client.audience)
    except InvalidTokenError as exc:
        service.trace.add("error", client.hub_name.lower(), None, f"client token refused: {exc}")
        logger.info("Refused a client of hub %s: %s.", client.hub_name, exc)
        raise Refused(401, f"Unauthorized: {str(exc).capitalize()}.") from None


def offered_subprotocols(headers: Iterable[str]) -> list[str]:
    """The subprotocols a client offers, in its order, from its ``Sec-WebSocket-Protocol``
    header lines."""
    return [p.strip() for p in ",".join(headers).split(",") if p.strip()]


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def _multi(pairs: Iterable[tuple[str, str]], private: Container[str]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for name, value in pairs:
        if name.lower() not in private:
            result.setdefault(name, []).append(value)
    return result
