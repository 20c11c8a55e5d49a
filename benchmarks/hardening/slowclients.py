"""Slow clients: an attacker who sends a signed event's body one byte at a time (slow-body), or
its headers one line at a time (slow-header), against the production set-up, while a measuring
client sends ordinary signed events and records their latencies.

Under the recommended granian command alone (``--blocking-threads 1``), the WSGI app reads the body
on the worker's one blocking thread, so a slow-body client holds that thread, and with it every
other request to its worker, for as long as it keeps sending; a dozen of them stall the whole
server. With nginx in front (``nginx.conf.template`` beside this file), nginx reads each request
whole before it passes it on, so granian only ever sees complete requests.

A run (:func:`run_slow_clients`) starts the servers of one :class:`Setup` (granian on loopback,
and nginx in front of it when the set-up has a proxy), connects every attacker, waits until all
have started their requests, then measures for ``seconds`` with the attackers still connected;
then the attackers leave and the measuring client goes on for ``after_seconds`` (how long the
server takes to recover). Attackers whose connection the server closes come back at once: the
attack lasts as long as the run. Everything is bounded in time and talks to 127.0.0.1 only.

    python -m benchmarks.hardening.slowclients --setup alone --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.fixtures import ACCESS_KEY, HUB, PATH
from flask_webpubsub.core.service import build_event_headers

from .procs import LOG_PROBLEMS, ServerProcess, free_ports, start_granian, start_nginx

#: The granian app: the benchmarks' signed-event app with direct dispatch, key ACCESS_KEY.
APP = "benchmarks.hardening.signed_wsgi:app"
HOST = "127.0.0.1"
CONTENT_TYPE = "text/plain; charset=utf-8"
#: What granian logs when it kills a worker that did not stop within --workers-kill-timeout.
KILLED_ON_STOP = "after it refused to gracefully stop"
#: What nginx's error log must not hold (its warnings are about request bodies in files).
NGINX_PROBLEMS = ("[error]", "[crit]", "[alert]", "[emerg]")
#: What a slow-body attacker announces in Content-Length: it never gets near the end.
SLOW_BODY_BYTES = 4096


@dataclass(frozen=True)
class Setup:
    """A way to serve the app: granian's options (those the recommended command does not
    have, or other values for its own) and whether nginx is in front."""

    name: str
    description: str
    proxy: bool = False
    granian_options: tuple[tuple[str, str | None], ...] = ()
    #: Warnings the set-up's servers are known to log (not counted as problems).
    expected_warnings: tuple[str, ...] = ()

    def granian_flags(self) -> str:
        return " ".join(
            option if value is None else f"{option} {value}"
            for option, value in self.granian_options
        )


#: The recommended command alone: what the security issue found stalled.
ALONE = Setup(
    "alone", "granian alone, the recommended command (`--blocking-threads 1`)",
)
#: Tried in place of the proxy: it holds 12 slow-body clients, not 200 (docs/hardening.md).
MORE_THREADS = Setup(
    "threads", "granian alone, `--blocking-threads 32`",
    granian_options=(("--blocking-threads", "32"),),
    # granian warns that 32 threads are many for the machine's cores.
    expected_warnings=("Configuration allows spawning up to 32 Python threads",),
)
#: The recommended set-up: nginx in front of the recommended command, on a loopback port.
NGINX = Setup(
    "nginx", "nginx in front of granian (the recommended command on 127.0.0.1)", proxy=True,
)
SETUPS = {s.name: s for s in (ALONE, MORE_THREADS, NGINX)}


@dataclass(frozen=True)
class SlowSettings:
    slow_body: int = 12
    slow_header: int = 12
    #: Seconds between two bytes of a slow body, or two lines of slow headers.
    interval: float = 2.0
    #: Seconds the measuring client runs with every attacker connected ...
    seconds: float = 6.0
    #: ... and after they have left.
    after_seconds: float = 0.0
    #: The measuring client: requests per second in all, over this many connections, each
    #: request given up after ``timeout`` seconds.
    rate: float = 100.0
    concurrency: int = 4
    timeout: float = 5.0
    workers: int = 2
    #: The requirement, for a set-up that must hold.
    max_p99_ms: float = 100.0
    #: wrk's requests per second through the set-up without attackers: this many runs of this
    #: many seconds (0: not measured).
    throughput_runs: int = 0
    throughput_seconds: int = 3


#: The test suite's form: 12 + 12 attackers (a byte or a line every 2 s), 6 s measured.
SHORT = SlowSettings()
#: The long form: a byte or a line every 5 s (as the security issue found), 60 s measured with
#: the attackers connected, 10 s after they leave, and wrk's throughput without them.
LONG = replace(SHORT, interval=5.0, seconds=60.0, after_seconds=10.0, throughput_runs=3)
#: The same for the cases besides the requirement's: 30 s, no throughput.
LONG_SIDE = replace(LONG, seconds=30.0, throughput_runs=0)


@dataclass(frozen=True)
class Case:
    setup: Setup
    settings: SlowSettings
    #: Whether the set-up must hold (the recommended one); the others are measured for the
    #: record (what the security issue found, and what was tried instead of the proxy).
    required: bool = False


#: ``python -m benchmarks.hardening --long``: the recommended command alone against one slow-body
#: client, slow headers alone and the requirement's 12 + 12; more blocking threads and nginx in
#: front, each against 12 + 12 and 200 + 200.
LONG_CASES = (
    Case(ALONE, replace(LONG_SIDE, slow_body=1, slow_header=0)),
    Case(ALONE, replace(LONG_SIDE, slow_body=0, slow_header=12)),
    Case(ALONE, LONG),
    Case(MORE_THREADS, LONG),
    Case(MORE_THREADS, replace(LONG_SIDE, slow_body=200, slow_header=200)),
    Case(NGINX, LONG, required=True),
    Case(NGINX, replace(LONG_SIDE, slow_body=200, slow_header=200), required=True),
)
#: Without ``--long``: the test suite's form, the requirement through the recommended set-up.
SHORT_CASES = (Case(NGINX, SHORT, required=True),)


@dataclass
class AttackStats:
    """What one kind of attacker (slow-body or slow-header) managed."""

    kind: str
    clients: int
    connections: int = 0
    #: Connections refused or not accepted within 5 s.
    refused: int = 0
    #: Connections the server closed, and replies it sent (by status line).
    closed: int = 0
    replies: Counter[str] = field(default_factory=Counter)
    #: Bytes of body, or header lines, sent after the first chunk.
    dribbled: int = 0
    open_now: int = 0
    #: The fewest attackers connected when sampled during the measured window.
    open_min: int | None = None
    longest_held_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "clients": self.clients, "connections": self.connections, "refused": self.refused,
            "closed_by_server": self.closed, "replies": dict(self.replies),
            "dribbled": self.dribbled, "fewest_connected_while_measured": self.open_min,
            "longest_held_s": round(self.longest_held_s, 1),
        }


@dataclass
class Sample:
    #: Seconds since the measured window began, when the request was sent and answered.
    sent: float
    done: float
    ok: bool

    @property
    def latency_ms(self) -> float:
        return (self.done - self.sent) * 1000


@dataclass
class Throughput:
    runs: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)


@dataclass
class SlowReport:
    setup: Setup
    settings: SlowSettings
    attacks: list[AttackStats]
    samples: list[Sample] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    #: The measured window with the attackers connected (from 0), in seconds.
    attack_seconds: float = 0.0
    log_problems: list[str] = field(default_factory=list)
    throughput: Throughput | None = None
    #: How long each server took to stop, in seconds, by name.
    stop_seconds: dict[str, float | None] = field(default_factory=dict)
    #: granian's "Killing worker" lines from a stop that took less than its kill timeout.
    shutdown_notes: list[str] = field(default_factory=list)

    def during(self) -> list[Sample]:
        return [s for s in self.samples if s.sent < self.attack_seconds]

    def after(self) -> list[Sample]:
        return [s for s in self.samples if s.sent >= self.attack_seconds]

    @staticmethod
    def percentile(samples: list[Sample], fraction: float) -> float:
        """Latency percentile in ms (nearest rank); a failed request counts with its time."""
        latencies = sorted(s.latency_ms for s in samples)
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, max(0, round(fraction * len(latencies)) - 1))]

    def failed(self, samples: list[Sample]) -> int:
        return sum(not s.ok for s in samples)

    def longest_stall(self) -> float:
        """The longest time, in seconds, in the window with the attackers connected in which no
        measuring request succeeded (counting from the window's start to its end)."""
        edges = sorted(s.done for s in self.samples if s.ok and s.done <= self.attack_seconds)
        points = [0.0, *edges, self.attack_seconds]
        return max(b - a for a, b in itertools.pairwise(points))

    def recovery(self) -> float | None:
        """Seconds from the attackers leaving to the next success (None: none, or not run)."""
        later = [s.done for s in self.samples if s.ok and s.done >= self.attack_seconds]
        if not self.settings.after_seconds or not later:
            return None
        return min(later) - self.attack_seconds

    def attackers_held(self) -> bool:
        """Whether every attacker stayed connected through the measured window (the server
        closed none of them)."""
        return all(a.open_min == a.clients for a in self.attacks)

    def problems(self) -> list[str]:
        """What misses the requirement (every measuring request succeeds, p99 under the limit,
        with every attacker connected, or coming back at once when dropped), and warnings in
        the servers' logs; empty when the set-up held."""
        found = self.service_problems()
        if self.log_problems:
            found.append(f"{len(self.log_problems)} warnings in the servers' logs: "
                         + " | ".join(self.log_problems[:3]))
        return found

    def service_problems(self) -> list[str]:
        """What misses the requirement, without the servers' logs."""
        during = self.during()
        found = []
        if len(during) < self.settings.rate * self.settings.seconds * 0.5:
            found.append(f"only {len(during)} measuring requests")
        if self.failed(during):
            found.append(f"{self.failed(during)} of {len(during)} measuring requests failed")
        p99 = self.percentile(during, 0.99)
        if p99 >= self.settings.max_p99_ms:
            found.append(f"p99 {p99:.1f} ms, not under {self.settings.max_p99_ms:g} ms")
        for attack in self.attacks:
            if attack.refused or attack.connections < attack.clients or (
                attack.clients and not attack.dribbled
            ):
                found.append(f"the {attack.kind} attack did not get going: "
                             + json.dumps(attack.summary()))
        return found

    def summary(self) -> dict[str, Any]:
        during, after = self.during(), self.after()
        recovery = self.recovery()
        return {
            "setup": self.setup.description,
            "measured_requests": len(during),
            "failed": self.failed(during),
            "errors": dict(self.errors),
            "p50_ms": round(self.percentile(during, 0.5), 1),
            "p99_ms": round(self.percentile(during, 0.99), 1),
            "max_ms": round(max((s.latency_ms for s in during), default=0.0), 1),
            "longest_stall_s": round(self.longest_stall(), 1),
            "attack_seconds": round(self.attack_seconds, 1),
            "after": {
                "requests": len(after), "failed": self.failed(after),
                "p99_ms": round(self.percentile(after, 0.99), 1),
                "recovery_s": None if recovery is None else round(recovery, 2),
            },
            "attacks": [a.summary() for a in self.attacks],
            "throughput_rps": None if self.throughput is None else [
                round(r) for r in self.throughput.runs
            ],
            "log_problems": self.log_problems[:5],
            "stop_seconds": {k: v and round(v, 2) for k, v in self.stop_seconds.items()},
            "shutdown_notes": self.shutdown_notes,
        }


# -- the attackers -----------------------------------------------------------------------------


def _signed_headers(port: int, user: str) -> list[bytes]:
    """The header lines of a signed ``echo`` event (without Content-Length), CRLF-terminated."""
    headers = {
        "Host": f"{HOST}:{port}",
        **build_event_headers(
            "echo", hub=HUB, connection_id=uuid.uuid4().hex, keys=[ACCESS_KEY], user_id=user,
            content_type=CONTENT_TYPE,
        ),
    }
    return [f"{name}: {value}\r\n".encode() for name, value in headers.items()]


def slow_body_pieces(port: int) -> Iterator[bytes]:
    """A signed event whose headers arrive at once (Content-Length included), then its body one
    byte at a time."""
    head = b"POST " + PATH.encode() + b" HTTP/1.1\r\n" + b"".join(_signed_headers(port, "slow"))
    yield head + f"Content-Length: {SLOW_BODY_BYTES}\r\n\r\n".encode()
    for _ in range(SLOW_BODY_BYTES):
        yield b"x"


def slow_header_pieces(port: int) -> Iterator[bytes]:
    """A signed event's request line, then its headers one line at a time, and after them more
    (``X-Slow-n``), never the blank line that would end them."""
    yield b"POST " + PATH.encode() + b" HTTP/1.1\r\n"
    yield from _signed_headers(port, "slow")
    n = 0
    while True:
        n += 1
        yield f"X-Slow-{n}: {n}\r\n".encode()


async def _attacker(
    stats: AttackStats, port: int, interval: float, stop: asyncio.Event,
) -> None:
    pieces_of = slow_body_pieces if stats.kind == "slow-body" else slow_header_pieces
    while not stop.is_set():
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 5)
        except (OSError, asyncio.TimeoutError):
            stats.refused += 1
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)
            continue
        stats.connections += 1
        stats.open_now += 1
        opened = time.monotonic()
        reading = asyncio.ensure_future(reader.read(256))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            for number, piece in enumerate(pieces_of(port)):
                writer.write(piece)
                await writer.drain()
                stats.dribbled += number > 0
                done, _ = await asyncio.wait(
                    {reading, stopping}, timeout=interval, return_when=asyncio.FIRST_COMPLETED
                )
                if stopping in done:
                    break
                if reading in done:
                    data = reading.result()
                    if data:
                        stats.replies[data.split(b"\r\n", 1)[0].decode(errors="replace")] += 1
                    else:
                        stats.closed += 1
                    break
        except OSError:
            stats.closed += 1
        finally:
            reading.cancel()
            stopping.cancel()
            stats.open_now -= 1
            stats.longest_held_s = max(stats.longest_held_s, time.monotonic() - opened)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        # A client the server dropped comes back at once (not in a tight loop).
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


# -- the measuring client ----------------------------------------------------------------------


async def _measure(
    report: SlowReport, url: str, begin: float, until: float,
) -> None:
    """Signed ``echo`` events at ``settings.rate`` per second until ``until`` (monotonic)."""
    settings = report.settings
    period = settings.concurrency / settings.rate
    connector = aiohttp.TCPConnector(limit=settings.concurrency)
    # ceil_threshold: aiohttp would round a timeout of 5 s or more up to a whole second.
    timeout = aiohttp.ClientTimeout(total=settings.timeout, ceil_threshold=settings.timeout + 1)

    async def one(session: aiohttp.ClientSession, worker: int) -> None:
        next_at = time.monotonic() + worker * period / settings.concurrency
        n = 0
        while next_at < until:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            n += 1
            body = f"ping {worker}.{n}".encode()
            headers = build_event_headers(
                "echo", hub=HUB, connection_id=uuid.uuid4().hex, keys=[ACCESS_KEY],
                user_id=f"measure-{worker}", content_type=CONTENT_TYPE,
            )
            sent = time.monotonic()
            ok = False
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    reply = await response.read()
                ok = response.status == 200 and reply == body
                if not ok:
                    report.errors[f"status {response.status}"] += 1
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                report.errors[type(exc).__name__] += 1
            done = time.monotonic()
            report.samples.append(Sample(sent - begin, done - begin, ok))
            next_at = max(next_at + period, done)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(one(session, w) for w in range(settings.concurrency)))


async def attack_and_measure(report: SlowReport, port: int) -> None:
    """Connect the attackers, measure while they stay, then while they are gone."""
    settings = report.settings
    stop = asyncio.Event()
    attackers = [
        asyncio.ensure_future(_attacker(stats, port, settings.interval, stop))
        for stats in report.attacks for _ in range(stats.clients)
    ]
    try:
        # Every attacker connected and past its first chunk, then a moment for the server.
        deadline = time.monotonic() + 15
        while any(a.open_now < a.clients for a in report.attacks):
            if time.monotonic() > deadline:
                raise RuntimeError("the attackers could not connect: "
                                   + json.dumps([a.summary() for a in report.attacks]))
            await asyncio.sleep(0.05)
        await asyncio.sleep(min(1.0, settings.interval / 2))
        begin = time.monotonic()
        attack_end = begin + settings.seconds
        report.attack_seconds = settings.seconds
        url = f"http://{HOST}:{port}{PATH}"
        measuring = asyncio.ensure_future(
            _measure(report, url, begin, attack_end + settings.after_seconds)
        )
        while time.monotonic() < attack_end:
            for stats in report.attacks:
                stats.open_min = (stats.open_now if stats.open_min is None
                                  else min(stats.open_now, stats.open_min))
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(
            measuring, settings.after_seconds + settings.timeout * 2 + 10
        )
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*attackers, return_exceptions=True), 15)


# -- the servers -------------------------------------------------------------------------------


@contextlib.contextmanager
def serving(
    setup: Setup, directory: Path, workers: int = 2,
) -> Iterator[tuple[int, list[ServerProcess]]]:
    """The set-up's servers on loopback: the port clients use, and the servers (front first)."""
    port, upstream_port = free_ports(2)
    granian_port = upstream_port if setup.proxy else port
    servers: list[ServerProcess] = []
    try:
        servers.append(start_granian(
            APP, granian_port, directory / "granian.log", workers=workers,
            options=dict(setup.granian_options), ready_path=PATH,
        ))
        if setup.proxy:
            servers.insert(0, start_nginx(port, upstream_port, directory / "nginx",
                                          ready_path=PATH))
        yield port, servers
    finally:
        for server in servers:
            server.stop()


def measure_throughput(port: int, settings: SlowSettings) -> Throughput:
    """wrk's requests per second for the benchmarks' signed text event (32 connections), as
    benchmarks/BENCHMARKS.md measures it, after a 1 s warm-up."""
    from benchmarks.loopback import wrk

    wrk(port, 1, 32, None)
    return Throughput([
        wrk(port, settings.throughput_seconds, 32, None)["rps"]
        for _ in range(settings.throughput_runs)
    ])


def run_cases(cases: tuple[Case, ...]) -> list[tuple[Case, SlowReport]]:
    """Each case in turn, with its report; progress on stderr."""
    done = []
    for case in cases:
        settings = case.settings
        print(f"Slow clients: {settings.slow_body} + {settings.slow_header} against "
              f"{case.setup.description}...", file=sys.stderr, flush=True)
        done.append((case, run_slow_clients(case.setup, settings)))
    return done


def run_slow_clients(
    setup: Setup, settings: SlowSettings = SHORT, directory: Path | None = None,
) -> SlowReport:
    """One run: the set-up's servers, the attack and the measurements; the servers' logs (and
    nginx's configuration) in ``directory`` (a temporary one when None)."""
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        report = SlowReport(setup, settings, [
            AttackStats("slow-body", settings.slow_body),
            AttackStats("slow-header", settings.slow_header),
        ])
        with serving(setup, directory, settings.workers) as (port, servers):
            if settings.throughput_runs:
                report.throughput = measure_throughput(port, settings)
            asyncio.run(attack_and_measure(report, port))
        for server in servers:
            report.stop_seconds[server.name] = server.stop_seconds
            report.log_problems += server.exit_problems()
            for line in server.log_lines(*LOG_PROBLEMS, *NGINX_PROBLEMS):
                if any(known in line for known in setup.expected_warnings):
                    continue
                if KILLED_ON_STOP in line and not server.exit_problems():
                    # granian stopped in time (it waits --workers-kill-timeout, 30 s, before
                    # it kills a worker, and it was stopped within 10 s, or exit_problems would
                    # say so), yet logged this: seen now and then after long runs, never in the
                    # short ones. Shutdown is tests/test_production_server.py's subject; here
                    # it is a note in the report.
                    report.shutdown_notes.append(line)
                else:
                    report.log_problems.append(line)
        return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setup", choices=sorted(SETUPS), default="nginx")
    parser.add_argument("--slow-body", type=int, default=SHORT.slow_body)
    parser.add_argument("--slow-header", type=int, default=SHORT.slow_header)
    parser.add_argument("--interval", type=float, default=SHORT.interval)
    parser.add_argument("--seconds", type=float, default=SHORT.seconds)
    parser.add_argument("--after-seconds", type=float, default=SHORT.after_seconds)
    parser.add_argument("--rate", type=float, default=SHORT.rate)
    parser.add_argument("--timeout", type=float, default=SHORT.timeout)
    parser.add_argument("--throughput-runs", type=int, default=0)
    parser.add_argument("--granian", action="append", default=[], metavar="OPTION=VALUE",
                        help="another granian option for this run, e.g. --blocking-threads=8")
    args = parser.parse_args()
    setup = SETUPS[args.setup]
    if args.granian:
        extra = tuple(
            (option, value or None) for option, _, value in (g.partition("=") for g in args.granian)
        )
        setup = replace(setup, granian_options=setup.granian_options + extra,
                        description=f"{setup.description} + {' '.join(args.granian)}")
    settings = replace(
        SHORT, slow_body=args.slow_body, slow_header=args.slow_header, interval=args.interval,
        seconds=args.seconds, after_seconds=args.after_seconds, rate=args.rate,
        timeout=args.timeout, throughput_runs=args.throughput_runs,
    )
    report = run_slow_clients(setup, settings)
    print(json.dumps({**report.summary(), "problems": report.problems()}, indent=2))


if __name__ == "__main__":
    main()
