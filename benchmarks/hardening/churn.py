"""Emulator churn: many concurrent reliable clients (``json.reliable.webpubsub.azure.v1``)
connecting, joining a group, sending to it with ackIds, leaving and coming back as new
connections, against the emulator in a subprocess (so its memory can be read from /proc).

Each client slot repeats, until the run's time is up: connect; join one of the groups and wait
for the ack; send messages to the group, each waiting for its ack; stay a moment; then leave, on
alternate rounds with ``leaveGroup`` (and its ack) before closing, or by closing at once. The
first connections of all slots wait, once joined, until every slot's has joined: all the clients
are connected at once before the churn spreads them out. A membership lasts from the join's ack
to the moment the client starts leaving. A message acknowledged to its sender must reach,
exactly once, every connection whose membership covers the message's whole send-to-ack window
(messages that cross a join or leave may or may not arrive, as on the service, but never twice).
Then every client is gone, and the emulator's memory must come back, within a tolerance, to its
level before the measured round (taken after a priming round of the same shape: see
:func:`run_churn`), and it must hold no connection, group or user.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import random
import secrets
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from flask_webpubsub.core.endpoint import ServiceEndpoint
from flask_webpubsub.core.tokens import build_client_token

from .procs import LOG_PROBLEMS, free_port, process_tree_rss_kib, start_emulator, stopping

HUB = "churn"
RELIABLE = Subprotocol("json.reliable.webpubsub.azure.v1")
ROLES = ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"]
#: How long one request may wait for its ack before it counts as a failure.
ACK_TIMEOUT = 30.0


@dataclass(frozen=True)
class ChurnSettings:
    clients: int
    seconds: float
    #: Members per group, on average.
    group_size: int = 10
    messages_per_round: int = 2
    #: How long a client stays after sending, seconds (uniform between the two).
    stay: tuple[float, float] = (1.0, 2.5)
    #: Concurrent WebSocket handshakes.
    handshakes: int = 100
    #: The emulator's memory after the run may exceed the baseline by this fraction ...
    rss_tolerance: float = 0.10
    #: ... or by this many KiB, whichever is larger.
    rss_tolerance_kib: int = 5 * 1024
    #: How long the emulator may take to come back to its baseline after the clients left.
    settle_seconds: float = 20.0
    #: A first round of the same shape, before the baseline is taken: see run_churn.
    prime_seconds: float = 5.0

    @property
    def groups(self) -> int:
        return max(1, self.clients // self.group_size)


SHORT = ChurnSettings(clients=200, seconds=10, prime_seconds=10)
LONG = ChurnSettings(clients=1000, seconds=60, prime_seconds=20)


@dataclass
class Sent:
    message_id: str
    group: str
    sent_at: float
    acked_at: float = 0.0


@dataclass
class Membership:
    connection: int
    group: str
    joined_at: float
    left_at: float = float("inf")


@dataclass
class ChurnReport:
    settings: ChurnSettings
    seconds: float = 0.0
    connections: int = 0
    messages_sent: int = 0
    messages_acked: int = 0
    deliveries_expected: int = 0
    deliveries_received: int = 0
    #: Deliveries of expected messages (the rest crossed a join or a leave).
    deliveries_matched: int = 0
    missing: int = 0
    duplicates: int = 0
    #: Deliveries of messages that were never sent, or sent to another group.
    strays: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    #: Open connections, seen from the clients every quarter second: the most, the mean.
    open_peak: int = 0
    open_mean: float = 0.0
    #: Connections and errors of the priming round.
    prime_connections: int = 0
    prime_errors: int = 0
    #: Before any client; then after the priming round (the baseline).
    rss_cold_kib: int = 0
    rss_baseline_kib: int = 0
    rss_peak_kib: int = 0
    rss_after_kib: int = 0
    settled_after_seconds: float | None = None
    leftover: dict[str, int] = field(default_factory=dict)
    #: Warnings and tracebacks in the emulator's log.
    log_problems: list[str] = field(default_factory=list)

    @property
    def rss_limit_kib(self) -> int:
        return self.rss_baseline_kib + max(
            int(self.rss_baseline_kib * self.settings.rss_tolerance),
            self.settings.rss_tolerance_kib,
        )

    @property
    def errors(self) -> int:
        return (self.missing + self.duplicates + self.strays + sum(self.failures.values())
                + sum(self.leftover.values()) + self.prime_errors + len(self.log_problems))

    def problems(self) -> list[str]:
        """What misses the requirements; empty when the run passed."""
        found = []
        if self.errors:
            found.append(f"{self.errors} errors: {self.summary()}")
        if not self.messages_acked or not self.deliveries_expected:
            found.append("no message was acknowledged and expected anywhere")
        if self.rss_after_kib > self.rss_limit_kib:
            found.append(
                f"the emulator's memory stayed at {self.rss_after_kib} KiB after the clients "
                f"left, over the baseline {self.rss_baseline_kib} KiB + tolerance "
                f"({self.rss_limit_kib} KiB)"
            )
        return found

    def summary(self) -> dict[str, Any]:
        return {
            "clients": self.settings.clients,
            "groups": self.settings.groups,
            "seconds": round(self.seconds, 1),
            "connections": self.connections,
            "messages_sent": self.messages_sent,
            "messages_acked": self.messages_acked,
            "deliveries_expected": self.deliveries_expected,
            "deliveries_received": self.deliveries_received,
            "deliveries_matched": self.deliveries_matched,
            "missing": self.missing,
            "duplicates": self.duplicates,
            "strays": self.strays,
            "failures": dict(self.failures),
            "open_peak": self.open_peak,
            "open_mean": round(self.open_mean),
            "prime_connections": self.prime_connections,
            "prime_errors": self.prime_errors,
            "rss_cold_kib": self.rss_cold_kib,
            "rss_baseline_kib": self.rss_baseline_kib,
            "rss_peak_kib": self.rss_peak_kib,
            "rss_after_kib": self.rss_after_kib,
            "rss_limit_kib": self.rss_limit_kib,
            "settled_after_seconds": self.settled_after_seconds,
            "leftover": self.leftover,
            "log_problems": self.log_problems[:10],
            "errors": self.errors,
        }


class Connection:
    """One WebSocket connection of a slot: what it received, and its pending acks."""

    def __init__(self, number: int, ws: ClientConnection) -> None:
        self.number = number
        self.ws = ws
        self.received: Counter[str] = Counter()
        self.acks: dict[int, asyncio.Future[tuple[float, dict[str, Any]]]] = {}
        self.connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.leaving = False
        self.failure: str | None = None

    async def read(self) -> None:
        last_sequence_id = 0
        try:
            async for frame in self.ws:
                now = time.monotonic()
                message = json.loads(frame)
                kind = message.get("type")
                if kind == "ack":
                    future = self.acks.pop(message["ackId"], None)
                    if future is not None and not future.done():
                        future.set_result((now, message))
                elif kind == "message":
                    self.received[message["data"]] += 1
                    last_sequence_id = message["sequenceId"]
                    if last_sequence_id % 10 == 0:
                        await self.ws.send(json.dumps(
                            {"type": "sequenceAck", "sequenceId": last_sequence_id}
                        ))
                elif message.get("event") == "connected":
                    self.connected.set_result(None)
                elif message.get("event") == "disconnected" and not self.leaving:
                    self.failure = f"disconnected by the emulator: {message.get('message')}"
        except ConnectionClosed:
            pass
        if not self.leaving and self.failure is None:
            self.failure = "closed by the emulator"
        error = ConnectionError(self.failure or "closed")
        for future in self.acks.values():
            if not future.done():
                future.set_exception(error)
        if not self.connected.done():
            self.connected.set_exception(error)

    async def request(self, ack_id: int, **fields: Any) -> tuple[float, dict[str, Any]]:
        """Send a request with ``ackId``; (when its ack arrived, the ack)."""
        future: asyncio.Future[tuple[float, dict[str, Any]]] = (
            asyncio.get_running_loop().create_future()
        )
        self.acks[ack_id] = future
        await self.ws.send(json.dumps({"ackId": ack_id, **fields}))
        return await asyncio.wait_for(future, ACK_TIMEOUT)


class Churn:
    def __init__(self, settings: ChurnSettings, endpoint: ServiceEndpoint, pid: int) -> None:
        self.settings = settings
        self.endpoint = endpoint
        self.pid = pid
        self.report = ChurnReport(settings)
        self.sent: dict[str, Sent] = {}
        self.memberships: list[Membership] = []
        #: What each connection (by number) received.
        self.received: dict[int, Counter[str]] = {}
        self.handshakes = asyncio.Semaphore(settings.handshakes)
        self.random = random.Random(8)
        self.open = 0
        #: Set once every slot's first connection has joined its group: all are open at once.
        self.all_joined = asyncio.Event()
        self.joined_first = 0

    def url(self, slot: int) -> str:
        token = build_client_token(self.endpoint, HUB, user_id=f"u{slot}", roles=ROLES)
        return f"{self.endpoint.websocket_url}/client/hubs/{HUB}?access_token={token}"

    async def round(self, slot: int, number: int, leave_first: bool, first: bool) -> None:
        """One connection's life: connect, join, send, stay, leave."""
        settings = self.settings
        group = f"g{self.random.randrange(settings.groups)}"
        async with self.handshakes:
            ws = await connect(self.url(slot), subprotocols=[RELIABLE], compression=None,
                               open_timeout=30, close_timeout=10)
        connection = Connection(number, ws)
        self.open += 1
        self.received[number] = connection.received
        reader = asyncio.create_task(connection.read())
        membership: Membership | None = None
        try:
            await asyncio.wait_for(connection.connected, ACK_TIMEOUT)
            joined_at, ack = await connection.request(1, type="joinGroup", group=group)
            if not ack.get("success"):
                self.report.failures[f"join refused: {ack.get('error')}"] += 1
                return
            membership = Membership(number, group, joined_at)
            self.memberships.append(membership)
            if first:
                self.joined_first += 1
                if self.joined_first == settings.clients:
                    self.all_joined.set()
                await asyncio.wait_for(self.all_joined.wait(), 60)
            for n in range(settings.messages_per_round):
                message_id = f"{slot}.{number}.{n}"
                sent = Sent(message_id, group, time.monotonic())
                self.sent[message_id] = sent
                self.report.messages_sent += 1
                sent.acked_at, ack = await connection.request(
                    2 + n, type="sendToGroup", group=group, dataType="text", data=message_id
                )
                if not ack.get("success"):
                    self.report.failures[f"send refused: {ack.get('error')}"] += 1
                    del self.sent[message_id]
                    continue
                self.report.messages_acked += 1
            await asyncio.sleep(self.random.uniform(*settings.stay))
            if leave_first:
                membership.left_at = time.monotonic()
                _, ack = await connection.request(
                    2 + settings.messages_per_round, type="leaveGroup", group=group
                )
                if not ack.get("success"):
                    self.report.failures[f"leave refused: {ack.get('error')}"] += 1
        except (ConnectionError, ConnectionClosed, asyncio.TimeoutError) as exc:
            self.report.failures[connection.failure or type(exc).__name__] += 1
        finally:
            if membership is not None and membership.left_at == float("inf"):
                membership.left_at = time.monotonic()
            connection.leaving = True
            await ws.close()
            await reader
            self.open -= 1

    async def slot(self, slot: int, deadline: float) -> None:
        rounds = 0
        while time.monotonic() < deadline:
            number = self.report.connections
            self.report.connections += 1
            try:
                await self.round(slot, number, leave_first=rounds % 2 == 0, first=rounds == 0)
            except (OSError, InvalidStatus, asyncio.TimeoutError) as exc:
                self.report.failures[f"connect failed: {type(exc).__name__}"] += 1
                await asyncio.sleep(0.5)
            rounds += 1

    async def sample(self) -> None:
        report = self.report
        samples = 0
        while True:
            report.rss_peak_kib = max(report.rss_peak_kib, process_tree_rss_kib(self.pid))
            report.open_peak = max(report.open_peak, self.open)
            report.open_mean = (report.open_mean * samples + self.open) / (samples + 1)
            samples += 1
            await asyncio.sleep(0.25)

    async def run(self) -> None:
        started = time.monotonic()
        deadline = started + self.settings.seconds
        sampler = asyncio.create_task(self.sample())
        try:
            # Bounded twice: the slots stop starting rounds at the deadline, and a round that
            # hangs is cut a minute after it.
            await asyncio.wait_for(
                asyncio.gather(*(self.slot(n, deadline) for n in range(self.settings.clients))),
                self.settings.seconds + 60,
            )
        finally:
            sampler.cancel()
        self.report.seconds = time.monotonic() - started

    def verify(self) -> None:
        """Count expected, missing, duplicate and stray deliveries."""
        report = self.report
        by_group: dict[str, list[Sent]] = defaultdict(list)
        for sent in self.sent.values():
            by_group[sent.group].append(sent)
        for messages in by_group.values():
            messages.sort(key=lambda s: s.sent_at)
        starts = {group: [s.sent_at for s in messages] for group, messages in by_group.items()}
        membership_group = {m.connection: m.group for m in self.memberships}
        for membership in self.memberships:
            received = self.received.get(membership.connection, Counter())
            messages = by_group.get(membership.group, [])
            first = bisect.bisect_left(starts.get(membership.group, []), membership.joined_at)
            for sent in messages[first:]:
                if sent.sent_at > membership.left_at:
                    break
                if sent.acked_at <= membership.left_at:
                    report.deliveries_expected += 1
                    if received[sent.message_id]:
                        report.deliveries_matched += 1
                    else:
                        report.missing += 1
        for number, received in self.received.items():
            for message_id, count in received.items():
                report.deliveries_received += count
                report.duplicates += count - 1
                origin = self.sent.get(message_id)
                if origin is None or origin.group != membership_group.get(number):
                    report.strays += count


def _emulator_state(url: str) -> dict[str, int]:
    # S310: the emulator this module started, on http://127.0.0.1.
    with urllib.request.urlopen(f"{url}/_emulator/state", timeout=10) as response:  # noqa: S310
        state = json.load(response)
    hubs = [hub for hub in state["hubs"] if hub["name"] == HUB]
    if not hubs:
        return {"connections": 0, "groups": 0}
    return {"connections": len(hubs[0]["connections"]), "groups": len(hubs[0]["groups"])}


def _steady_rss(pid: int, samples: int = 5) -> int:
    """The median of a second's samples."""
    values = []
    for _ in range(samples):
        values.append(process_tree_rss_kib(pid))
        time.sleep(0.2)
    return sorted(values)[len(values) // 2]


def _churn(settings: ChurnSettings, endpoint: ServiceEndpoint, pid: int) -> ChurnReport:
    churn = Churn(settings, endpoint, pid)
    asyncio.run(churn.run())
    churn.verify()
    return churn.report


def run_churn(settings: ChurnSettings, access_key: str | None = None) -> ChurnReport:
    """Start the emulator, churn, verify, watch its memory settle; the figures.

    The baseline is the emulator's memory after a priming round of the same shape
    (``prime_seconds``) and a few seconds' rest: CPython keeps the memory arenas the first
    round grew (a few objects that outlive it, such as the libraries' URL caches and the live
    trace, pin them), so the memory before any client (``rss_cold_kib``, reported too) is not
    the level a leak-free emulator returns to; the level after the first round is, and the
    measured round must come back to it.

    ``access_key``: the emulator's key (a fresh random one when None), for a caller that has
    to know it, such as a test run that checks no key reaches its output.
    """
    key = access_key or secrets.token_urlsafe(32)
    port = free_port()
    endpoint = ServiceEndpoint(f"http://127.0.0.1:{port}", key)
    with tempfile.TemporaryDirectory(prefix="hardening-churn-") as work:
        emulator = start_emulator(port, key, Path(work) / "emulator.log")
        with stopping(emulator):
            cold = _steady_rss(emulator.pid)
            prime = _churn(replace(settings, seconds=settings.prime_seconds), endpoint,
                           emulator.pid)
            time.sleep(3)
            baseline = _steady_rss(emulator.pid)
            report = _churn(settings, endpoint, emulator.pid)
            report.rss_cold_kib = cold
            report.rss_baseline_kib = baseline
            report.prime_connections = prime.connections
            report.prime_errors = prime.errors
            left = time.monotonic()
            while True:
                report.rss_after_kib = _steady_rss(emulator.pid)
                waited = time.monotonic() - left
                if report.rss_after_kib <= report.rss_limit_kib:
                    report.settled_after_seconds = round(waited, 1)
                    break
                if waited > settings.settle_seconds:
                    break
            report.leftover = {k: v for k, v in _emulator_state(endpoint.url).items() if v}
            if emulator.process.poll() is not None:
                report.failures["the emulator exited"] += 1
        report.log_problems = [*emulator.log_lines(*LOG_PROBLEMS), *emulator.exit_problems()]
    return report
