"""The REST data plane under ``/api/hubs/{hub}`` (docs/protocol.md section 7), for the service SDK.

Every request carries ``Authorization: Bearer <JWT>`` signed with the access key, whose ``aud``
is the request URL; with local auth disabled (:mod:`.identity`), an Entra ID token of the
emulator's tenant instead. Status codes are exactly the ones ``azure-messaging-webpubsubservice``
accepts; errors are JSON ``{"code", "message"}``. Every change goes through the hub's roster.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from flask_webpubsub.core.endpoint import ServiceEndpoint, normalize_endpoint
from flask_webpubsub.core.errors import InvalidTokenError
from flask_webpubsub.core.jsoncodec import decode_json, encode_json
from flask_webpubsub.core.service import verify_token
from flask_webpubsub.core.tokens import build_client_token
from flask_webpubsub.core.wire import (
    JSON_CONTENT_TYPE,
    MAX_MESSAGE_BYTES,
    MAX_NAME_LENGTH,
    is_hub_name,
)

from . import metadata as message_metadata
from .connection import MAX_GROUPS, Connection
from .messages import DataMessage
from .odata import FilterError, parse_filter
from .payload import Payload
from .roles import PERMISSIONS
from .roster import Roster
from .service import Service

logger = logging.getLogger(__name__)

#: A REST operation: ``(request, service, hub_name)``.
Operation = Callable[[web.Request, Service, str], Awaitable[web.StreamResponse]]
Route = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Pages of ``list connections`` hold at most this many members.
MAX_PAGE_SIZE = 200


class RestError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=encode_json(value), status=status, headers={"Content-Type": JSON_CONTENT_TYPE}
    )


def error_response(status: int, code: str, message: str) -> web.Response:
    return json_response({"code": code, "message": message}, status)


def _status(status: int) -> web.Response:
    return web.Response(status=status)


def authorized(service: Service, operation: Operation) -> Route:
    """Check the bearer token against the request URL, then carry out the operation on the hub
    the path names (its name in lower case)."""

    @functools.wraps(operation)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        authorization = request.headers.get("Authorization", "")
        if authorization[:7].lower() != "bearer ":
            return error_response(401, "Unauthorized", "Missing bearer token.")
        token = authorization[7:].strip()
        try:
            if service.identity is not None:
                service.identity.verify_rest_token(token)
            else:
                audience = f"{request.scheme}://{request.host}{request.raw_path}"
                verify_token(token, service.access_keys, audience)
        except InvalidTokenError as exc:
            logger.info("Refused a REST request to %s: %s.", request.path, exc)
            return error_response(401, "Unauthorized", f"Invalid bearer token: {exc}.")
        hub_name = request.match_info["hub"]
        if not is_hub_name(hub_name):
            return error_response(400, "BadRequest", f"Invalid hub name {hub_name[:130]!r}.")
        try:
            return await operation(request, service, hub_name.lower())
        except RestError as exc:
            return error_response(exc.status, exc.code, exc.message)

    return wrapper


def _name(request: web.Request, key: str) -> str:
    value = request.match_info[key]
    if not value or len(value) > MAX_NAME_LENGTH:
        raise RestError(400, "BadRequest", f"Invalid {key}: 1 to {MAX_NAME_LENGTH} characters.")
    return value


def _integer(request: web.Request, key: str, low: int, high: int) -> int | None:
    value = request.query.get(key)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise RestError(400, "BadRequest", f"{key} must be an integer.") from None
    if not low <= number <= high:
        raise RestError(400, "BadRequest", f"{key} must be between {low} and {high}.")
    return number


def _filter(text: str | None) -> Callable[[Connection], bool] | None:
    if text is None:
        return None
    try:
        return parse_filter(text)
    except FilterError as exc:
        raise RestError(400, "InvalidFilter", str(exc)) from None


def _connection(
    service: Service, hub_name: str, request: web.Request
) -> tuple[Roster, Connection] | tuple[None, None]:
    """The connection the path names, and its hub's roster; (None, None) when there is none."""
    connection_id = _name(request, "connection")
    roster = service.rosters.get(hub_name)
    connection = roster.connections.get(connection_id) if roster is not None else None
    return (roster, connection) if roster is not None and connection is not None else (None, None)


# -- sending -----------------------------------------------------------------------------------


async def _payload(request: web.Request) -> Payload:
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise RestError(
            413, "PayloadTooLarge", f"The message is larger than {MAX_MESSAGE_BYTES} bytes."
        ) from None
    try:
        return Payload.from_http(request.headers.get("Content-Type"), body)
    except ValueError as exc:
        raise RestError(400, "BadRequest", f"Invalid message: {exc}.") from None


async def _send(
    request: web.Request,
    service: Service,
    hub_name: str,
    targets: Callable[[Roster], Iterable[Connection]],
    description: str,
    *,
    excludable: bool = True,
    group: str | None = None,
) -> web.StreamResponse:
    payload = await _payload(request)
    predicate = _filter(request.query.get("filter"))
    ttl = _integer(request, "messageTtlSeconds", 0, 300)
    try:
        metadata = message_metadata.from_headers(request.headers.items())
    except message_metadata.InvalidMetadataError as exc:
        reason = str(exc)
        raise RestError(400, "BadRequest", f"{reason[0].upper()}{reason[1:]}.") from None
    excluded = set(request.query.getall("excluded", [])) if excludable else set()
    roster = service.rosters.get(hub_name)
    count = 0
    if roster is not None:
        message = DataMessage(payload, metadata=metadata, ttl=ttl or None, sent_to_group=group)
        for connection in list(targets(roster)):
            if connection.connection_id in excluded or (predicate and not predicate(connection)):
                continue
            connection.deliver(message)
            count += 1
    service.trace.add(
        "rest", hub_name, None,
        f"send to {description} ({payload.data_type}, {count} connections): {payload.preview()}",
    )
    logger.info("REST send to %s in hub %s: %d connections.", description, hub_name, count)
    return _status(202)


async def send_to_all(request: web.Request, service: Service, hub_name: str) -> web.StreamResponse:
    return await _send(request, service, hub_name, lambda r: r.connections.values(), "all")


async def send_to_user(request: web.Request, service: Service, hub_name: str) -> web.StreamResponse:
    user = _name(request, "user")
    return await _send(request, service, hub_name, lambda r: r.user_connections(user),
                       f"user {user}", excludable=False)


async def send_to_group(
    request: web.Request, service: Service, hub_name: str
) -> web.StreamResponse:
    group = _name(request, "group")
    return await _send(request, service, hub_name, lambda r: r.members(group), f"group {group}",
                       group=group)


async def send_to_connection(
    request: web.Request, service: Service, hub_name: str
) -> web.StreamResponse:
    connection_id = _name(request, "connection")

    def target(r: Roster) -> list[Connection]:
        connection = r.connections.get(connection_id)
        return [connection] if connection is not None else []

    return await _send(request, service, hub_name, target, f"connection {connection_id}",
                       excludable=False)


# -- groups ------------------------------------------------------------------------------------


async def add_connection_to_group(
    request: web.Request, service: Service, hub_name: str
) -> web.StreamResponse:
    group = _name(request, "group")
    roster, connection = _connection(service, hub_name, request)
    if roster is None or connection is None:
        raise RestError(404, "NotFound", "The connection does not exist.")
    if not roster.join(connection, group):
        raise _too_many_groups(f"The connection {connection.connection_id}")
    return _status(200)


def _too_many_groups(who: str) -> RestError:
    """What a change that would put ``who`` in more than :data:`MAX_GROUPS` groups gets."""
    return RestError(
        400, "BadRequest",
        f"{who} is in {MAX_GROUPS} groups already: a connection may be in {MAX_GROUPS} at most.",
    )


async def remove_connection_from_group(
    request: web.Request, service: Service, hub_name: str
) -> web.StreamResponse:
    group = _name(request, "group")
    roster, connection = _connection(service, hub_name, request)
    if roster is not None and connection is not None:
        roster.leave(connection, group)
    return _status(204)


async def remove_connection_from_all_groups(
    request: web.Request, service: Service, hub_name: str
) -> web.StreamResponse:
    roster, connection = _connection(service, hub_name, request)
    if roster is not None and connection is not None:
        roster.leave_all(connection)
    return _status(204)


async def add_user_to_group(
    request: web.Request, service: Service, hub_name: str
) -> web.StreamResponse:
    user, group = _name(request, "user"), _name(request, "group")
    if not service.roster(hub_name).add_user_to_group(user, group):
        raise _too_many_groups(f"The user {user[:MAX_NAME_LENGTH]!r} or one of its connections")
    return _status(200)


async def remove_user_from_group(
    request: web.Request, service: Service, hub_name: str
) -> web.StreamResponse:
    user, group = _name(request, "user"), _name(request, "group")
    roster = service.rosters.get(hub_name)
    if roster is not None:
        roster.remove_user_from_group(user, group)
    return _status(204)


async def remove_user_from_all_groups(
    request: web.Request, service: Service, hub_name: str
) -> web.StreamResponse:
    user = _name(request, "user")
    roster = service.rosters.get(hub_name)
    if roster is not None:
        roster.remove_user_from_all_groups(user)
    return _status(204)


async def _filtered_groups(
    request: web.Request, service: Service, hub_name: str, join: bool
) -> None:
    try:
        body = decode_json(await request.read())
    except (ValueError, RecursionError):
        raise RestError(400, "BadRequest", "The body must be JSON.") from None
    except web.HTTPRequestEntityTooLarge:
        raise RestError(413, "PayloadTooLarge", "The body is too large.") from None
    groups = body.get("groups") if isinstance(body, dict) else None
    if (
        not isinstance(groups, list)
        or not groups
        or not all(isinstance(g, str) and 0 < len(g) <= MAX_NAME_LENGTH for g in groups)
    ):
        raise RestError(400, "BadRequest", "groups must be a non-empty list of group names.")
    filter_text = body.get("filter")
    if filter_text is not None and not isinstance(filter_text, str):
        raise RestError(400, "BadRequest", "filter must be a string.")
    predicate = _filter(filter_text)
    roster = service.rosters.get(hub_name)
    if roster is None:
        return
    matching = [c for c in roster.connections.values() if predicate is None or predicate(c)]
    if join:
        # A bad request changes nothing: every connection joins, or none.
        full = next((c for c in matching if not roster.has_room(c, groups)), None)
        if full is not None:
            raise _too_many_groups(f"The connection {full.connection_id}")
    for connection in matching:
        for group in groups:
            if join:
                roster.join(connection, group)
            else:
                roster.leave(connection, group)


async def add_to_groups(
    request: web.Request, service: Service, hub_name: str
) -> web.StreamResponse:
    await _filtered_groups(request, service, hub_name, join=True)
    return _status(200)


async def remove_from_groups(
    request: web.Request, service: Service, hub_name: str
) -> web.StreamResponse:
    await _filtered_groups(request, service, hub_name, join=False)
    return _status(200)


async def list_connections(
    request: web.Request, service: Service, hub_name: str
) -> web.StreamResponse:
    group = _name(request, "group")
    top = _integer(request, "top", 1, 2**31 - 1)
    page_size = _integer(request, "maxpagesize", 1, MAX_PAGE_SIZE) or MAX_PAGE_SIZE
    after = request.query.get("continuationToken", "")
    roster = service.rosters.get(hub_name)
    members = sorted(
        (c for c in (roster.members(group) if roster else []) if c.connection_id > after),
        key=lambda c: c.connection_id,
    )
    page = members[: min(page_size, top) if top is not None else page_size]
    remaining = None if top is None else top - len(page)
    next_link = None
    if page and len(members) > len(page) and (remaining is None or remaining > 0):
        query = {"continuationToken": page[-1].connection_id, "maxpagesize": str(page_size)}
        if remaining is not None:
            query["top"] = str(remaining)
        query["api-version"] = request.query.get("api-version", "2024-12-01")
        next_link = f"{request.scheme}://{request.host}{request.path}?{urlencode(query)}"
    body = {
        "value": [{"connectionId": c.connection_id, "userId": c.user_id} for c in page],
        "nextLink": next_link,
    }
    return json_response(body)


# -- existence ---------------------------------------------------------------------------------


async def connection_exists(
    request: web.Request, service: Service, hub_name: str
) -> web.StreamResponse:
    _, connection = _connection(service, hub_name, request)
    return _status(200 if connection is not None else 404)


async def group_exists(request: web.Request, service: Service, hub_name: str) -> web.StreamResponse:
    roster = service.rosters.get(hub_name)
    group = _name(request, "group")
    return _status(200 if roster is not None and group in roster.groups else 404)


async def user_exists(request: web.Request, service: Service, hub_name: str) -> web.StreamResponse:
    roster = service.rosters.get(hub_name)
    user = _name(request, "user")
    return _status(200 if roster is not None and user in roster.users else 404)


# -- closing -----------------------------------------------------------------------------------


async def _close(
    request: web.Request,
    service: Service,
    hub_name: str,
    targets: Callable[[Roster], Iterable[Connection]],
    what: str,
) -> web.StreamResponse:
    excluded = set(request.query.getall("excluded", []))
    reason = request.query.get("reason") or None
    roster = service.rosters.get(hub_name)
    connections = (
        [c for c in targets(roster) if c.connection_id not in excluded]
        if roster is not None
        else []
    )
    service.trace.add("rest", hub_name, None, f"close {what} ({len(connections)} connections)")
    logger.info("REST close %s in hub %s: %d connections.", what, hub_name, len(connections))
    if roster is not None:
        await asyncio.gather(*(roster.end(c, reason) for c in connections))
    return _status(204)


async def close_connection(
    request: web.Request, service: Service, hub_name: str
) -> web.StreamResponse:
    connection_id = _name(request, "connection")

    def target(r: Roster) -> list[Connection]:
        connection = r.connections.get(connection_id)
        return [connection] if connection is not None else []

    return await _close(request, service, hub_name, target, f"connection {connection_id}")


async def close_all_connections(
    request: web.Request, service: Service, hub_name: str
) -> web.StreamResponse:
    return await _close(request, service, hub_name, lambda r: list(r.connections.values()),
                        "all")


async def close_group_connections(
    request: web.Request, service: Service, hub_name: str
) -> web.StreamResponse:
    group = _name(request, "group")
    return await _close(request, service, hub_name, lambda r: r.members(group), f"group {group}")


async def close_user_connections(
    request: web.Request, service: Service, hub_name: str
) -> web.StreamResponse:
    user = _name(request, "user")
    return await _close(request, service, hub_name, lambda r: r.user_connections(user),
                        f"user {user}")


# -- permissions -------------------------------------------------------------------------------


def _role(request: web.Request) -> str:
    permission = request.match_info["permission"]
    if permission not in PERMISSIONS:
        raise RestError(
            400, "BadRequest", f"Unknown permission: use {' or '.join(PERMISSIONS)}."
        )
    target = request.query.get("targetName")
    return f"webpubsub.{permission}" + (f".{target}" if target else "")


async def grant_permission(
    request: web.Request, service: Service, hub_name: str
) -> web.StreamResponse:
    role = _role(request)
    _, connection = _connection(service, hub_name, request)
    if connection is None:
        raise RestError(404, "NotFound", "The connection does not exist.")
    connection.grant(role)
    return _status(200)


async def revoke_permission(
    request: web.Request, service: Service, hub_name: str
) -> web.StreamResponse:
    role = _role(request)
    _, connection = _connection(service, hub_name, request)
    if connection is not None:
        connection.revoke(role)
    return _status(204)


async def check_permission(
    request: web.Request, service: Service, hub_name: str
) -> web.StreamResponse:
    role = _role(request)
    _, connection = _connection(service, hub_name, request)
    if connection is None:
        return _status(404)
    permission = request.match_info["permission"]
    target = request.query.get("targetName")
    allowed = connection.can(permission, target) if target else role in connection.roles
    return _status(200 if allowed else 404)


# -- tokens and health -------------------------------------------------------------------------


async def generate_token(
    request: web.Request, service: Service, hub_name: str
) -> web.StreamResponse:
    minutes = _integer(request, "minutesToExpire", 1, 60 * 24 * 365) or 60
    client_type = request.query.get("clientType", "Default").lower()
    endpoint = ServiceEndpoint(
        normalize_endpoint(f"{request.scheme}://{request.host}"), service.access_keys[0]
    )
    try:
        token = build_client_token(
            endpoint,
            request.match_info["hub"],
            user_id=request.query.get("userId") or None,
            roles=request.query.getall("role", []),
            groups=request.query.getall("group", []),
            minutes_to_expire=minutes,
            client_protocol=client_type,
        )
    except ValueError as exc:
        raise RestError(400, "BadRequest", str(exc)) from None
    return json_response({"token": token})


async def health(request: web.Request) -> web.StreamResponse:
    return _status(200)


_OPERATIONS: list[tuple[str, str, Operation]] = [
    ("POST", "/:send", send_to_all),
    ("POST", "/users/{user}/:send", send_to_user),
    ("POST", "/groups/{group}/:send", send_to_group),
    ("POST", "/connections/{connection}/:send", send_to_connection),
    ("PUT", "/groups/{group}/connections/{connection}", add_connection_to_group),
    ("DELETE", "/groups/{group}/connections/{connection}", remove_connection_from_group),
    ("DELETE", "/connections/{connection}/groups", remove_connection_from_all_groups),
    ("PUT", "/users/{user}/groups/{group}", add_user_to_group),
    ("DELETE", "/users/{user}/groups/{group}", remove_user_from_group),
    ("DELETE", "/users/{user}/groups", remove_user_from_all_groups),
    ("POST", "/:addToGroups", add_to_groups),
    ("POST", "/:removeFromGroups", remove_from_groups),
    ("GET", "/groups/{group}/connections", list_connections),
    ("HEAD", "/connections/{connection}", connection_exists),
    ("HEAD", "/groups/{group}", group_exists),
    ("HEAD", "/users/{user}", user_exists),
    ("DELETE", "/connections/{connection}", close_connection),
    ("POST", "/:closeConnections", close_all_connections),
    ("POST", "/groups/{group}/:closeConnections", close_group_connections),
    ("POST", "/users/{user}/:closeConnections", close_user_connections),
    ("PUT", "/permissions/{permission}/connections/{connection}", grant_permission),
    ("DELETE", "/permissions/{permission}/connections/{connection}", revoke_permission),
    ("HEAD", "/permissions/{permission}/connections/{connection}", check_permission),
    ("POST", "/:generateToken", generate_token),
]


def add_routes(app: web.Application, service: Service) -> None:
    for method, path, operation in _OPERATIONS:
        app.router.add_route(method, "/api/hubs/{hub}" + path, authorized(service, operation))
    app.router.add_route("HEAD", "/api/health", health)
    app.router.add_route("GET", "/api/health", health)
