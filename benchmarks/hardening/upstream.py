"""Upstream load: the example chat under gunicorn (or granian, the recommended server for
production), the emulator as its service, both in subprocesses, driven by
:mod:`benchmarks.hardening.load`.

Each simulated client holds one real WebSocket connection to the emulator (so the app's REST
calls, which move connections between groups, find it) and, over that connection's id, plays
the service's side of a chat session again and again: ``connect`` (asking for its own room),
``connected``, ``join`` another room, ``message`` twice, ``join`` back, ``message``, ``leave``,
``disconnected``. The app handles every event for real: it checks the name, stores presence and
messages in SQLite, moves the connection with the service client and sends each message to the
room through the emulator, which delivers it to the WebSocket; the run checks that every
message the app accepted reached its client exactly once. Every client has rooms of its own, so
the emulator's fan-out stays at one frame per message.

Failures: any non-2xx reply, transport error, reply of ``kind: "error"`` (the app's refusals are
200s), WebSocket that closes early, missing delivery, or warning or traceback in the app's log.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from flask_webpubsub.core.endpoint import ServiceEndpoint
from flask_webpubsub.core.tokens import build_client_token

from .load import LoadResult, Scenario, run_load
from .procs import (
    LOG_PROBLEMS,
    ServerProcess,
    free_ports,
    start_emulator,
    start_granian,
    start_gunicorn,
    stopping,
)

HUB = "chat"
JSON_SUBPROTOCOL = Subprotocol("json.webpubsub.azure.v1")


@dataclass(frozen=True)
class UpstreamSettings:
    concurrency: int
    #: Stop once this many requests are made and ``min_seconds`` have passed ...
    target_requests: int
    min_seconds: float
    #: ... or at this hard cap.
    max_seconds: float
    #: Requests before the "after warm-up" memory sample.
    warmup_requests: int
    #: Requirements: at least this many requests after warm-up ...
    required_requests: int = 100
    #: ... and the server's memory grows less than this fraction over them (None: not checked).
    max_rss_growth: float | None = None
    #: ``gunicorn`` (sync workers, unless ``worker_class`` says otherwise) or ``granian``.
    server: str = "gunicorn"
    workers: int = 2
    worker_class: str = "sync"
    threads: int = 1

    @property
    def server_description(self) -> str:
        if self.server == "granian":
            return f"granian ({self.workers} workers, HTTP/1, one blocking thread each)"
        threads = f", {self.threads} threads each" if self.threads > 1 else ""
        return f"gunicorn ({self.workers} {self.worker_class} workers{threads})"


#: The CI forms, one per server: about 7 s each, zero errors.
SHORT = UpstreamSettings(
    concurrency=32, target_requests=1_000_000, min_seconds=0, max_seconds=7,
    warmup_requests=100, required_requests=50,
)
SHORT_GRANIAN = replace(SHORT, server="granian")
#: The long forms: 100,000 requests after a 10,000-request warm-up, at least 60 s, at most 15 min.
LONG = UpstreamSettings(
    concurrency=64, target_requests=110_000, min_seconds=60, max_seconds=900,
    warmup_requests=10_000, required_requests=100_000, max_rss_growth=0.05,
)
LONG_GRANIAN = replace(LONG, server="granian")


@dataclass
class UpstreamReport:
    settings: UpstreamSettings
    load: LoadResult
    messages_accepted: int
    messages_delivered: int
    duplicate_deliveries: int
    websocket_failures: Counter[str] = field(default_factory=Counter)
    log_problems: list[str] = field(default_factory=list)

    @property
    def failures(self) -> int:
        return (
            self.load.failures
            + sum(self.websocket_failures.values())
            + len(self.log_problems)
            + abs(self.messages_accepted - self.messages_delivered)
            + self.duplicate_deliveries
        )

    def problems(self) -> list[str]:
        """What misses the requirements; empty when the run passed."""
        found = []
        if self.failures:
            found.append(f"{self.failures} errors: {self.summary()}")
        settings = self.settings
        measured = self.load.requests - self.load.warmup_requests
        if measured < settings.required_requests:
            found.append(f"{measured} requests after warm-up, fewer than "
                         f"{settings.required_requests}")
        if self.load.seconds < settings.min_seconds:
            found.append(f"ran {self.load.seconds:.0f} s, less than {settings.min_seconds:g} s")
        growth = self.load.rss_growth
        if settings.max_rss_growth is not None and (
            growth is None or growth >= settings.max_rss_growth
        ):
            found.append(f"server memory grew {growth:.1%} after warm-up, not under "
                         f"{settings.max_rss_growth:.0%}" if growth is not None
                         else "no memory figures")
        return found

    def summary(self) -> dict[str, Any]:
        return {
            **self.load.summary(),
            "messages_accepted": self.messages_accepted,
            "messages_delivered": self.messages_delivered,
            "duplicate_deliveries": self.duplicate_deliveries,
            "websocket_failures": dict(self.websocket_failures),
            "log_problems": self.log_problems[:10],
            "all_failures": self.failures,
        }


def rooms(client: int) -> tuple[str, str]:
    return f"r{client}a", f"r{client}b"


class ChatScenario(Scenario):
    """The example chat's session, over the connection ids of real emulator clients."""

    events_per_connection = 6

    def __init__(self, clients: list[ChatClient]) -> None:
        self.clients = clients
        #: Messages the app accepted (``kind: "sent"``): each must reach its client once.
        self.accepted = 0

    def identity(self, client: int) -> tuple[str, str]:
        real = self.clients[client]
        return real.connection_id, real.user_id

    def connect_query(self, client: int) -> dict[str, list[str]]:
        return {"room": [rooms(client)[0]]}

    def user_event(self, client: int, n: int) -> tuple[str, Any]:
        home, other = rooms(client)
        script: list[tuple[str, Any]] = [
            ("join", {"room": other}),
            ("message", {"text": f"hello from {client}"}),
            ("message", {"text": f"message {n} of {client}"}),
            ("join", {"room": home}),
            ("message", {"text": "back home"}),
            ("leave", {}),
        ]
        return script[n % len(script)]

    def app_error(self, event: str, status: int, content_type: str, body: bytes) -> str | None:
        if event == "connect":
            return None if status == 200 else f"status {status}, expected 200 with groups"
        if event in ("connected", "disconnected"):
            return None
        try:
            reply = json.loads(body)
        except ValueError:
            return f"a reply that is not JSON ({content_type})"
        kind = reply.get("kind") if isinstance(reply, dict) else None
        if kind == "error":
            return str(reply.get("error"))[:80]
        expected = "sent" if event == "message" else "room"
        if kind != expected:
            return f"kind {kind!r}, expected {expected!r}"
        if event == "message":
            self.accepted += 1
        return None


class ChatClient:
    """A real WebSocket client of the emulator; counts the chat messages it receives."""

    def __init__(self, index: int, ws: ClientConnection) -> None:
        self.index = index
        self.ws = ws
        self.user_id = f"load{index}"
        self.connection_id = ""
        self.messages: Counter[int] = Counter()
        self.closing = False
        self.failure: str | None = None
        self.connected = asyncio.get_running_loop().create_future()
        self.reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        try:
            async for frame in self.ws:
                message = json.loads(frame)
                if message.get("type") == "system" and message.get("event") == "connected":
                    self.connection_id = message["connectionId"]
                    self.connected.set_result(None)
                elif message.get("type") == "message":
                    data = message.get("data")
                    if isinstance(data, dict) and data.get("kind") == "message":
                        self.messages[data["id"]] += 1
                elif message.get("type") == "system" and message.get("event") == "disconnected":
                    self.failure = f"disconnected: {message.get('message')}"
        except ConnectionClosed as closed:
            if not self.closing:
                self.failure = f"closed early ({closed.rcvd.code if closed.rcvd else 'no frame'})"
        if not self.closing and self.failure is None:
            self.failure = "closed early"
        if not self.connected.done():
            self.connected.set_exception(RuntimeError(self.failure))


async def _open_clients(endpoint: ServiceEndpoint, count: int) -> list[ChatClient]:
    limit = asyncio.Semaphore(16)
    clients: list[ChatClient | None] = [None] * count

    async def open_one(index: int) -> None:
        token = build_client_token(endpoint, HUB, user_id=f"load{index}")
        url = (f"{endpoint.websocket_url}/client/hubs/{HUB}?room={rooms(index)[0]}"
               f"&access_token={token}")
        async with limit:
            ws = await connect(url, subprotocols=[JSON_SUBPROTOCOL], compression=None,
                               open_timeout=30, max_size=2**22)
            client = ChatClient(index, ws)
            clients[index] = client
            client.reader = asyncio.create_task(client.read())
            await asyncio.wait_for(asyncio.shield(client.connected), 30)

    await asyncio.gather(*(open_one(i) for i in range(count)))
    return [c for c in clients if c is not None]


async def _drive(
    settings: UpstreamSettings, endpoint: ServiceEndpoint, app_url: str, server_pid: int,
    emulator_pid: int,
) -> UpstreamReport:
    clients = await _open_clients(endpoint, settings.concurrency)
    scenario = ChatScenario(clients)
    try:
        result = await run_load(
            f"{app_url}/eventhandler", access_key=endpoint.access_key or "", hub=HUB,
            origin=endpoint.host, max_seconds=settings.max_seconds,
            target_requests=settings.target_requests, min_seconds=settings.min_seconds,
            concurrency=settings.concurrency, scenario=scenario, pid=server_pid,
            other_pids={"emulator": emulator_pid}, warmup_requests=settings.warmup_requests,
        )
        # Every accepted message was queued by the emulator before the app's reply: wait for
        # the frames to arrive.
        deadline = time.monotonic() + 10
        while (sum(len(c.messages) for c in clients) < scenario.accepted
               and time.monotonic() < deadline):
            await asyncio.sleep(0.05)
    finally:
        for client in clients:
            client.closing = True
        await asyncio.gather(*(c.ws.close() for c in clients), return_exceptions=True)
        await asyncio.gather(*(c.reader for c in clients if c.reader is not None),
                             return_exceptions=True)
    failures: Counter[str] = Counter(c.failure for c in clients if c.failure is not None)
    return UpstreamReport(
        settings=settings,
        load=result,
        messages_accepted=scenario.accepted,
        messages_delivered=sum(len(c.messages) for c in clients),
        duplicate_deliveries=sum(n - 1 for c in clients for n in c.messages.values() if n > 1),
        websocket_failures=failures,
    )


def run_upstream_load(
    settings: UpstreamSettings, access_key: str | None = None
) -> UpstreamReport:
    """Start the app's server and the emulator, drive them, stop them; the figures.

    ``access_key``: the emulator's key (a fresh random one when None), for a caller that has
    to know it, such as a test run that checks no key reaches its output.
    """
    key = access_key or secrets.token_urlsafe(32)
    app_port, emulator_port = free_ports(2)
    endpoint = ServiceEndpoint(f"http://127.0.0.1:{emulator_port}", key)
    with tempfile.TemporaryDirectory(prefix="hardening-upstream-") as work:
        directory = Path(work)
        config = {
            "CHAT_DATABASE": str(directory / "chat.sqlite3"),
            "CHAT_ROOMS": [room for n in range(settings.concurrency) for room in rooms(n)],
        }
        env = {
            # Secrets in the environment, not on the command line; a fixed SECRET_KEY so that
            # the workers share sessions.
            "SECRET_KEY": secrets.token_hex(32),
            "WEBPUBSUB_CONNECTION_STRING":
                f"Endpoint={endpoint.url};AccessKey={key};Version=1.0;",
        }
        server = _start_server(settings, config, app_port, directory, env)
        with stopping(server):
            app_url = f"http://127.0.0.1:{app_port}"
            emulator = start_emulator(emulator_port, key, directory / "emulator.log",
                                      upstream=f"{app_url}/eventhandler")
            with stopping(emulator):
                report = asyncio.run(
                    _drive(settings, endpoint, app_url, server.pid, emulator.pid)
                )
        report.log_problems = [
            *(f"{process.name}: {line}"
              for process in (emulator, server) for line in process.log_lines(*LOG_PROBLEMS)),
            *emulator.exit_problems(),
            *server.exit_problems(),
        ]
    return report


def _start_server(
    settings: UpstreamSettings, config: dict[str, Any], port: int, directory: Path,
    env: dict[str, str],
) -> ServerProcess:
    log = directory / f"{settings.server}.log"
    if settings.server == "granian":
        return start_granian(
            "benchmarks.hardening.chat_wsgi:app", port, log, workers=settings.workers,
            env={**env, "HARDENING_CHAT_CONFIG": json.dumps(config)},
        )
    # gunicorn calls the factory with literal arguments itself.
    return start_gunicorn(
        f"example_app:create_app({config!r})", port, log, workers=settings.workers,
        worker_class=settings.worker_class, threads=settings.threads, env=env,
    )
