"""The emulator's HTTP server: the client endpoint, the REST API and the live page, on one
aiohttp server in the caller's event loop (``await start()`` / ``await stop()``).

:mod:`.runner` runs one in a background thread, or until Ctrl+C.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiohttp import web

from flask_webpubsub.core.endpoint import ServiceEndpoint, normalize_endpoint
from flask_webpubsub.core.wire import HUB_NAME_RULE, MAX_MESSAGE_BYTES, SYSTEM_EVENTS, is_hub_name

from . import client_endpoint, page, rest
from .event_handlers import ANY_HUB, EventHandler
from .faults import UpstreamFault
from .identity import IdentityProvider
from .redact import RedactingLogger
from .roster import Roster
from .service import Service
from .upstream import RETRY_DELAYS, Upstream

logger = logging.getLogger(__name__)

#: The service's keep-alive interval for a hub's sockets (``webSocketKeepAliveIntervalInSeconds``,
#: 1-120 seconds), by default.
DEFAULT_KEEPALIVE = 20.0

#: Client protocols of the service that the emulator does not serve, by their path segment.
_CLIENT_PROTOCOLS = {"socketio": "Socket.IO", "mqtt": "MQTT"}


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
        """A client of a protocol the emulator does not serve (Socket.IO, MQTT, ...): a clear
        answer and a log line, not a bare 404."""
        protocol = request.match_info["protocol"]
        name = _CLIENT_PROTOCOLS.get(protocol.lower(), repr(protocol[:40]))
        reason = (
            f"This emulator does not serve {name} clients (/clients/{protocol[:40]}/...). It "
            "serves WebSocket clients at /client/hubs/{hub}: simple WebSocket, "
            "json.webpubsub.azure.v1 and json.reliable.webpubsub.azure.v1."
        )
        logger.warning("Refused a %s client at %s: the emulator does not serve that protocol.",
                       name, request.path[:200])
        hub = request.path.split("/hubs/", 1)[1].split("/")[0] if "/hubs/" in request.path else ""
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

    def snapshot(self) -> dict[str, Any]:
        """Hubs, connections and groups, as the live page shows them."""
        return {
            "url": self.url,
            "upstream": {
                hub: [h.redacted for h in handlers]
                for hub, handlers in self._event_handlers.items()
            },
            "hubs": [
                {
                    "name": roster.name,
                    "groups": {g: len(m) for g, m in sorted(roster.groups.items())},
                    "connections": [
                        {
                            "connectionId": c.connection_id,
                            "userId": c.user_id,
                            "groups": sorted(c.groups),
                            "roles": sorted(c.roles),
                            "subprotocol": c.subprotocol,
                            "status": "connected" if c.attached else "recovering",
                            "connectedAt": c.connected_at,
                        }
                        for c in roster.connections.values()
                    ],
                }
                for roster in sorted(self.service.rosters.values(), key=lambda r: r.name)
                if not roster.idle
            ],
        }
