"""Emulator benchmarks, against the targets of the benchmarks issue.

The emulator runs in its own process (``python -m flask_webpubsub.emulator``, no upstream); the
clients are minimal WebSocket readers (:mod:`benchmarks.wsload`) in this process on the JSON
subprotocol, so the two share the machine's cores as a real test rig would, and the clients cost
little enough that the emulator, not they, sets the rate. Every frame they receive is checked
after the timed part.
- connection setup: connects per second until each client has its ``connected`` message;
- memory per idle connection: the emulator's RSS growth over the idle clients, per client
  (target < 50 KB);
- group fan-out: REST ``/groups/{g}/:send`` messages to every client (all in one group from
  their token), deliveries per second from the first send to the last receipt (target
  >= 50,000/s) and send-to-receipt latency p50/p99 (target p99 < 100 ms);
- the same fan-out to as many clients of the protobuf subprotocol (target: within 20% of the
  JSON clients' deliveries per second).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.fixtures import ACCESS_KEY, HUB
from benchmarks.results import Metric, Table
from benchmarks.servers import REPO, free_port, log
from benchmarks.wsload import LoadClient, connect

GROUP = "bench"
SUBPROTOCOL = "json.webpubsub.azure.v1"
PROTOBUF_SUBPROTOCOL = "protobuf.webpubsub.azure.v1"
#: The whole emulator benchmark stops by itself after this long.
TIME_LIMIT_S = 180

SETUP = "connection setup (connections/s, higher is better)"
MEMORY = "memory per idle connection (KB, target < 50)"
DELIVERIES = "group fan-out (deliveries/s, target >= 50,000)"
P50 = "group fan-out send-to-receipt p50 (ms)"
P99 = "group fan-out send-to-receipt p99 (ms, target < 100)"
PROTOBUF_DELIVERIES = "group fan-out, protobuf clients (deliveries/s, target >= 80% of JSON's)"
PROTOBUF_P99 = "group fan-out, protobuf clients, send-to-receipt p99 (ms, target < 100)"


@dataclass(frozen=True)
class EmulatorSettings:
    clients: int
    messages: int
    repeats: int
    connect_concurrency: int = 50


def available() -> bool:
    return importlib.util.find_spec("flask_webpubsub.emulator") is not None


def missing() -> str | None:
    """Why the emulator cannot be measured here (a table's note), or None."""
    if not available():
        return "Not measured: flask_webpubsub.emulator does not exist in this tree."
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return "Not measured: the emulator needs aiohttp (the emulator extra)."
    return None


async def send_to_group(
    http: Any, base: str, group: str, messages: int, clients: Sequence[LoadClient],
    expected: int,
) -> list[float]:
    """``messages`` REST sends (the texts ``0``, ``1``, ...) to ``group``, one after another as
    each is accepted, then wait until the clients hold ``expected`` frames; when each was
    sent."""
    from flask_webpubsub.core.tokens import build_service_token

    path = f"/api/hubs/{HUB}/groups/{group}/:send"
    sent: list[float] = []
    for index in range(messages):
        token = build_service_token(base + path, ACCESS_KEY)
        sent.append(time.perf_counter())
        async with http.post(
            f"{base}{path}?api-version=2024-12-01",
            data=str(index).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
        ) as response:
            if response.status != 202:
                raise RuntimeError(f"send to group answered {response.status}")
    deadline = time.monotonic() + 60
    while (received := sum(len(c.frames) for c in clients)) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{received} of {expected} deliveries arrived")
        await asyncio.sleep(0.005)
    return sent


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@contextlib.contextmanager
def _emulator() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "flask_webpubsub.emulator",
        "--port",
        str(port),
        "--access-key",
        ACCESS_KEY,
        "--log-level",
        "WARNING",
    ]
    process = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        yield port, process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


async def _measure(port: int, pid: int, settings: EmulatorSettings, table: Table) -> None:
    import aiohttp

    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 30
        while True:  # wait until it listens
            try:
                async with http.get(f"{base}/api/health") as response:
                    if response.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start within 30 s")
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        rss_before = _rss_kb(pid)
        started = time.perf_counter()
        clients = await _open_clients(port, settings, SUBPROTOCOL)
        table.contender(SETUP).add("value", settings.clients / (time.perf_counter() - started))
        await asyncio.sleep(1)
        table.contender(MEMORY).add("value", (_rss_kb(pid) - rss_before) / settings.clients)
        load = await _fan_out(http, base, pid, clients, settings, table, DELIVERIES, P50, P99)
        table.notes.append(
            f"During the fan-out the emulator used {load[0]:.0%} of a core and the clients "
            f"(with the sender) {load[1]:.0%}."
        )
        await _close(clients)
        clients = await _open_clients(port, settings, PROTOBUF_SUBPROTOCOL)
        await _fan_out(http, base, pid, clients, settings, table, PROTOBUF_DELIVERIES, None,
                       PROTOBUF_P99)
        await _close(clients)
        json_rate = table.contender(DELIVERIES).median("value")
        protobuf_rate = table.contender(PROTOBUF_DELIVERIES).median("value")
        if json_rate and protobuf_rate:
            table.notes.append(
                f"Protobuf clients got {protobuf_rate / json_rate:.0%} of the JSON clients' "
                "deliveries per second (target >= 80%)."
            )


async def _open_clients(
    port: int, settings: EmulatorSettings, subprotocol: str
) -> list[LoadClient]:
    """``settings.clients`` clients of the subprotocol, each with its connected message."""
    from flask_webpubsub.core.endpoint import ServiceEndpoint
    from flask_webpubsub.core.tokens import build_client_token

    endpoint = ServiceEndpoint(f"http://127.0.0.1:{port}", ACCESS_KEY)
    clients: list[LoadClient] = []
    limit = asyncio.Semaphore(settings.connect_concurrency)

    async def open_client(index: int) -> None:
        token = build_client_token(endpoint, HUB, user_id=f"user{index}", groups=[GROUP])
        async with limit:
            client, first = await connect(
                "127.0.0.1", port, f"/client/hubs/{HUB}?access_token={token}", subprotocol
            )
        if not _is_connected(first, subprotocol):
            raise RuntimeError(f"expected the connected message, got {first!r}")
        clients.append(client)

    await asyncio.gather(*(open_client(i) for i in range(settings.clients)))
    return clients


async def _fan_out(
    http: Any,
    base: str,
    pid: int,
    clients: list[LoadClient],
    settings: EmulatorSettings,
    table: Table,
    deliveries: str,
    p50: str | None,
    p99: str,
) -> tuple[float, float]:
    """Time ``settings.repeats`` fan-outs into the table; the share of a core the emulator and
    this process used meanwhile."""
    expected = settings.messages * settings.clients
    #: CPU seconds of the emulator and of this process, and wall seconds, while timed.
    emulator_cpu = own_cpu = wall = 0.0
    for _ in range(settings.repeats):
        for client in clients:
            client.frames.clear()
        cpu = (_cpu_seconds(pid), time.process_time(), time.perf_counter())
        sent = await send_to_group(http, base, GROUP, settings.messages, clients, expected)
        emulator_cpu += _cpu_seconds(pid) - cpu[0]
        own_cpu += time.process_time() - cpu[1]
        wall += time.perf_counter() - cpu[2]
        receipts = _receipts(clients, settings.messages)
        last = max(at for _, at in receipts)
        table.contender(deliveries).add("value", expected / (last - sent[0]))
        latencies = sorted((at - sent[i]) * 1000 for i, at in receipts)
        if p50 is not None:
            table.contender(p50).add("value", statistics.median(latencies))
        table.contender(p99).add("value", latencies[int(len(latencies) * 0.99) - 1])
    return emulator_cpu / wall, own_cpu / wall


async def _close(clients: list[LoadClient]) -> None:
    for client in clients:
        client.close()
    await asyncio.wait([asyncio.ensure_future(c.closed) for c in clients], timeout=10)


def _is_connected(first: bytes, subprotocol: str) -> bool:
    if subprotocol == PROTOBUF_SUBPROTOCOL:
        return first[:2] == b"\x1a" + bytes([len(first) - 2]) and first[2:3] == b"\x0a"
    return bool(json.loads(first).get("event") == "connected")


def _server_text(payload: bytes) -> str:
    """The text of a server message, in either protocol (a protobuf one read by hand: a
    DataMessage ``from`` "server" whose MessageData is ``text_data``, nothing else)."""
    if payload[:1] != b"\x12":  # not a protobuf data_message: JSON
        frame = json.loads(payload)
        if frame.get("type") != "message" or frame.get("from") != "server":
            raise RuntimeError(f"unexpected frame {frame}")
        return str(frame["data"])
    head = b"\x0a\x06server\x1a"
    if payload[1] != len(payload) - 2 or payload[2:2 + len(head)] != head:
        raise RuntimeError(f"unexpected frame {payload!r}")
    data = payload[2 + len(head) + 1:]
    if data[:1] != b"\x0a" or data[1] != len(data) - 2:
        raise RuntimeError(f"unexpected data {data!r}")
    return data[2:].decode()


def _receipts(clients: list[LoadClient], messages: int) -> list[tuple[int, float]]:
    """(message index, receipt time) of every delivery, once every client has been checked to
    have received each message once, in order, as its protocol's server message."""
    receipts = []
    for client in clients:
        indexes = []
        for payload, at in client.frames:
            indexes.append(int(_server_text(payload)))
            receipts.append((indexes[-1], at))
        if indexes != list(range(messages)):
            raise RuntimeError(f"a client received messages {indexes}")
    return receipts


def run(settings: EmulatorSettings) -> Table:
    table = Table(
        key="emulator",
        title=f"Emulator: {settings.clients:,} clients, {settings.messages} group messages "
        f"per repeat",
        metrics=[Metric("value", "median (min-max)", "", higher_is_better=True)],
    )
    reason = missing()
    if reason is not None:
        table.notes.append(reason)
        return table
    with _emulator() as (port, process):
        asyncio.run(asyncio.wait_for(_measure(port, process.pid, settings, table), TIME_LIMIT_S))
    log(f"emulator: {[(c.name, c.median('value')) for c in table.contenders]}")
    return table
