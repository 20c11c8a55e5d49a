"""The emulator's test stack: a real app (the extension, signatures on) served on loopback, an
emulator in a background thread forwarding to it, and helpers for raw WebSocket clients."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask, abort, request
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from flask_webpubsub import (
    ConnectedEvent,
    ConnectEvent,
    ConnectResponse,
    DisconnectedEvent,
    GroupJoinedEvent,
    NegotiateOptions,
    UserEvent,
    UserEventResponse,
    WebPubSub,
)
from flask_webpubsub.core.endpoint import ServiceEndpoint
from flask_webpubsub.core.tokens import build_client_token
from flask_webpubsub.core.wire import JSON_SUBPROTOCOL, RELIABLE_JSON_SUBPROTOCOL
from flask_webpubsub.emulator import EmulatorThread
from tests.support import PRIMARY_KEY, SECONDARY_KEY, base_url, free_port, serve

#: The emulator's access key.
KEY = PRIMARY_KEY
#: A key the emulator does not know.
OTHER_KEY = SECONDARY_KEY
HUB = "chat"
JSON = JSON_SUBPROTOCOL
RELIABLE = RELIABLE_JSON_SUBPROTOCOL
ALL_ROLES = ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"]


def subprotocols(name: str | None) -> list[Subprotocol] | None:
    return [Subprotocol(name)] if name else None


def read_until_closed(receive: Callable[[], Any]) -> tuple[int, list[Any]]:
    """Receive until the server closes: its close code, and what came before."""
    seen = []
    try:
        while True:
            seen.append(receive())
    except ConnectionClosed as closed:
        frame = closed.rcvd
    assert frame is not None, "closed without a close frame"
    return frame.code, seen


class AppServer:
    """A WSGI app on loopback (:func:`tests.support.serve`) until ``stop()``, which frees the
    port for a restart."""

    def __init__(self, app: Any, port: int = 0) -> None:
        self._serving = ExitStack()
        server = self._serving.enter_context(serve(app, port=port))
        self.port = server.server_port
        self.url = base_url(server)

    def stop(self) -> None:
        self._serving.close()


@dataclass
class Recorded:
    """What the app's handlers saw: (event name, connection id, detail)."""

    events: list[tuple[str, str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, connection_id: str, detail: Any = None) -> None:
        with self.lock:
            self.events.append((name, connection_id, detail))

    def of(self, name: str, connection_id: str | None = None) -> list[Any]:
        with self.lock:
            return [
                d for n, c, d in self.events
                if n == name and (connection_id is None or c == connection_id)
            ]


def create_chat_app(connection_string: str, recorded: Recorded, **config: Any) -> Flask:
    """The app under test: the real extension, with handlers for every kind of event."""
    app = Flask("emulator_e2e")
    app.config.update(WEBPUBSUB_CONNECTION_STRING=connection_string, WEBPUBSUB_HUB=HUB, **config)
    webpubsub = WebPubSub(app)

    @webpubsub.on_negotiate
    def negotiate() -> NegotiateOptions:
        return NegotiateOptions(user_id=request.args.get("user"), roles=ALL_ROLES)

    @webpubsub.on_connect
    def connect(event: ConnectEvent) -> ConnectResponse:
        recorded.add("connect", event.connection_id, {
            "user": event.user_id, "query": event.query, "subprotocols": event.subprotocols,
            "claims": event.claims,
        })
        if "reject" in event.query:
            abort(403, "Rejected by the app.")
        event.state["count"] = 0
        groups = event.query.get("group", [])
        return ConnectResponse(groups=groups)

    @webpubsub.on_connected
    def connected(event: ConnectedEvent) -> None:
        recorded.add("connected", event.connection_id, event.state)

    @webpubsub.on_disconnected
    def disconnected(event: DisconnectedEvent) -> None:
        recorded.add("disconnected", event.connection_id, event.reason)

    @webpubsub.on_group_joined
    def joined(event: GroupJoinedEvent) -> None:
        recorded.add("joined", event.connection_id, event.group)

    @webpubsub.on_user_event("echo")
    def echo(event: UserEvent) -> UserEventResponse:
        recorded.add("echo", event.connection_id, event.data)
        return UserEventResponse(event.data, data_type=event.data_type)

    @webpubsub.on_user_event("count")
    def count(event: UserEvent) -> dict[str, int]:
        event.state["count"] = int(event.state.get("count", 0)) + 1
        return {"count": event.state["count"]}

    @webpubsub.on_user_event("silent")
    def silent(event: UserEvent) -> None:
        recorded.add("silent", event.connection_id, event.data)

    @webpubsub.on_user_event("fail")
    def fail(event: UserEvent) -> None:
        abort(400, "The app refuses this event.")

    @webpubsub.on_user_event("message")
    def message(event: UserEvent) -> str | bytes:
        recorded.add("message", event.connection_id, event.data)
        if isinstance(event.data, bytes):
            return event.data[::-1]
        return f"echo: {event.data}"

    return app


@dataclass
class Stack:
    """An emulator forwarding to the chat app, which talks back through the emulator."""

    emulator: EmulatorThread
    app: Flask
    server: AppServer
    recorded: Recorded

    @property
    def ws_url(self) -> str:
        return self.emulator.url.replace("http", "ws", 1)

    def negotiate(self, user: str | None = None, **query: str) -> str:
        """A client URL from the app's negotiate route (extra query items are added to it)."""
        import urllib.parse
        import urllib.request

        params = {"user": user} if user else {}
        with urllib.request.urlopen(
            f"{self.server.url}/negotiate?{urllib.parse.urlencode(params)}", timeout=10
        ) as response:
            url: str = json.load(response)["url"]
        if query:
            url += "&" + urllib.parse.urlencode(query)
        return url

    def token(self, user: str | None = None, roles: list[str] | None = None,
              groups: list[str] | None = None, hub: str = HUB) -> str:
        return build_client_token(
            ServiceEndpoint(self.emulator.url, KEY), hub, user_id=user, roles=roles or [],
            groups=groups or [],
        )

    def client_url(self, user: str | None = None, roles: list[str] | None = None,
                   groups: list[str] | None = None, hub: str = HUB) -> str:
        return f"{self.ws_url}/client/hubs/{hub}?access_token=" + self.token(
            user, roles, groups, hub
        )


def start_stack(
    create_app: Callable[[str, Recorded], Flask] = create_chat_app, **options: Any
) -> Stack:
    """The app (``create_app(connection_string, recorded)``) first, so the emulator's
    abuse-protection check reaches it, then the emulator on the port the app's connection string
    names."""
    recorded = Recorded()
    port = free_port()
    connection_string = f"Endpoint=http://127.0.0.1:{port};AccessKey={KEY};Version=1.0;"
    app = create_app(connection_string, recorded)
    server = AppServer(app)
    options.setdefault("upstream", f"{server.url}/eventhandler")
    options.setdefault("recovery_timeout", 5.0)
    emulator = EmulatorThread(port=port, access_key=KEY, **options)
    try:
        emulator.start()
    except BaseException:
        server.stop()
        raise
    assert emulator.connection_string == connection_string
    return Stack(emulator, app, server, recorded)


@pytest.fixture
def stack() -> Iterator[Stack]:
    stack = start_stack()
    try:
        yield stack
    finally:
        stack.emulator.stop()
        stack.server.stop()


@pytest.fixture
def bare() -> Iterator[EmulatorThread]:
    """An emulator with no upstream: groups, REST and clients only."""
    with EmulatorThread(access_key=KEY) as emulator:
        yield emulator


def bare_url(emulator: EmulatorThread, user: str | None = None, roles: list[str] | None = None,
             groups: list[str] | None = None, hub: str = HUB) -> str:
    token = build_client_token(
        ServiceEndpoint(emulator.url, KEY), hub, user_id=user, roles=roles or [],
        groups=groups or [],
    )
    return emulator.url.replace("http", "ws", 1) + f"/client/hubs/{hub}?access_token={token}"
