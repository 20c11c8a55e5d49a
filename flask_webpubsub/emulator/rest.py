"""The REST data plane under ``/api/hubs/{hub}`` (docs/protocol.md section 7), for the service SDK.

Every request carries ``Authorization: Bearer <JWT>`` signed with the access key, whose ``aud``
is the request URL. Status codes are exactly the ones ``azure-messaging-webpubsubservice``
accepts; errors are JSON ``{"code", "message"}``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from aiohttp import web

from flask_webpubsub.core.endpoint import ServiceEndpoint, normalize_endpoint
from flask_webpubsub.core.errors import InvalidTokenError
from flask_webpubsub.core.service import verify_token
from flask_webpubsub.core.tokens import build_client_token

from .hub import CLOSE_NORMAL, PERMISSIONS, Hub, Message, Session
from .messages import MAX_MESSAGE_BYTES, MAX_NAME_LENGTH, Payload, server_message
from .odata import FilterError, parse_filter
from .settings import HUB_NAME

if TYPE_CHECKING:
    from .server import Emulator

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request, "Emulator", str], Awaitable[web.StreamResponse]]

#: Pages of ``list connections`` hold at most this many members.
MAX_PAGE_SIZE = 200


class RestError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status)


def _status(status: int) -> web.Response:
    return web.Response(status=status)


def authorized(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Check the bearer token against the request URL, then call ``handler(request, emulator,
    hub)``."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        from .server import EMULATOR_KEY

        emulator = request.app[EMULATOR_KEY]
        authorization = request.headers.get("Authorization", "")
        if authorization[:7].lower() != "bearer ":
            return error_response(401, "Unauthorized", "Missing bearer token.")
        audience = f"{request.scheme}://{request.host}{request.raw_path}"
        try:
            verify_token(authorization[7:].strip(), emulator.access_keys, audience)
        except InvalidTokenError as exc:
            return error_response(401, "Unauthorized", f"Invalid bearer token: {exc}.")
        hub = request.match_info["hub"]
        if not HUB_NAME.match(hub):
            return error_response(400, "BadRequest", f"Invalid hub name {hub[:130]!r}.")
        try:
            return await handler(request, emulator, hub.lower())
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


def _filter(text: str | None) -> Callable[[Session], bool] | None:
    if text is None:
        return None
    try:
        return parse_filter(text)
    except FilterError as exc:
        raise RestError(400, "InvalidFilter", str(exc)) from None


def _sessions(emulator: Emulator, hub_name: str) -> Hub | None:
    return emulator.hubs.get(hub_name)


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
    emulator: Emulator,
    hub_name: str,
    targets: Callable[[Hub], Iterable[Session]],
    description: str,
    *,
    excludable: bool = True,
) -> web.StreamResponse:
    payload = await _payload(request)
    predicate = _filter(request.query.get("filter"))
    _integer(request, "messageTtlSeconds", 0, 300)  # accepted; delivery here is immediate
    excluded = set(request.query.getall("excluded", [])) if excludable else set()
    hub = _sessions(emulator, hub_name)
    count = 0
    if hub is not None:
        message = Message(payload, server_message(payload))
        for session in list(targets(hub)):
            if session.connection_id in excluded or (predicate and not predicate(session)):
                continue
            session.deliver(message)
            count += 1
    emulator.trace.add(
        "rest", hub_name, None,
        f"send to {description} ({payload.data_type}, {count} connections): {payload.preview()}",
    )
    logger.info("REST send to %s in hub %s: %d connections.", description, hub_name, count)
    return _status(202)


@authorized
async def send_to_all(request: web.Request, emulator: Emulator, hub: str) -> web.StreamResponse:
    return await _send(request, emulator, hub, lambda h: h.connections.values(), "all")


@authorized
async def send_to_user(request: web.Request, emulator: Emulator, hub: str) -> web.StreamResponse:
    user = _name(request, "user")
    return await _send(request, emulator, hub, lambda h: h.user_sessions(user), f"user {user}",
                       excludable=False)


@authorized
async def send_to_group(request: web.Request, emulator: Emulator, hub: str) -> web.StreamResponse:
    group = _name(request, "group")
    return await _send(request, emulator, hub, lambda h: h.members(group), f"group {group}")


@authorized
async def send_to_connection(
    request: web.Request, emulator: Emulator, hub: str
) -> web.StreamResponse:
    connection_id = _name(request, "connection")

    def target(h: Hub) -> list[Session]:
        session = h.connections.get(connection_id)
        return [session] if session is not None else []

    return await _send(request, emulator, hub, target, f"connection {connection_id}",
                       excludable=False)


# -- groups ------------------------------------------------------------------------------------


def _connection(emulator: Emulator, hub: str, request: web.Request) -> Session | None:
    sessions = _sessions(emulator, hub)
    return sessions.connections.get(_name(request, "connection")) if sessions else None


@authorized
async def add_connection_to_group(
    request: web.Request, emulator: Emulator, hub: str
) -> web.StreamResponse:
    group = _name(request, "group")
    session = _connection(emulator, hub, request)
    if session is None:
        raise RestError(404, "NotFound", "The connection does not exist.")
    session.join(group)
    return _status(200)


@authorized
async def remove_connection_from_group(
    request: web.Request, emulator: Emulator, hub: str
) -> web.StreamResponse:
    group = _name(request, "group")
    session = _connection(emulator, hub, request)
    if session is not None:
        session.leave(group)
    return _status(204)


@authorized
async def remove_connection_from_all_groups(
    request: web.Request, emulator: Emulator, hub: str
) -> web.StreamResponse:
    session = _connection(emulator, hub, request)
    if session is not None:
        for group in sorted(session.groups):
            session.leave(group)
    return _status(204)


@authorized
async def add_user_to_group(
    request: web.Request, emulator: Emulator, hub: str
) -> web.StreamResponse:
    user, group = _name(request, "user"), _name(request, "group")
    sessions = emulator.hub(hub)
    sessions.user_groups.setdefault(user, set()).add(group)
    for session in sessions.user_sessions(user):
        session.join(group)
    return _status(200)


@authorized
async def remove_user_from_group(
    request: web.Request, emulator: Emulator, hub: str
) -> web.StreamResponse:
    user, group = _name(request, "user"), _name(request, "group")
    sessions = _sessions(emulator, hub)
    if sessions is not None:
        _forget_user_group(sessions, user, group)
        for session in sessions.user_sessions(user):
            session.leave(group)
    return _status(204)


@authorized
async def remove_user_from_all_groups(
    request: web.Request, emulator: Emulator, hub: str
) -> web.StreamResponse:
    user = _name(request, "user")
    sessions = _sessions(emulator, hub)
    if sessions is not None:
        sessions.user_groups.pop(user, None)
        for session in sessions.user_sessions(user):
            for group in sorted(session.groups):
                session.leave(group)
    return _status(204)


def _forget_user_group(hub: Hub, user: str, group: str) -> None:
    groups = hub.user_groups.get(user)
    if groups is not None:
        groups.discard(group)
        if not groups:
            del hub.user_groups[user]


async def _filtered_groups(request: web.Request, emulator: Emulator, hub: str, join: bool) -> None:
    try:
        body = json.loads(await request.read())
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
    sessions = _sessions(emulator, hub)
    if sessions is None:
        return
    for session in list(sessions.connections.values()):
        if predicate is None or predicate(session):
            for group in groups:
                if join:
                    session.join(group)
                else:
                    session.leave(group)


@authorized
async def add_to_groups(request: web.Request, emulator: Emulator, hub: str) -> web.StreamResponse:
    await _filtered_groups(request, emulator, hub, join=True)
    return _status(200)


@authorized
async def remove_from_groups(
    request: web.Request, emulator: Emulator, hub: str
) -> web.StreamResponse:
    await _filtered_groups(request, emulator, hub, join=False)
    return _status(200)


@authorized
async def list_connections(
    request: web.Request, emulator: Emulator, hub: str
) -> web.StreamResponse:
    group = _name(request, "group")
    top = _integer(request, "top", 1, 2**31 - 1)
    page_size = _integer(request, "maxpagesize", 1, MAX_PAGE_SIZE) or MAX_PAGE_SIZE
    after = request.query.get("continuationToken", "")
    sessions = _sessions(emulator, hub)
    members = sorted(
        (s for s in (sessions.members(group) if sessions else []) if s.connection_id > after),
        key=lambda s: s.connection_id,
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
        "value": [{"connectionId": s.connection_id, "userId": s.user_id} for s in page],
        "nextLink": next_link,
    }
    return web.json_response(body)


# -- existence ---------------------------------------------------------------------------------


@authorized
async def connection_exists(
    request: web.Request, emulator: Emulator, hub: str
) -> web.StreamResponse:
    return _status(200 if _connection(emulator, hub, request) is not None else 404)


@authorized
async def group_exists(request: web.Request, emulator: Emulator, hub: str) -> web.StreamResponse:
    sessions = _sessions(emulator, hub)
    group = _name(request, "group")
    return _status(200 if sessions is not None and group in sessions.groups else 404)


@authorized
async def user_exists(request: web.Request, emulator: Emulator, hub: str) -> web.StreamResponse:
    sessions = _sessions(emulator, hub)
    user = _name(request, "user")
    return _status(200 if sessions is not None and user in sessions.users else 404)


# -- closing -----------------------------------------------------------------------------------


async def _close(
    request: web.Request, emulator: Emulator, hub: str, targets: Iterable[Session], what: str
) -> web.StreamResponse:
    excluded = set(request.query.getall("excluded", []))
    reason = request.query.get("reason") or None
    sessions = [s for s in targets if s.connection_id not in excluded]
    emulator.trace.add("rest", hub, None, f"close {what} ({len(sessions)} connections)")
    logger.info("REST close %s in hub %s: %d connections.", what, hub, len(sessions))
    await asyncio.gather(*(s.end(reason, code=CLOSE_NORMAL) for s in sessions))
    return _status(204)


@authorized
async def close_connection(
    request: web.Request, emulator: Emulator, hub: str
) -> web.StreamResponse:
    session = _connection(emulator, hub, request)
    targets = [session] if session is not None else []
    what = f"connection {request.match_info['connection']}"
    return await _close(request, emulator, hub, targets, what)


@authorized
async def close_all_connections(
    request: web.Request, emulator: Emulator, hub: str
) -> web.StreamResponse:
    sessions = _sessions(emulator, hub)
    targets = list(sessions.connections.values()) if sessions else []
    return await _close(request, emulator, hub, targets, "all")


@authorized
async def close_group_connections(
    request: web.Request, emulator: Emulator, hub: str
) -> web.StreamResponse:
    group = _name(request, "group")
    sessions = _sessions(emulator, hub)
    return await _close(request, emulator, hub, sessions.members(group) if sessions else [],
                        f"group {group}")


@authorized
async def close_user_connections(
    request: web.Request, emulator: Emulator, hub: str
) -> web.StreamResponse:
    user = _name(request, "user")
    sessions = _sessions(emulator, hub)
    return await _close(request, emulator, hub, sessions.user_sessions(user) if sessions else [],
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


@authorized
async def grant_permission(
    request: web.Request, emulator: Emulator, hub: str
) -> web.StreamResponse:
    role = _role(request)
    session = _connection(emulator, hub, request)
    if session is None:
        raise RestError(404, "NotFound", "The connection does not exist.")
    session.roles.add(role)
    return _status(200)


@authorized
async def revoke_permission(
    request: web.Request, emulator: Emulator, hub: str
) -> web.StreamResponse:
    role = _role(request)
    session = _connection(emulator, hub, request)
    if session is not None:
        session.roles.discard(role)
    return _status(204)


@authorized
async def check_permission(
    request: web.Request, emulator: Emulator, hub: str
) -> web.StreamResponse:
    role = _role(request)
    session = _connection(emulator, hub, request)
    if session is None:
        return _status(404)
    permission = request.match_info["permission"]
    target = request.query.get("targetName")
    allowed = session.can(permission, target) if target else role in session.roles
    return _status(200 if allowed else 404)


# -- tokens and health -------------------------------------------------------------------------


@authorized
async def generate_token(
    request: web.Request, emulator: Emulator, hub: str
) -> web.StreamResponse:
    minutes = _integer(request, "minutesToExpire", 1, 60 * 24 * 365) or 60
    client_type = request.query.get("clientType", "Default").lower()
    endpoint = ServiceEndpoint(
        normalize_endpoint(f"{request.scheme}://{request.host}"), emulator.access_keys[0]
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
    return web.json_response({"token": token})


async def health(request: web.Request) -> web.StreamResponse:
    return _status(200)


def add_routes(app: web.Application) -> None:
    base = "/api/hubs/{hub}"
    routes: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
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
    for method, path, handler in routes:
        app.router.add_route(method, base + path, handler)
    app.router.add_route("HEAD", "/api/health", health)
    app.router.add_route("GET", "/api/health", health)
