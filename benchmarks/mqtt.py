"""MQTT on the emulator, against the emulator's JSON WebSocket clients.

The emulator runs in its own process (``python -m flask_webpubsub.emulator``); the clients are
minimal WebSocket clients in this process: :mod:`benchmarks.wsload` readers on
``json.webpubsub.azure.v1`` and :mod:`benchmarks.mqttload` MQTT 5 clients on ``mqtt``, which
build and check their packets with the emulator's own MQTT codec. Measured:

- connection setup: connections per second, from the first TCP connect until every client has
  its ``connected`` message (JSON) or its CONNACK (MQTT: WebSocket handshake, CONNECT, CONNACK),
  without an upstream and, in the full run, with the extension's connect handler upstream;
- memory per idle session: the emulator's RSS growth over N idle clients, per client, at two
  values of N, in a fresh emulator per protocol;
- group fan-out: REST ``/groups/{g}/:send`` messages to 1,000 subscribers, deliveries per
  second (messages x subscribers, from the first send to the last receipt) and send-to-receipt
  p99: JSON clients (in their token's group), reliable JSON clients that answer each message
  with a ``sequenceAck``, MQTT 5 subscribers at QoS 0 and at QoS 1 (these answer each PUBLISH
  with a PUBACK), all in one emulator, A B C D A B C D. The target: MQTT within 20% of JSON,
  taken per repeat; QoS 1 is also compared with the reliable clients, which acknowledge as much.

``python -m benchmarks.mqtt --profile FILE`` runs the MQTT fan-out with the emulator under
cProfile and prints where its time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import pstats
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.emulator import SUBPROTOCOL as JSON_SUBPROTOCOL
from benchmarks.emulator import _cpu_seconds, _rss_kb, _server_text, missing, send_to_group
from benchmarks.fixtures import ACCESS_KEY, HUB, PATH
from benchmarks.mqttload import MqttLoadClient, subscribe_packet
from benchmarks.mqttload import connect as connect_mqtt
from benchmarks.results import Metric, Table
from benchmarks.servers import REPO, free_port, log
from benchmarks.wsload import LoadClient
from benchmarks.wsload import connect as connect_json

#: The MQTT subscribers' topic (their group) and the JSON clients' groups.
TOPIC = "bench"
JSON_GROUP = "bench-json"
RELIABLE_GROUP = "bench-reliable"
RELIABLE_SUBPROTOCOL = "json.reliable.webpubsub.azure.v1"
#: The whole MQTT benchmark stops by itself after this long.
TIME_LIMIT_S = 420

JSON = "JSON WebSocket"
RELIABLE = "reliable JSON WebSocket (sequenceAck)"
QOS0 = "MQTT 5, QoS 0"
QOS1 = "MQTT 5, QoS 1 (PUBACK)"
FANOUTS = (JSON, RELIABLE, QOS0, QOS1)
#: The fan-outs compared with the JSON clients' (the target), and QoS 1 with the reliable
#: clients', which also acknowledge every message.
RATIOS = ((QOS0, JSON), (QOS1, JSON), (QOS1, RELIABLE))


def setup_name(protocol: str, upstream: bool) -> str:
    what = "CONNECT to CONNACK" if protocol == "MQTT" else "until the connected message"
    where = ", connect handler upstream" if upstream else ", no upstream"
    return f"{protocol} connection setup ({what}{where}; connections/s)"


def memory_name(protocol: str, count: int) -> str:
    return f"{protocol} memory per idle session, {count:,} sessions (KB)"


def memory_steps(table: Table) -> list[int]:
    """The session counts at which the table holds memory figures."""
    prefix = memory_name("MQTT", 0).split(", ")[0] + ", "
    return [
        int(c.name[len(prefix):].split()[0].replace(",", ""))
        for c in table.contenders
        if c.name.startswith(prefix)
    ]


def deliveries_name(contender: str) -> str:
    return f"fan-out, {contender} (deliveries/s)"


def p99_name(contender: str) -> str:
    return f"fan-out, {contender}, send-to-receipt p99 (ms)"


def cpu_name(contender: str) -> str:
    return f"fan-out, {contender}, emulator CPU per delivery (us)"


def ratio_name(contender: str, baseline: str = JSON) -> str:
    if baseline == JSON:
        return f"fan-out, {contender} / JSON, same repeat (x, target >= 0.8)"
    return f"fan-out, {contender} / {baseline}, same repeat (x)"


@dataclass(frozen=True)
class MqttSettings:
    #: Subscribers of each fan-out.
    clients: int
    messages: int
    repeats: int
    #: Idle sessions at which memory is read (cumulative, in one emulator per protocol).
    memory_steps: tuple[int, ...]
    #: Also measure connection setup with the extension's connect handler upstream.
    upstream: bool
    connect_concurrency: int = 50


@dataclass
class _Load:
    """CPU seconds of the emulator and of this process, and wall seconds, while timed."""

    emulator: float = 0.0
    own: float = 0.0
    wall: float = 0.0

    def note(self, what: str) -> str:
        return (
            f"During the {what} fan-out the emulator used {self.emulator / self.wall:.0%} of a "
            f"core and the clients (with the sender) {self.own / self.wall:.0%}."
        )


@dataclass
class _Rig:
    port: int
    pid: int
    http: Any
    mqtt: list[MqttLoadClient] = field(default_factory=list)
    json: list[LoadClient] = field(default_factory=list)
    reliable: list[LoadClient] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# -- processes ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _process(argv: list[str], env: dict[str, str] | None = None) -> Iterator[int]:
    """A process in its own session, ended with SIGTERM (then SIGKILL); yields its pid."""
    process = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield process.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@contextlib.contextmanager
def _emulator(*extra: str, profile: Path | None = None) -> Iterator[tuple[int, int]]:
    """(port, pid) of an emulator on loopback; under cProfile into ``profile`` if given."""
    port = free_port()
    python = [sys.executable]
    if profile is not None:
        python += ["-m", "cProfile", "-o", str(profile)]
    argv = [
        *python, "-m", "flask_webpubsub.emulator", "--port", str(port),
        "--access-key", ACCESS_KEY, "--log-level", "WARNING", *extra,
    ]
    with _process(argv) as pid:
        yield port, pid


@contextlib.contextmanager
def _upstream() -> Iterator[str]:
    """The benchmark's flask_webpubsub app (direct dispatch, whose connect handler accepts
    with a user id and a group) under granian, one worker; its event handler URL."""
    port = free_port()
    argv = [
        sys.executable, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1", "--http", "1", "--blocking-threads", "1",
        "--log-level", "warning", "benchmarks.wsgi:app",
    ]
    env = {**os.environ, "BENCH_APP": "direct", "PYTHONPATH": str(REPO)}
    with _process(argv, env):
        yield f"http://127.0.0.1:{port}{PATH}"


async def _wait_listening(http: Any, url: str, seconds: float = 30) -> None:
    import aiohttp

    deadline = time.monotonic() + seconds
    while True:
        try:
            async with http.get(url) as response:
                if response.status < 500:
                    return
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {seconds:.0f} s")
        await asyncio.sleep(0.1)


# -- clients ------------------------------------------------------------------------------------

_SEQUENCE = b'{"sequenceId":'


class ReliableJsonClient(LoadClient):
    """A reliable JSON client that acknowledges every message at once (``sequenceAck``), as the
    MQTT QoS 1 subscribers answer every PUBLISH with a PUBACK."""

    acknowledged = 0

    def _frame(self, opcode: int, payload: bytes, now: float) -> None:
        opened = self.first_frame.done()
        super()._frame(opcode, payload, now)
        if opened and opcode == 0x1 and payload.startswith(_SEQUENCE):
            end = payload.index(b",", len(_SEQUENCE))
            sequence_id = payload[len(_SEQUENCE) : end]
            self._send(0x1, b'{"type":"sequenceAck","sequenceId":' + sequence_id + b"}")
            self.acknowledged += 1



def _token(port: int, protocol: str, index: int) -> str:
    from flask_webpubsub.core.endpoint import ServiceEndpoint
    from flask_webpubsub.core.tokens import build_client_token

    endpoint = ServiceEndpoint(f"http://127.0.0.1:{port}", ACCESS_KEY)
    if protocol == "MQTT":
        return build_client_token(
            endpoint, HUB, user_id=f"device{index}",
            roles=[f"webpubsub.joinLeaveGroup.{TOPIC}"], client_protocol="mqtt",
        )
    group = RELIABLE_GROUP if protocol == "reliable" else JSON_GROUP
    return build_client_token(endpoint, HUB, user_id=f"user{index}", groups=[group])


async def _open_mqtt(
    port: int, first: int, count: int, concurrency: int
) -> tuple[list[MqttLoadClient], float]:
    """``count`` MQTT 5 clients with their sessions (client ids from ``first`` on), and the
    seconds it took."""
    tokens = [_token(port, "MQTT", i) for i in range(first, first + count)]
    limit = asyncio.Semaphore(concurrency)
    clients: list[MqttLoadClient] = []

    async def one(index: int, token: str) -> None:
        async with limit:
            client, _ = await connect_mqtt(
                "127.0.0.1", port, f"/clients/mqtt/hubs/{HUB}?access_token={token}",
                f"device{index}",
            )
        clients.append(client)

    started = time.perf_counter()
    await asyncio.gather(*(one(first + i, t) for i, t in enumerate(tokens)))
    return clients, time.perf_counter() - started


async def _connect_reliable(port: int, path: str) -> tuple[LoadClient, bytes]:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(
        lambda: ReliableJsonClient(path, f"127.0.0.1:{port}", RELIABLE_SUBPROTOCOL),
        "127.0.0.1", port,
    )
    return client, await asyncio.wait_for(client.first_frame, 30)


async def _open_json(
    port: int, first: int, count: int, concurrency: int, *, reliable: bool = False
) -> tuple[list[LoadClient], float]:
    """``count`` JSON clients (reliable ones that acknowledge every message, with
    ``reliable``), each with its ``connected`` message, and the seconds it took."""
    import json

    tokens = [
        _token(port, "reliable" if reliable else "JSON", i) for i in range(first, first + count)
    ]
    limit = asyncio.Semaphore(concurrency)
    clients: list[LoadClient] = []

    async def one(token: str) -> None:
        path = f"/client/hubs/{HUB}?access_token={token}"
        async with limit:
            if reliable:
                client, first_frame = await _connect_reliable(port, path)
            else:
                client, first_frame = await connect_json("127.0.0.1", port, path, JSON_SUBPROTOCOL)
        if json.loads(first_frame).get("event") != "connected":
            raise RuntimeError(f"expected the connected message, got {first_frame!r}")
        clients.append(client)

    started = time.perf_counter()
    await asyncio.gather(*(one(t) for t in tokens))
    return clients, time.perf_counter() - started


async def _subscribe(clients: list[MqttLoadClient], qos: int) -> None:
    """Every client subscribes to the topic at ``qos`` and gets its SUBACK granting it."""
    from flask_webpubsub.emulator.mqtt import packets

    for client in clients:
        client.frames.clear()
        client.send_packet(subscribe_packet(1, TOPIC, qos))
    deadline = time.monotonic() + 30
    while any(not c.frames for c in clients):
        if time.monotonic() > deadline:
            raise RuntimeError("a SUBACK did not come within 30 s")
        await asyncio.sleep(0.01)
    for client in clients:
        suback = packets.decode(client.frames[0][0], packets.MQTT_5, from_server=True)
        if not isinstance(suback, packets.SubAck) or suback.reason_codes != [qos]:
            raise RuntimeError(f"expected a SUBACK granting QoS {qos}, got {suback!r}")
        client.frames.clear()
        client.acknowledge = qos > 0


def _abort(clients: Sequence[LoadClient]) -> None:
    for client in clients:
        transport = client._transport
        if transport is not None:
            transport.abort()


def _mqtt_reader(qos: int) -> Callable[[bytes], int]:
    """Reads a delivery to an MQTT subscriber: its message index, after checking it is one
    PUBLISH on the topic at ``qos``."""
    from flask_webpubsub.emulator.mqtt import packets

    def read(payload: bytes) -> int:
        packet = packets.decode(payload, packets.MQTT_5, from_server=True)
        if (
            not isinstance(packet, packets.Publish)
            or packet.topic != TOPIC
            or packet.qos != qos
            or (packet.packet_id is None) == bool(qos)
        ):
            raise RuntimeError(f"unexpected packet {packet!r}")
        return int(packet.payload)

    return read


def _json_reader(payload: bytes) -> int:
    return int(_server_text(payload))


# -- the fan-out --------------------------------------------------------------------------------


@dataclass
class _Sample:
    rate: float
    p99_ms: float
    #: The emulator's CPU time per delivery: what the machine's other work changes least.
    cpu_us: float


async def _fan_out(
    rig: _Rig, group: str, clients: Sequence[LoadClient], messages: int,
    read: Callable[[bytes], int], load: _Load,
) -> _Sample:
    """``messages`` REST sends to the group, one after another as each is accepted; every
    client is then checked to have received each once, in order."""
    expected = messages * len(clients)
    for client in clients:
        client.frames.clear()
    before = (_cpu_seconds(rig.pid), time.process_time(), time.perf_counter())
    sent = await send_to_group(rig.http, rig.base, group, messages, clients, expected)
    emulator_cpu = _cpu_seconds(rig.pid) - before[0]
    load.emulator += emulator_cpu
    load.own += time.process_time() - before[1]
    load.wall += time.perf_counter() - before[2]
    receipts: list[tuple[int, float]] = []
    for client in clients:
        indexes = [read(payload) for payload, _ in client.frames]
        if indexes != list(range(messages)):
            raise RuntimeError(f"a client received messages {indexes}")
        if isinstance(client, ReliableJsonClient | MqttLoadClient) and (
            not isinstance(client, MqttLoadClient) or client.acknowledge
        ):
            if client.acknowledged != messages:
                raise RuntimeError(f"a client acknowledged {client.acknowledged} messages")
            client.acknowledged = 0
        receipts.extend((i, at) for i, (_, at) in zip(indexes, client.frames, strict=True))
    last = max(at for _, at in receipts)
    latencies = sorted((at - sent[i]) * 1000 for i, at in receipts)
    return _Sample(
        expected / (last - sent[0]),
        latencies[int(len(latencies) * 0.99) - 1],
        emulator_cpu / expected * 1e6,
    )


async def _fan_outs(rig: _Rig, settings: MqttSettings, table: Table) -> None:
    """JSON, reliable JSON, MQTT QoS 0 and MQTT QoS 1 fan-outs, A B C D A B C D; per repeat,
    MQTT over JSON."""
    loads = {name: _Load() for name in FANOUTS}
    subscribers = rig.mqtt[: settings.clients]
    for _ in range(settings.repeats):
        samples: dict[str, _Sample] = {}
        samples[JSON] = await _fan_out(
            rig, JSON_GROUP, rig.json, settings.messages, _json_reader, loads[JSON]
        )
        samples[RELIABLE] = await _fan_out(
            rig, RELIABLE_GROUP, rig.reliable, settings.messages, _json_reader, loads[RELIABLE]
        )
        for name, qos in ((QOS0, 0), (QOS1, 1)):
            await _subscribe(subscribers, qos)
            samples[name] = await _fan_out(
                rig, TOPIC, subscribers, settings.messages, _mqtt_reader(qos), loads[name]
            )
        for name, sample in samples.items():
            table.contender(deliveries_name(name)).add("value", sample.rate)
            table.contender(p99_name(name)).add("value", sample.p99_ms)
            table.contender(cpu_name(name)).add("value", sample.cpu_us)
        for name, baseline in RATIOS:
            table.contender(ratio_name(name, baseline)).add(
                "value", samples[name].rate / samples[baseline].rate
            )
    table.notes.extend(load.note(name) for name, load in loads.items())


# -- the phases ---------------------------------------------------------------------------------


async def _memory_and_setup(
    port: int, pid: int, protocol: str, settings: MqttSettings, table: Table
) -> list[Any]:
    """Open the idle sessions step by step in a fresh emulator, each step timed; the RSS growth
    per session at each step. Returns the clients, still open."""
    opened: list[Any] = []
    await asyncio.sleep(0.5)
    rss_before = _rss_kb(pid)
    for step in settings.memory_steps:
        count = step - len(opened)
        if protocol == "MQTT":
            clients, seconds = await _open_mqtt(
                port, len(opened), count, settings.connect_concurrency
            )
            opened.extend(clients)
        else:
            json_clients, seconds = await _open_json(
                port, len(opened), count, settings.connect_concurrency
            )
            opened.extend(json_clients)
        table.contender(setup_name(protocol, False)).add("value", count / seconds)
        await asyncio.sleep(1)
        table.contender(memory_name(protocol, step)).add(
            "value", (_rss_kb(pid) - rss_before) / step
        )
    return opened


async def _with_upstream(http: Any, settings: MqttSettings, table: Table) -> None:
    """Connection setup with the connect event going to the extension's handler: MQTT, then
    JSON, into one emulator; the handler's user id shows it was asked."""
    count = settings.clients
    with _upstream() as url, _emulator("--upstream", url, "--system-events", "connect") as (
        port, _,
    ):
        await _wait_listening(http, url.rsplit("/", 1)[0] + "/")
        await _wait_listening(http, f"http://127.0.0.1:{port}/api/health")
        mqtt, seconds = await _open_mqtt(port, 0, count, settings.connect_concurrency)
        table.contender(setup_name("MQTT", True)).add("value", count / seconds)
        json_clients, seconds = await _open_json(port, 0, count, settings.connect_concurrency)
        table.contender(setup_name("JSON", True)).add("value", count / seconds)
        from flask_webpubsub.core.tokens import build_service_token

        url = f"http://127.0.0.1:{port}/api/hubs/{HUB}/users/user1"
        token = build_service_token(url, ACCESS_KEY)
        async with http.head(
            f"{url}?api-version=2024-12-01", headers={"Authorization": f"Bearer {token}"}
        ) as response:
            if response.status != 200:
                raise RuntimeError("the upstream's connect handler was not asked")
        _abort(mqtt)
        _abort(json_clients)


async def _measure(settings: MqttSettings, table: Table) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        with _emulator() as (port, pid):
            await _wait_listening(http, f"http://127.0.0.1:{port}/api/health")
            json_clients = await _memory_and_setup(port, pid, "JSON", settings, table)
            _abort(json_clients)
        with _emulator() as (port, pid):
            await _wait_listening(http, f"http://127.0.0.1:{port}/api/health")
            rig = _Rig(port, pid, http)
            rig.mqtt = await _memory_and_setup(port, pid, "MQTT", settings, table)
            rig.json, _ = await _open_json(port, 0, settings.clients, settings.connect_concurrency)
            rig.reliable, _ = await _open_json(
                port, settings.clients, settings.clients, settings.connect_concurrency,
                reliable=True,
            )
            await _fan_outs(rig, settings, table)
            for clients in (rig.mqtt, rig.json, rig.reliable):
                _abort(clients)
        if settings.upstream and importlib.util.find_spec("granian") is None:
            table.notes.append("Not measured with an upstream: granian is not installed.")
        elif settings.upstream:
            await _with_upstream(http, settings, table)


def run(settings: MqttSettings) -> Table:
    table = Table(
        key="mqtt",
        title=f"MQTT and JSON WebSocket clients: {settings.clients:,} subscribers, "
        f"{settings.messages} REST group messages per repeat, {settings.repeats} repeats",
        metrics=[Metric("value", "median (min-max)", "", higher_is_better=True)],
    )
    reason = missing()
    if reason is not None:
        table.notes.append(reason)
        return table
    asyncio.run(asyncio.wait_for(_measure(settings, table), TIME_LIMIT_S))
    for name, baseline in RATIOS:
        ratio = table.contender(ratio_name(name, baseline)).median("value")
        if ratio is None:
            continue
        verdict = f"; target >= 80%: {'met' if ratio >= 0.8 else 'missed'}" if (
            baseline == JSON
        ) else ""
        table.notes.append(
            f"{name} subscribers got {ratio:.0%} of the {baseline} clients' deliveries per "
            f"second (median of the per-repeat ratios{verdict})."
        )
    log(f"mqtt: {[(c.name, c.median('value')) for c in table.contenders]}")
    return table


# -- profiling ----------------------------------------------------------------------------------


async def _profiled(clients: int, messages: int, repeats: int, qos: int, output: Path) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        with _emulator(profile=output) as (port, pid):
            await _wait_listening(http, f"http://127.0.0.1:{port}/api/health")
            rig = _Rig(port, pid, http)
            rig.mqtt, _ = await _open_mqtt(port, 0, clients, 50)
            await _subscribe(rig.mqtt, qos)
            load = _Load()
            for _ in range(repeats):
                sample = await _fan_out(rig, TOPIC, rig.mqtt, messages, _mqtt_reader(qos), load)
                log(f"QoS {qos}: {sample.rate:,.0f} deliveries/s, p99 {sample.p99_ms:.1f} ms, "
                    f"emulator CPU {sample.cpu_us:.1f} us per delivery")
            log(load.note(f"QoS {qos}"))
            for client in rig.mqtt:
                client.close()
            await asyncio.wait([asyncio.ensure_future(c.closed) for c in rig.mqtt], timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mqtt", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", type=Path, required=True,
                        help="write the emulator's cProfile statistics here")
    parser.add_argument("--qos", type=int, choices=(0, 1), default=1)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)
    asyncio.run(_profiled(args.clients, args.messages, args.repeats, args.qos, args.profile))
    stats = pstats.Stats(str(args.profile))
    stats.strip_dirs().sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
