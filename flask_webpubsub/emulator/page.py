"""The emulator's own HTTP surface besides the service's: the dashboard at ``/``, whose script
polls ``/_emulator/state``, and the control API under ``/_emulator/``: fault injection (drop,
half-open drop, close, upstream faults) and sending a message, which goes through the
emulator's own REST API (:meth:`.Emulator.send_message`), as an app's message does.

The page shows message contents, so it answers only requests whose ``Host`` is one of the
emulator's names (``localhost``, the host it was started with) or an IP address: a web page the
developer visits cannot read it through DNS rebinding (its ``Host`` would be the attacker's
name). The control API changes things, so it also takes only JSON bodies (a cross-site form
cannot send one without a CORS preflight, which it never answers) and no foreign ``Origin``.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from flask_webpubsub.core.jsoncodec import decode_json, encode_json
from flask_webpubsub.core.wire import (
    HUB_NAME_RULE,
    JSON_CONTENT_TYPE,
    MAX_MESSAGE_BYTES,
    MAX_NAME_LENGTH,
    is_hub_name,
    parse_media_type,
)

from .faults import UpstreamFault
from .trace import LiveTrace

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
#: The close codes a server may send (RFC 6455 section 7.4; 3000-4999 for applications).
CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011}) | frozenset(
    range(3000, 5000)
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: What a message from the dashboard may be sent to.
TARGETS = ("hub", "connection", "user", "group")
#: The Content-Type of each data type a message from the dashboard may have.
DATA_TYPES = {"text": "text/plain; charset=utf-8", "json": JSON_CONTENT_TYPE}


class Controls(Protocol):
    """What the fault API does, on the emulator."""

    def snapshot(self) -> dict[str, Any]: ...

    async def send_message(
        self, hub: str, data: bytes, content_type: str, *, to: str = "hub",
        name: str | None = None,
    ) -> None: ...

    async def drop(self, connection_id: str, hub: str | None = None) -> bool: ...

    async def drop_half_open(self, connection_id: str, hub: str | None = None) -> bool: ...

    async def close_connection(
        self, connection_id: str, *, code: int = 1000, reason: str | None = None,
        hub: str | None = None,
    ) -> bool: ...

    def add_upstream_fault(self, fault: UpstreamFault) -> UpstreamFault: ...

    def clear_upstream_faults(self) -> int: ...

    def upstream_faults(self) -> list[dict[str, Any]]: ...


def is_own_host(host_header: str | None, names: Collection[str]) -> bool:
    """Whether a ``Host`` header names the emulator: one of ``names`` (lower case), or an IP
    address (DNS rebinding needs a host name), with any port."""
    host = (host_header or "").strip().lower()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    if not host:
        return False
    if host in names:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def add_routes(
    app: web.Application, controls: Controls, trace: LiveTrace, host_names: Collection[str]
) -> None:
    """``controls.snapshot()`` is what the page shows besides the trace; ``host_names`` are
    the names the page answers to (besides IP addresses)."""
    names = frozenset(name.lower() for name in host_names) | {"localhost"}

    def own_host_only(handler: Handler) -> Handler:
        async def checked(request: web.Request) -> web.StreamResponse:
            if not is_own_host(request.headers.get("Host"), names):
                logger.warning(
                    "Refused a request for %s with Host %r: the page answers only to %s or an "
                    "IP address.", request.path, (request.headers.get("Host") or "")[:100],
                    ", ".join(sorted(names)),
                )
                return web.Response(status=403, text="Forbidden: unknown Host.")
            return await handler(request)

        return checked

    def changes(handler: Handler) -> Handler:
        async def checked(request: web.Request) -> web.StreamResponse:
            origin = request.headers.get("Origin")
            if origin is not None and not is_own_host(origin.partition("://")[2], names):
                return _error(403, "Forbidden: a foreign Origin.")
            if request.can_read_body and parse_media_type(
                request.headers.get("Content-Type")
            )[0] != "application/json":
                return _error(415, "The body must be application/json.")
            try:
                return await handler(request)
            except ValueError as exc:
                return _error(400, str(exc))

        return own_host_only(checked)

    async def page(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def overview(request: web.Request) -> web.StreamResponse:
        try:
            after = int(request.query.get("after", "0"))
        except ValueError:
            after = 0
        body = controls.snapshot()
        body["trace"] = trace.since(after)
        return _json(body)

    async def static(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    async def drop(request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        found = await controls.drop(request.match_info["connection"], _hub(body))
        return _done(found)

    async def drop_half_open(request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        found = await controls.drop_half_open(request.match_info["connection"], _hub(body))
        return _done(found)

    async def close(request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        code = body.get("code", 1000)
        if isinstance(code, bool) or not isinstance(code, int) or code not in CLOSE_CODES:
            raise ValueError("code must be a close code a server may send: 1000-1003, "
                             "1007-1011 or 3000-4999")
        reason = body.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason.encode()) > 120):
            raise ValueError("reason must be a string of at most 120 bytes")
        found = await controls.close_connection(
            request.match_info["connection"], code=code, reason=reason, hub=_hub(body)
        )
        return _done(found)

    async def send(request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        hub, to, name = body.get("hub"), body.get("to", "hub"), body.get("name")
        if not isinstance(hub, str) or not is_hub_name(hub):
            raise ValueError(f"hub must be a hub name: {HUB_NAME_RULE}")
        if to not in TARGETS:
            raise ValueError(f"to must be one of {', '.join(TARGETS)}")
        if to == "hub":
            if name not in (None, ""):
                raise ValueError("a message to the whole hub takes no name")
            name = None
        elif not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_LENGTH:
            raise ValueError(f"name must be the {to}'s name: 1 to {MAX_NAME_LENGTH} characters")
        data_type, data = body.get("dataType", "text"), body.get("data")
        if data_type not in DATA_TYPES:
            raise ValueError("dataType must be text or json")
        if not isinstance(data, str):
            raise ValueError("data must be a string (for json, the JSON text)")
        if data_type == "json":
            try:
                decode_json(data)
            except (ValueError, RecursionError):
                raise ValueError("data is not valid JSON") from None
        try:
            encoded = data.encode()
        except UnicodeEncodeError:
            raise ValueError("data is not valid Unicode text") from None
        await controls.send_message(hub, encoded, DATA_TYPES[data_type], to=to, name=name)
        return _json({"sent": f"to {to}" + (f" {name}" if name else f" {hub}")}, status=202)

    async def list_faults(request: web.Request) -> web.StreamResponse:
        return _json({"upstream": controls.upstream_faults()})

    async def add_fault(request: web.Request) -> web.StreamResponse:
        fault = controls.add_upstream_fault(UpstreamFault.from_json(await _body(request)))
        return _json(fault.describe(), status=201)

    async def clear_faults(request: web.Request) -> web.StreamResponse:
        return _json({"cleared": controls.clear_upstream_faults()})

    app.router.add_get("/", own_host_only(page))
    app.router.add_get("/_emulator/state", own_host_only(overview))
    app.router.add_get("/_emulator/static/{name}", own_host_only(static))
    app.router.add_post("/_emulator/connections/{connection}/:drop", changes(drop))
    app.router.add_post(
        "/_emulator/connections/{connection}/:dropHalfOpen", changes(drop_half_open)
    )
    app.router.add_post("/_emulator/connections/{connection}/:close", changes(close))
    app.router.add_post("/_emulator/messages", changes(send))
    app.router.add_get("/_emulator/faults/upstream", own_host_only(list_faults))
    app.router.add_post("/_emulator/faults/upstream", changes(add_fault))
    app.router.add_delete("/_emulator/faults/upstream", changes(clear_faults))


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=encode_json(value), status=status,
        headers={"Content-Type": JSON_CONTENT_TYPE, "Cache-Control": "no-store"},
    )


def _error(status: int, message: str) -> web.Response:
    return _json({"message": message}, status)


def _done(found: bool) -> web.Response:
    if not found:
        return _error(404, "No such connection (with a socket) in this emulator.")
    return web.Response(status=204)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        raw = await request.read() if request.can_read_body else b""
    except web.HTTPRequestEntityTooLarge:
        raise ValueError(f"the body is larger than {MAX_MESSAGE_BYTES} bytes") from None
    if not raw.strip():
        return {}
    try:
        value = decode_json(raw)
    except (ValueError, RecursionError):
        raise ValueError("the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise ValueError("the body must be a JSON object")
    return value


def _hub(body: dict[str, Any]) -> str | None:
    hub = body.get("hub")
    if hub is not None and not isinstance(hub, str):
        raise ValueError("hub must be a string")
    return hub
