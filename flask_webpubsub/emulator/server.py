"""The emulator: one aiohttp server with the client endpoint, the REST API and the live page.

:class:`Emulator` runs in the caller's event loop (``await start()`` / ``await stop()``);
:class:`EmulatorThread` runs one in a background thread for synchronous code (tests, CLIs);
:func:`run` serves until Ctrl+C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import threading
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from flask_webpubsub.core.endpoint import ServiceEndpoint, normalize_endpoint
from flask_webpubsub.core.jsoncodec import encode_json

from .hub import CLOSE_GOING_AWAY, Hub, Session
from .rest import add_routes
from .settings import ANY_HUB, HUB_NAME, SYSTEM_EVENTS, EventHandler
from .trace import LiveTrace
from .upstream import Upstream, UpstreamError
from .websocket import client_endpoint

logger = logging.getLogger(__name__)

T = TypeVar("T")

EMULATOR_KEY: web.AppKey[Emulator] = web.AppKey("emulator")
#: Bodies above the service's 1 MB message limit are refused (413).
MAX_BODY_BYTES = 1024 * 1024
STATIC = Path(__file__).parent / "static"
_SYSTEM_TYPES = {
    "connected": "azure.webpubsub.sys.connected",
    "disconnected": "azure.webpubsub.sys.disconnected",
    "joined": "azure.webpubsub.gp.joined",
    "left": "azure.webpubsub.gp.left",
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
        recovery_timeout: float = 30.0,
        heartbeat: float | None = 30.0,
        ack_delay: float = 0.01,
        validate_upstream: bool = True,
    ) -> None:
        hub_names = list(hubs)
        for name in hub_names:
            if not HUB_NAME.match(name):
                raise ValueError(f"invalid hub name {name!r}")
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
        self.upstream_timeout = upstream_timeout
        self.recovery_timeout = recovery_timeout
        self.heartbeat = heartbeat
        self.ack_delay = ack_delay
        self.validate_upstream = validate_upstream
        self.hubs: dict[str, Hub] = {}
        self.trace = LiveTrace()
        self._event_handlers = event_handlers
        self.upstream = Upstream(
            event_handlers, self.access_keys, self.public_host, upstream_timeout
        )
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()

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
        return f"Endpoint={self.url};AccessKey={self.access_keys[0]};Version=1.0;"

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
            app = web.Application(client_max_size=MAX_BODY_BYTES)
            app[EMULATOR_KEY] = self
            app.router.add_get("/client/hubs/{hub}", client_endpoint)
            app.router.add_get("/client", client_endpoint)
            app.router.add_get("/client/", client_endpoint)
            add_routes(app)
            app.router.add_get("/", _page)
            app.router.add_get("/_emulator/state", _state)
            app.router.add_static("/_emulator/static", STATIC)
            # No access log: client URLs carry access tokens.
            runner = web.AppRunner(
                app, access_log=None, handle_signals=False, shutdown_timeout=2.0
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
        sessions = [s for hub in self.hubs.values() for s in hub.connections.values()]
        await asyncio.gather(
            *(
                s.end("The emulator is shutting down.", code=CLOSE_GOING_AWAY,
                      notify_upstream=False)
                for s in sessions
            )
        )
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.upstream.close()
        logger.info("Emulator on %s stopped.", self.url)

    # -- services for sessions -----------------------------------------------------------------

    def hub(self, name: str) -> Hub:
        """A hub's state, created on first use (hub names are case-insensitive)."""
        key = name.lower()
        hub = self.hubs.get(key)
        if hub is None:
            hub = self.hubs[key] = Hub(key)
        return hub

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a background task that is cancelled on stop and whose failure is logged."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("Emulator task failed", exc_info=task.exception())

    def notify(self, session: Session, event_name: str, body: Mapping[str, Any]) -> None:
        """Send a non-blocking system event upstream, after the session's earlier ones."""
        handler = self.upstream.handler(session.hub_name, event_name, system=True)
        if handler is None:
            return
        previous = session.last_notification
        data = encode_json(dict(body))

        async def send() -> None:
            if previous is not None and not previous.done():
                await asyncio.wait({previous})
            try:
                reply = await self.upstream.send(
                    handler, session, _SYSTEM_TYPES[event_name], event_name, data,
                    "application/json; charset=utf-8",
                )
            except UpstreamError as exc:
                self.trace.add("error", session.hub_name, session.connection_id,
                               f"{event_name} event failed: {exc}")
                return
            self.trace.add("upstream", session.hub_name, session.connection_id,
                           f"{event_name} -> {reply.status}")

        session.last_notification = self.spawn(send())

    async def drop(self, connection_id: str, hub: str | None = None) -> bool:
        """Cut a client's socket without a close frame, as a network failure would.

        For tests of recovery: a reliable client comes back to the same connection. Returns
        whether a connected socket was found.
        """
        for hub_state in self.hubs.values() if hub is None else [self.hub(hub)]:
            session = hub_state.connections.get(connection_id)
            if session is not None:
                return session.drop()
        return False

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
                    "name": hub.name,
                    "groups": {g: len(m) for g, m in sorted(hub.groups.items())},
                    "connections": [
                        {
                            "connectionId": s.connection_id,
                            "userId": s.user_id,
                            "groups": sorted(s.groups),
                            "roles": sorted(s.roles),
                            "subprotocol": s.subprotocol,
                            "status": "connected" if s.attached else "recovering",
                            "connectedAt": s.connected_at,
                        }
                        for s in hub.connections.values()
                    ],
                }
                for hub in sorted(self.hubs.values(), key=lambda h: h.name)
                if not hub.idle
            ],
        }


async def _page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html")


async def _state(request: web.Request) -> web.StreamResponse:
    emulator = request.app[EMULATOR_KEY]
    try:
        after = int(request.query.get("after", "0"))
    except ValueError:
        after = 0
    body = emulator.snapshot()
    body["trace"] = emulator.trace.since(after)
    return web.json_response(body, headers={"Cache-Control": "no-store"})


class EmulatorThread:
    """An :class:`Emulator` in a background thread with its own event loop.

    ``EmulatorThread(upstream="http://127.0.0.1:5000/eventhandler").start()`` returns once it
    listens (port 0, the default, picks a free port); ``stop()`` closes everything. Also a
    context manager.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        upstream: str | None = None,
        hubs: Iterable[str] = (),
        access_key: str | None = None,
        **options: Any,
    ) -> None:
        self._options = dict(
            host=host, port=port, upstream=upstream, hubs=list(hubs), access_key=access_key,
            **options,
        )
        self._emulator: Emulator | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    @property
    def emulator(self) -> Emulator:
        if self._emulator is None:
            raise RuntimeError("the emulator is not started: call start() first")
        return self._emulator

    @property
    def connection_string(self) -> str:
        return self.emulator.connection_string

    @property
    def endpoint(self) -> ServiceEndpoint:
        return self.emulator.endpoint

    @property
    def url(self) -> str:
        return self.emulator.url

    def start(self, timeout: float = 30.0) -> EmulatorThread:
        """Start serving; raises what :meth:`Emulator.start` raises."""
        if self._thread is not None:
            raise RuntimeError("this EmulatorThread is started already")
        ready: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._main, args=(ready,), name="webpubsub-emulator", daemon=True
        )
        self._thread.start()
        try:
            ready.result(timeout)
        except BaseException:
            self._thread.join(timeout)
            self._thread = None
            raise
        return self

    def _main(self, ready: Future[None]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(ready))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self, ready: Future[None]) -> None:
        self._stopped = asyncio.Event()
        try:
            emulator = Emulator(**self._options)
            await emulator.start()
        except BaseException as exc:
            ready.set_exception(exc)
            return
        self._emulator = emulator
        ready.set_result(None)
        try:
            await self._stopped.wait()
        finally:
            await emulator.stop()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run a coroutine in the emulator's loop and return its result."""
        if self._loop is None or self._thread is None:
            coroutine.close()
            raise RuntimeError("the emulator is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def drop(self, connection_id: str) -> bool:
        """:meth:`Emulator.drop` from this thread."""
        return self.call(self.emulator.drop(connection_id))

    def stop(self, timeout: float = 30.0) -> None:
        """Close every connection and stop the thread; safe to call twice."""
        thread, loop, stopped = self._thread, self._loop, self._stopped
        if thread is None or loop is None or stopped is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop may have closed already
            loop.call_soon_threadsafe(stopped.set)
        thread.join(timeout)
        self._thread = None

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def run(emulator: Emulator, ready: Callable[[Emulator], None] | None = None) -> None:
    """Serve until Ctrl+C or SIGTERM; ``ready`` is called once the emulator listens."""

    async def serve() -> None:
        await emulator.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for name in ("SIGINT", "SIGTERM"):
            with contextlib.suppress(NotImplementedError, AttributeError):
                loop.add_signal_handler(getattr(signal, name), stop.set)
        try:
            if ready is not None:
                ready(emulator)
            await stop.wait()
        finally:
            await emulator.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
