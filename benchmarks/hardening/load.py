"""A bounded load generator for an event handler: signed connect / user / disconnect events.

Each simulated connection sends ``connect``, ``connected``, user events from a mix and
``disconnected``, exactly as the service would, over real HTTP on loopback, keeping the
connection state the app sets. A :class:`Scenario` says who connects, with which query, what the
user events are, and which replies are application errors (a 200 the app uses to refuse).

The run stops at ``max_seconds`` (a hard cap) or once it has made ``target_requests`` requests
and lasted ``min_seconds``, whichever comes first. It reports the request rate, latency
percentiles, every non-2xx reply, transport error and application error, and the server's
resident memory (from /proc, for the given process and its children) after warm-up and at the
end.

    python -m benchmarks.hardening.load --url http://127.0.0.1:8000/eventhandler \
        --connection-string "$WEBPUBSUB_CONNECTION_STRING" --hub chat --pid $(pgrep -o gunicorn)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from flask_webpubsub.core.endpoint import parse_connection_string
from flask_webpubsub.core.jsoncodec import encode_json
from flask_webpubsub.core.payload import encode_payload
from flask_webpubsub.core.service import build_event_headers
from flask_webpubsub.core.state import decode_state
from flask_webpubsub.core.wire import JSON_CONTENT_TYPE

from .procs import process_tree_rss_kib

#: A user event of the mix: (event name, payload for the n-th event of a connection).
UserEventSpec = tuple[str, Callable[[int], Any]]

DEFAULT_MIX: list[UserEventSpec] = [("message", lambda n: {"text": f"message {n}"})]


class Scenario:
    """What each simulated connection does; the default sends ``DEFAULT_MIX``."""

    #: The user events, cycled through by :meth:`user_event`.
    mix: list[UserEventSpec] = DEFAULT_MIX
    #: User events per connection, between ``connected`` and ``disconnected``.
    events_per_connection = 8

    def identity(self, client: int) -> tuple[str, str]:
        """(connection id, user id) for the next connection of simulated client ``client``."""
        return uuid.uuid4().hex, f"load-user-{client}"

    def connect_query(self, client: int) -> dict[str, list[str]]:
        return {}

    def user_event(self, client: int, n: int) -> tuple[str, Any]:
        """The ``n``-th user event of a connection of ``client``: (name, payload)."""
        name, payload = self.mix[n % len(self.mix)]
        return name, payload(n)

    def app_error(self, event: str, status: int, content_type: str, body: bytes) -> str | None:
        """Why a 2xx reply is an application error, or None when it is fine."""
        return None


@dataclass
class LoadResult:
    requests: int = 0
    seconds: float = 0.0
    connections: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    app_errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    warmup_requests: int = 0
    rss_after_warmup_kib: int | None = None
    rss_end_kib: int | None = None
    #: (seconds since the start, requests so far, server RSS in KiB), every few seconds.
    rss_samples: list[tuple[float, int, int]] = field(default_factory=list)
    #: RSS of other processes (the emulator), after warm-up and at the end.
    other_rss_kib: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)

    @property
    def failures(self) -> int:
        bad = sum(count for status, count in self.statuses.items() if status >= 300)
        return bad + sum(self.errors.values()) + sum(self.app_errors.values())

    @property
    def rss_growth(self) -> float | None:
        if not self.rss_after_warmup_kib or self.rss_end_kib is None:
            return None
        return (self.rss_end_kib - self.rss_after_warmup_kib) / self.rss_after_warmup_kib

    def percentile(self, p: float) -> float:
        latencies = sorted(self.latencies_ms)
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0.0

    def summary(self) -> dict[str, Any]:
        latencies = self.latencies_ms
        return {
            "requests": self.requests,
            "connections": self.connections,
            "seconds": round(self.seconds, 1),
            "requests_per_second": round(self.requests / self.seconds) if self.seconds else 0,
            "failures": self.failures,
            "statuses": dict(self.statuses),
            "events": dict(self.events),
            "errors": dict(self.errors),
            "app_errors": dict(self.app_errors),
            "latency_ms": {
                "p50": round(self.percentile(0.5), 2),
                "p99": round(self.percentile(0.99), 2),
                "max": round(max(latencies), 2) if latencies else 0,
                "mean": round(statistics.fmean(latencies), 2) if latencies else 0,
            },
            "warmup_requests": self.warmup_requests,
            "rss_after_warmup_kib": self.rss_after_warmup_kib,
            "rss_end_kib": self.rss_end_kib,
            "rss_growth_percent": None
            if self.rss_growth is None
            else round(self.rss_growth * 100, 2),
            "rss_min_max_after_warmup_kib": self.rss_range_after_warmup(),
            "other_rss_kib": self.other_rss_kib,
        }

    def rate(self, start: float, end: float) -> float:
        """Requests per second between two moments of the run (seconds since its start), from
        the memory samples (every few seconds)."""
        inside = [(t, n) for t, n, _ in self.rss_samples if start <= t <= end]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return 0.0
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])

    def rss_range_after_warmup(self) -> tuple[int, int] | None:
        values = [rss for _, requests, rss in self.rss_samples if requests >= self.warmup_requests]
        return (min(values), max(values)) if values else None


async def run_load(
    url: str,
    *,
    access_key: str,
    hub: str,
    origin: str,
    max_seconds: float,
    target_requests: int,
    concurrency: int,
    min_seconds: float = 0.0,
    scenario: Scenario | None = None,
    pid: int | None = None,
    other_pids: Mapping[str, int] | None = None,
    warmup_requests: int | None = None,
    sample_seconds: float = 2.0,
) -> LoadResult:
    """Drive the event handler; see the module docstring. ``warmup_requests`` defaults to a
    tenth of ``target_requests``."""
    scenario = scenario or Scenario()
    other_pids = dict(other_pids or {})
    result = LoadResult()
    result.warmup_requests = (
        target_requests // 10 if warmup_requests is None else warmup_requests
    )
    started = time.monotonic()
    hard_deadline = started + max_seconds
    soft_deadline = started + min_seconds
    warm_other: dict[str, int] = {}
    warmed = False

    def budget_left() -> bool:
        now = time.monotonic()
        if now >= hard_deadline:
            return False
        return result.requests < target_requests or now < soft_deadline

    async def send(
        session: aiohttp.ClientSession, name: str, connection_id: str, user_id: str,
        state: dict[str, Any], body: bytes, content_type: str,
    ) -> None:
        headers = build_event_headers(
            name, hub=hub, connection_id=connection_id, keys=[access_key], user_id=user_id,
            state=state, origin=origin, content_type=content_type,
            subprotocol="json.webpubsub.azure.v1",
        )
        begin = time.perf_counter()
        try:
            async with session.post(url, data=body, headers=headers) as response:
                reply = await response.read()
                result.statuses[response.status] += 1
                if response.status < 300:
                    problem = scenario.app_error(
                        name, response.status, response.headers.get("Content-Type", ""), reply
                    )
                    if problem is not None:
                        result.app_errors[f"{name}: {problem}"] += 1
                new_state = response.headers.get("ce-connectionState")
                if response.status < 300 and new_state is not None:
                    state.clear()
                    state.update(decode_state(new_state))
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            result.errors[f"{name}: {type(exc).__name__}"] += 1
        result.latencies_ms.append((time.perf_counter() - begin) * 1000)
        result.events[name] += 1
        result.requests += 1
        nonlocal warmed
        if not warmed and result.requests >= result.warmup_requests:
            warmed = True
            if pid is not None:
                result.rss_after_warmup_kib = process_tree_rss_kib(pid)
            warm_other.update({k: process_tree_rss_kib(p) for k, p in other_pids.items()})

    async def client(session: aiohttp.ClientSession, number: int) -> None:
        while budget_left():
            connection_id, user_id = scenario.identity(number)
            state: dict[str, Any] = {}
            connect_body = encode_json({
                "claims": {"sub": [user_id]}, "query": scenario.connect_query(number),
                "subprotocols": ["json.webpubsub.azure.v1"], "headers": {},
                "clientCertificates": [],
            })
            result.connections += 1
            await send(session, "connect", connection_id, user_id, state, connect_body,
                       JSON_CONTENT_TYPE)
            await send(session, "connected", connection_id, user_id, state, b"{}",
                       JSON_CONTENT_TYPE)
            for n in range(scenario.events_per_connection):
                if not budget_left():
                    break
                name, data = scenario.user_event(number, n)
                body, content_type = encode_payload(data)
                await send(session, name, connection_id, user_id, state, body, content_type)
            await send(session, "disconnected", connection_id, user_id, state,
                       b'{"reason":null}', JSON_CONTENT_TYPE)

    async def sample() -> None:
        while pid is not None:
            result.rss_samples.append(
                (time.monotonic() - started, result.requests, process_tree_rss_kib(pid))
            )
            await asyncio.sleep(sample_seconds)

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    sampler = asyncio.create_task(sample())
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await asyncio.gather(*(client(session, n) for n in range(concurrency)))
    finally:
        sampler.cancel()
    result.seconds = time.monotonic() - started
    if pid is not None:
        result.rss_end_kib = process_tree_rss_kib(pid)
    for name, other in other_pids.items():
        result.other_rss_kib[name] = (warm_other.get(name), process_tree_rss_kib(other))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--connection-string", required=True)
    parser.add_argument("--hub", required=True)
    parser.add_argument("--duration", type=float, default=60, help="hard cap, seconds")
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--pid", type=int, default=None, help="server process to measure")
    args = parser.parse_args()
    endpoint = parse_connection_string(args.connection_string)
    assert endpoint.access_key
    result = asyncio.run(
        run_load(
            args.url, access_key=endpoint.access_key, hub=args.hub, origin=endpoint.host,
            max_seconds=args.duration, target_requests=args.requests,
            concurrency=args.concurrency, pid=args.pid,
        )
    )
    print(json.dumps(result.summary(), indent=2))


if __name__ == "__main__":
    main()
