"""The emulator's HTTP server: the client endpoint, the REST API and the live page, on one
aiohttp server in the caller's event loop (``await start()`` / ``await stop()``).

:mod:`.runner` runs one in a background thread, or until Ctrl+C.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import web
from yarl import URL

from flask_webpubsub.core.endpoint import ServiceEndpoint, normalize_endpoint
from flask_webpubsub.core.jsoncodec import decode_json
from flask_webpubsub.core.tokens import build_service_token
from flask_webpubsub.core.wire import (
    HUB_NAME_RULE,
    JSON_SUBPROTOCOL,
    MAX_MESSAGE_BYTES,
    MQTT_SUBPROTOCOL,
    PROTOBUF_SUBPROTOCOL,
    RELIABLE_JSON_SUBPROTOCOL,
    RELIABLE_PROTOBUF_SUBPROTOCOL,
    SYSTEM_EVENTS,
    is_hub_name,
)

from . import client_endpoint, page, rest
from .connection import Connection
from .event_handlers import ANY_HUB, EventHandler
from .faults import UpstreamFault
from .identity import SERVICE_AUDIENCE, IdentityProvider
from .redact import RedactingLogger, masked_url
from .roster import Roster
from .service import Service
from .trace import BODY_LIMIT
from .upstream import RETRY_DELAYS, Upstream

logger = logging.getLogger(__name__)

#: The service's keep-alive interval for a hub's sockets (``webSocketKeepAliveIntervalInSeconds``,
#: 1-120 seconds), by default.
DEFAULT_KEEPALIVE = 20.0

#: Client protocols of the service that the emulator does not serve, by their path segment.
_CLIENT_PROTOCOLS = {"socketio": "Socket.IO"}
#: What the emulator serves, for a client that asked for something else.
_SERVED = (
    "It serves WebSocket clients at /client/hubs/{hub} (simple WebSocket, "
    f"{JSON_SUBPROTOCOL}, {RELIABLE_JSON_SUBPROTOCOL}, {PROTOBUF_SUBPROTOCOL} and "
    f"{RELIABLE_PROTOBUF_SUBPROTOCOL}) and MQTT clients at /clients/mqtt/hubs/{{hub}}."
)
#: The dashboard's name for each client protocol (a subprotocol; None: a simple client).
PROTOCOL_LABELS = {
    None: "simple WebSocket",
    JSON_SUBPROTOCOL: "json",
    RELIABLE_JSON_SUBPROTOCOL: "reliable json",
    PROTOBUF_SUBPROTOCOL: "protobuf",
    RELIABLE_PROTOBUF_SUBPROTOCOL: "reliable protobuf",
    MQTT_SUBPROTOCOL: "mqtt",
}
#: How many members of each group the dashboard lists (it shows every group's size).
GROUP_MEMBERS_SHOWN = 50
#: The REST path of a send to each kind of target.
_SEND_PATHS = {
    "hub": "/:send",
    "connection": "/connections/{}/:send",
    "user": "/users/{}/:send",
    "group": "/groups/{}/:send",
}


class Emulator:
    """A local Azure Web PubSub service.

    ``upstream`` is the app's event handler URL (``{hub}`` and ``{event}`` may appear in it),
    used for ``hubs`` (every hub when empty), taking ``system_events`` and ``user_events``
    (``"*"`` or a comma-separated list). ``event_handlers`` gives full control instead:
    ``{"chat": [EventHandler.create(url, user_events="*"), ...], "*": [...]}``. Without an
    upstream, clients connect and use groups, and the REST API works, but no event is forwarded.

    ``access_key`` signs and checks every token (random when not given); more keys in
    ``extra_access_keys`` are accepted too and sign ``ce-signature``, like a secondary key.

    With an ``identity`` provider (:class:`~.identity.IdentityProvider`) the emulator also plays
    Microsoft Entra ID, and the service with local auth disabled: upstream calls carry a bearer
    token and no ``ce-signature``, the REST API takes the tenant's tokens and no access-key
    token; :attr:`app_settings` and :meth:`credential` configure the app.

    Clients of the hubs in ``allow_anonymous`` (``"*"``: every hub) may connect without an
    access token, as with the hub setting ``anonymousConnectPolicy: allow``.

    An upstream call that fails with 408, a 5xx or a network error is tried again after each of
    ``upstream_retry_delays`` seconds, as the service does (``()``: never). ``upstream_faults``
    are in force from the start (see :meth:`add_upstream_fault`).

    ``heartbeat`` is the hub's keep-alive interval (``webSocketKeepAliveIntervalInSeconds``,
    20 s by default, as the service): a socket silent that long is pinged, and ended if it does
    not answer within half of it (None: no pings).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        upstream: str | None = None,
        hubs: Iterable[str] = (),
        access_key: str | None = None,
        extra_access_keys: Sequence[str] = (),
        system_events: Iterable[str] = SYSTEM_EVENTS,
        user_events: str | Iterable[str] = "*",
        event_handlers: Mapping[str, Sequence[EventHandler]] | None = None,
        upstream_timeout: float = 20.0,
        upstream_retry_delays: Sequence[float] = RETRY_DELAYS,
        upstream_faults: Iterable[UpstreamFault] = (),
        recovery_timeout: float = 30.0,
        heartbeat: float | None = DEFAULT_KEEPALIVE,
        ack_delay: float = 0.01,
        validate_upstream: bool = True,
        identity: IdentityProvider | None = None,
        allow_anonymous: Iterable[str] = (),
    ) -> None:
        hub_names = list(hubs)
        anonymous = list(allow_anonymous)
        for name in [*hub_names, *(a for a in anonymous if a != "*")]:
            if not is_hub_name(name):
                raise ValueError(f"invalid hub name {name!r}: use {HUB_NAME_RULE}")
        if event_handlers is None:
            event_handlers = {}
            if upstream:
                handler = EventHandler.create(
                    upstream, user_events=user_events, system_events=system_events
                )
                for name in hub_names or [ANY_HUB]:
                    event_handlers[name] = [handler]
        if access_key is not None and len(access_key) < 32:
            raise ValueError("the access key must be at least 32 characters (HS256 needs them)")
        self.access_keys: tuple[str, ...] = (
            access_key or secrets.token_urlsafe(32),
            *extra_access_keys,
        )
        self.host = host
        self.port = port
        self.hub_names = hub_names
        self.heartbeat = heartbeat
        self.validate_upstream = validate_upstream
        self._event_handlers = event_handlers
        self.identity = identity
        self.upstream = Upstream(
            event_handlers,
            () if identity is not None else self.access_keys,
            self.public_host,
            upstream_timeout,
            retry_delays=upstream_retry_delays,
            authorization=identity.authorization if identity is not None else None,
        )
        for fault in upstream_faults:
            self.upstream.faults.add(fault)
        self.service = Service(
            self.access_keys, self.upstream, recovery_timeout=recovery_timeout,
            ack_delay=ack_delay, identity=identity, anonymous_hubs=anonymous,
        )
        self.upstream.trace = self.service.trace
        self._runner: web.AppRunner | None = None

    def __repr__(self) -> str:
        return f"<Emulator {self.url}>"

    # -- where it is ---------------------------------------------------------------------------

    @property
    def public_host(self) -> str:
        """The host clients and apps use: the bind address, or loopback for a wildcard."""
        if self.host in ("", "0.0.0.0"):  # noqa: S104 - mapping a wildcard to loopback
            return "127.0.0.1"
        if self.host == "::":
            return "::1"
        return self.host

    @property
    def url(self) -> str:
        """``http://host:port``: the endpoint, and the live page at ``/``."""
        return normalize_endpoint(f"http://{self.public_host}", self.port)

    @property
    def endpoint(self) -> ServiceEndpoint:
        """The endpoint with the access key, as the extension's settings hold it."""
        return ServiceEndpoint(self.url, self.access_keys[0])

    @property
    def connection_string(self) -> str:
        """``Endpoint=http://host:port;AccessKey=...;Version=1.0;`` for the app's config."""
        if self.identity is not None:
            raise RuntimeError("local auth is disabled (Entra ID): configure the app with "
                               "app_settings and credential() instead of a connection string")
        return f"Endpoint={self.url};AccessKey={self.access_keys[0]};Version=1.0;"

    @property
    def app_settings(self) -> dict[str, Any]:
        """With Entra ID: the extension's settings for the app (``WEBPUBSUB_ENDPOINT`` and
        ``WEBPUBSUB_ENTRA_*``; no access key), once the emulator listens."""
        if self.identity is None:
            return {"WEBPUBSUB_CONNECTION_STRING": self.connection_string}
        return self.identity.app_settings(self.url)

    def credential(self) -> Any:
        """With Entra ID: the app's credential for the REST API
        (:class:`~.identity.EmulatorCredential`)."""
        if self.identity is None:
            raise RuntimeError("the emulator plays no identity provider: pass identity=")
        return self.identity.credential()

    # -- life ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Check the upstream (abuse protection) and start serving.

        Raises :class:`UpstreamValidationError` when an upstream refuses the check, and
        ``OSError`` when the port is taken.
        """
        await self.upstream.start()
        try:
            if self.validate_upstream:
                await self.upstream.validate_all()
            # Bodies above the service's message limit are refused (413).
            app = web.Application(client_max_size=MAX_MESSAGE_BYTES)
            client_endpoint.add_routes(app, self.service, self.heartbeat)
            # After the client endpoint's routes, so that a protocol it serves wins.
            app.router.add_route("*", "/clients/{protocol}{tail:.*}", self._unsupported_client)
            rest.add_routes(app, self.service)
            if self.identity is not None:
                self.identity.add_routes(app)
            page.add_routes(app, self, self.service.trace, {self.host, self.public_host})
            # No access log: client URLs carry access tokens; and the server's own error lines,
            # which quote a malformed request line, go through a logger that redacts them.
            runner = web.AppRunner(
                app, access_log=None, handle_signals=False, shutdown_timeout=2.0,
                logger=RedactingLogger(logging.getLogger("aiohttp.server")),
            )
            await runner.setup()
            try:
                site = web.TCPSite(runner, self.host, self.port)
                await site.start()
            except BaseException:
                await runner.cleanup()
                raise
        except BaseException:
            await self.upstream.close()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        if self.identity is not None:
            self.identity.bind(self.url)
        if self._event_handlers:
            targets = "; ".join(
                f"hub {'(any)' if hub == ANY_HUB else hub} to "
                f"{', '.join(h.redacted for h in handlers) or 'nothing'}"
                for hub, handlers in self._event_handlers.items()
            )
            logger.info("Emulator listening on %s, forwarding events of %s.", self.url, targets)
        else:
            logger.info("Emulator listening on %s (no upstream: events are not forwarded).",
                        self.url)

    async def stop(self) -> None:
        """Close every connection (1001, going away) and stop serving."""
        await self.service.close_connections()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.service.stop_tasks()
        await self.upstream.close()
        logger.info("Emulator on %s stopped.", self.url)

    # -- what it holds ---------------------------------------------------------------------------

    @property
    def hubs(self) -> Mapping[str, Roster]:
        """The roster of every hub used so far, by lower-case hub name."""
        return self.service.rosters

    async def _unsupported_client(self, request: web.Request) -> web.StreamResponse:
        """A client of a protocol the emulator does not serve (Socket.IO, ...), or an MQTT
        client at a path other than its own: a clear answer and a log line, not a bare 404."""
        protocol = request.match_info["protocol"]
        hub = request.path.split("/hubs/", 1)[1].split("/")[0] if "/hubs/" in request.path else ""
        if protocol.lower() == "mqtt":
            return web.Response(
                status=404, text=f"No MQTT endpoint at {request.path[:200]}. {_SERVED}"
            )
        name = _CLIENT_PROTOCOLS.get(protocol.lower(), repr(protocol[:40]))
        reason = (
            f"This emulator does not serve {name} clients (/clients/{protocol[:40]}/...). "
            + _SERVED
        )
        logger.warning("Refused a %s client at %s: the emulator does not serve that protocol.",
                       name, request.path[:200])
        self.service.trace.add("error", hub[:128].lower(), None,
                               f"{name} client refused: not emulated")
        return web.Response(status=501, text=reason)

    # -- fault injection --------------------------------------------------------------------------

    async def drop(self, connection_id: str, hub: str | None = None) -> bool:
        """Cut a client's socket without a close frame, as a network failure would.

        For tests of recovery: a reliable client comes back to the same connection. Returns
        whether a connected socket was found.
        """
        return self.service.drop(connection_id, hub)

    async def drop_half_open(self, connection_id: str, hub: str | None = None) -> bool:
        """Let a client's socket go silent but open (half-open): no close frame, no FIN, no
        data, nothing read, so only the client's own keep-alive finds out.

        The connection is lost: a reliable client may recover it within the recovery window,
        any other connection ends (the upstream gets ``disconnected``). The socket stays open
        until the emulator stops. Returns whether a connected socket was found.
        """
        return await self.service.drop_half_open(connection_id, hub)

    async def close_connection(
        self, connection_id: str, *, code: int = 1000, reason: str | None = None,
        hub: str | None = None,
    ) -> bool:
        """Close a client's connection with a close frame of ``code`` (e.g. 1011, or 4000-4999)
        and ``reason``, after a ``disconnected`` message in its protocol; the upstream gets
        ``disconnected``. Returns whether the connection was found."""
        return await self.service.close(connection_id, code, reason, hub)

    def add_upstream_fault(self, fault: UpstreamFault | None = None, **settings: Any
                           ) -> UpstreamFault:
        """Make matching upstream calls slow or fail: ``add_upstream_fault(delay=2.0)``,
        ``add_upstream_fault(status=503, event="message", count=1)`` (``status=0``: a network
        error). Thread-safe. Returns the fault, numbered."""
        return self.upstream.faults.add(fault if fault is not None else UpstreamFault(**settings))

    def clear_upstream_faults(self) -> int:
        """Remove every upstream fault; how many there were."""
        return self.upstream.faults.clear()

    def upstream_faults(self) -> list[dict[str, Any]]:
        """The upstream faults in force."""
        return self.upstream.faults.describe()

    async def send_message(
        self, hub: str, data: bytes, content_type: str, *, to: str = "hub",
        name: str | None = None,
    ) -> None:
        """Send a message to the whole hub, or to the connection, user or group ``name``
        (``to``), through the emulator's own REST API: the path an app's message takes.
        Raises ``ValueError`` with the API's answer when it refuses."""
        path = _SEND_PATHS[to].format(quote(name or "", safe=""))
        url = f"{self.url}/api/hubs/{quote(hub, safe='')}{path}?api-version=2024-12-01"
        if self.identity is not None:
            credential = self.identity.credential()
            token = (await asyncio.to_thread(
                credential.get_token, f"{SERVICE_AUDIENCE}/.default"
            )).token
        else:
            token = build_service_token(url, self.access_keys[0])
        headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=10)
        ) as http, http.post(URL(url, encoded=True), data=data, headers=headers) as response:
            if response.status == 202:
                return
            answer = await response.read()
        try:
            message = str(decode_json(answer)["message"])
        except (ValueError, KeyError, TypeError):
            message = answer[:200].decode("utf-8", "replace")
        raise ValueError(f"the REST API answered {response.status}: {message}")

    def snapshot(self) -> dict[str, Any]:
        """Hubs (configured or in use), their upstream, connections and groups, as the
        dashboard shows them. Upstream URLs show their query's names, not its values."""
        rosters = {name: r for name, r in self.service.rosters.items() if not r.idle}
        names = set(rosters) | {h.lower() for h in self.hub_names} | {
            h for h in self.upstream.handlers if h != ANY_HUB
        }
        return {
            "url": self.url,
            "auth": "Entra ID" if self.identity is not None else "access key",
            "traceLength": self.service.trace.length,
            "bodyLimit": BODY_LIMIT,
            "upstream": {
                hub: [masked_url(h.url_template) for h in handlers]
                for hub, handlers in self._event_handlers.items()
            },
            "hubs": [self._hub_snapshot(name, rosters.get(name)) for name in sorted(names)],
        }

    def _hub_snapshot(self, name: str, roster: Roster | None) -> dict[str, Any]:
        handlers = self.upstream.handlers.get(name, self.upstream.handlers.get(ANY_HUB, ()))
        groups = roster.groups if roster is not None else {}
        return {
            "name": name,
            "upstream": [
                {
                    "url": masked_url(h.url_template),
                    "userEvents": sorted(h.user_events),
                    "systemEvents": sorted(h.system_events),
                }
                for h in handlers
            ],
            "anonymous": self.service.allows_anonymous(name),
            "connections": [
                _connection_snapshot(c)
                for c in (roster.connections.values() if roster is not None else ())
            ],
            "groups": [
                {
                    "name": group,
                    "size": len(members),
                    "members": [
                        {"connectionId": c.connection_id, "userId": c.user_id}
                        for c in list(members.values())[:GROUP_MEMBERS_SHOWN]
                    ],
                }
                for group, members in sorted(groups.items())
            ],
        }


def _connection_snapshot(connection: Connection) -> dict[str, Any]:
    """A connection as the dashboard shows it. An MQTT connection is a session: its groups are
    its subscriptions, and it is ``offline`` while it waits for its client."""
    mqtt = connection.subprotocol == MQTT_SUBPROTOCOL
    if mqtt:
        status = "online" if connection.attached else "offline"
    else:
        status = "connected" if connection.attached else "recovering"
    return {
        "connectionId": connection.connection_id,
        "userId": connection.user_id,
        "subprotocol": connection.subprotocol,
        "protocol": PROTOCOL_LABELS.get(connection.subprotocol, connection.subprotocol),
        "mqtt": mqtt,
        "groups": sorted(connection.groups),
        "roles": sorted(connection.roles),
        "status": status,
        "connectedAt": connection.connected_at,
    }
