"""Over HTTP on loopback: wrk sends the signed text event to each server under test.

Phase "one process": each contender gets one process pinned to CPU 1 and wrk is pinned to CPU 0.
Phase "whole machine": Node's cluster of one worker per core against each Python server with as
many workers, and wrk sharing the same cores, as a real deployment would share them with its
proxy. All servers of a phase are started first, then measured in turn (A B C A B C ...), so
drift hits every contender alike. Every run is bounded by wrk's duration and a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from dataclasses import dataclass

from benchmarks.fixtures import PATH, TEXT_EVENT
from benchmarks.results import Metric, Table
from benchmarks.servers import BENCHMARKS, NODE, Running, Server, log, send, serve

METRICS = [
    Metric("rps", "requests/s", "req/s", higher_is_better=True),
    Metric("p50_ms", "p50 latency", "ms", higher_is_better=False),
    Metric("p99_ms", "p99 latency", "ms", higher_is_better=False),
    Metric("new_ms", "a new connection's first request", "ms", higher_is_better=False),
]
#: A server that keeps serving busy keep-alive connections while a new one waits is starving it;
#: the service would see timeouts. Probed during every run, reported, and over
#: ``STARVED_MS`` disqualifying.
PROBE_TIMEOUT_S = 3.0
STARVED_MS = 1000.0


@dataclass(frozen=True)
class Entry:
    """One contender of a phase: a server serving an app with some workers."""

    label: str
    server: Server
    app: str
    python: str


@dataclass(frozen=True)
class LoadSettings:
    seconds: int
    warmup_seconds: int
    repeats: int
    connections: int


def probe_new_connection(port: int) -> float | None:
    """Milliseconds for one request on a fresh connection; None if it timed out or failed."""
    start = time.perf_counter()
    try:
        status, body = send(port, timeout=PROBE_TIMEOUT_S)
    except OSError:
        return None
    if status != 200 or body != TEXT_EVENT.body:
        return None
    return (time.perf_counter() - start) * 1000


def wrk(port: int, seconds: int, connections: int, cpus: str | None) -> dict[str, float]:
    """One bounded wrk run, with a request on a new connection half-way through.

    Fails on any non-2xx answer under load.
    """
    env = dict(
        os.environ,
        BENCH_PATH=PATH,
        BENCH_BODY=TEXT_EVENT.body.decode(),
        BENCH_HEADERS="\n".join(f"{k}: {v}" for k, v in TEXT_EVENT.headers.items()),
    )
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(BENCHMARKS / "wrk" / "upstream.lua"),
        f"http://127.0.0.1:{port}{PATH}",
    ]
    if cpus is not None:
        argv = ["taskset", "-c", cpus, *argv]
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True) as process:
        time.sleep(seconds / 2)
        probe = probe_new_connection(port)
        output, _ = process.communicate(timeout=seconds + 30)
        if process.returncode:
            raise RuntimeError(f"wrk exited with {process.returncode}")
    line = next((x for x in output.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    raw = json.loads(line.removeprefix("BENCH_RESULT "))
    if raw["status_errors"]:
        raise RuntimeError(f"{raw['status_errors']} non-2xx answers under load")
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "socket_errors": raw["socket_errors"],
        "new_connection_ms": probe if probe is not None else float("inf"),
    }


def run_phase(
    table: Table, entries: list[Entry], workers: int, settings: LoadSettings, pinned: bool
) -> None:
    """Start every entry, then measure them in turn ``repeats`` times."""
    server_cpus, wrk_cpus = ("1", "0") if pinned else (None, None)
    running: list[Running] = []
    with contextlib.ExitStack() as stack:
        for entry in entries:
            contender = table.contender(entry.label)
            try:
                running.append(
                    stack.enter_context(
                        serve(
                            entry.server,
                            entry.python,
                            entry.app,
                            workers,
                            server_cpus,
                            entry.label,
                            f"{table.key} {entry.label}",
                        )
                    )
                )
            except RuntimeError as exc:
                contender.skipped = str(exc)
                log(f"skipped {entry.label}: {exc}")
        if settings.warmup_seconds:
            for target in running:
                wrk(target.port, settings.warmup_seconds, settings.connections, wrk_cpus)
        for repeat in range(settings.repeats):
            for target in running:
                contender = table.contender(target.name)
                if contender.skipped:
                    continue
                try:
                    figures = wrk(target.port, settings.seconds, settings.connections, wrk_cpus)
                except (RuntimeError, subprocess.SubprocessError) as exc:
                    contender.skipped = f"failed under load: {exc}"
                    log(f"{target.name}: {contender.skipped}")
                    continue
                for key in ("rps", "p50_ms", "p99_ms"):
                    contender.add(key, figures[key])
                new_ms = figures["new_connection_ms"]
                if new_ms != float("inf"):
                    contender.add("new_ms", new_ms)
                if figures["socket_errors"]:
                    contender.note = f"{figures['socket_errors']:.0f} socket errors"
                if new_ms > STARVED_MS:
                    contender.disqualified = (
                        f"starves new connections: one waited over {STARVED_MS / 1000:.0f} s "
                        "under load"
                    )
                log(
                    f"{table.key} #{repeat + 1} {target.name}: {figures['rps']:,.0f} req/s, "
                    f"p99 {figures['p99_ms']:.2f} ms"
                )


def new_table(key: str, title: str) -> Table:
    table = Table(
        key=key,
        title=title,
        metrics=list(METRICS),
        baseline=NODE.name,
        ratio_metrics=["rps", "p99_ms"],
    )
    table.contender(NODE.name)  # the baseline comes first
    return table


def node_entry() -> Entry:
    return Entry(NODE.name, NODE, "", "")
