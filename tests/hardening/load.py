"""A bounded load generator for an event handler: signed connect / user / disconnect events.

Each simulated connection sends ``connect``, ``connected``, a few user events and
``disconnected``, exactly as the service would, over real HTTP on loopback. The run stops after
``--duration`` seconds or ``--requests`` requests, whichever comes first, and reports the
request rate, latency percentiles, every non-2xx or transport error, and the server's resident
memory after warm-up and at the end (from /proc, for the given process and its children).

    python -m tests.hardening.load --url http://127.0.0.1:8000/eventhandler \
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from flask_webpubsub import protocol
from flask_webpubsub.state import decode_state
from flask_webpubsub.tokens import parse_connection_string

#: A user event of the mix: (event name, payload for the n-th message of a connection).
UserEventSpec = tuple[str, Callable[[int], Any]]

DEFAULT_MIX: list[UserEventSpec] = [("message", lambda n: {"text": f"message {n}"})]


def process_tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and its descendants, in KiB (Linux /proc)."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
        pending.extend(int(child) for child in children)
    return total


@dataclass
class LoadResult:
    requests: int = 0
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    rss_after_warmup_kib: int | None = None
    rss_end_kib: int | None = None

    @property
    def failures(self) -> int:
        bad = sum(count for status, count in self.statuses.items() if status >= 300)
        return bad + sum(self.errors.values())

    @property
    def rss_growth(self) -> float | None:
        if not self.rss_after_warmup_kib or self.rss_end_kib is None:
            return None
        return (self.rss_end_kib - self.rss_after_warmup_kib) / self.rss_after_warmup_kib

    def summary(self) -> dict[str, Any]:
        latencies = sorted(self.latencies_ms)

        def pct(p: float) -> float:
            return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0

        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 1),
            "requests_per_second": round(self.requests / self.seconds) if self.seconds else 0,
            "failures": self.failures,
            "statuses": dict(self.statuses),
            "errors": dict(self.errors),
            "latency_ms": {
                "p50": round(pct(0.5), 2),
                "p99": round(pct(0.99), 2),
                "max": round(latencies[-1], 2) if latencies else 0,
                "mean": round(statistics.fmean(latencies), 2) if latencies else 0,
            },
            "rss_after_warmup_kib": self.rss_after_warmup_kib,
            "rss_end_kib": self.rss_end_kib,
            "rss_growth_percent": None
            if self.rss_growth is None
            else round(self.rss_growth * 100, 2),
        }


async def run_load(
    url: str,
    *,
    access_key: str,
    hub: str,
    origin: str,
    duration: float,
    max_requests: int,
    concurrency: int,
    messages_per_connection: int = 8,
    mix: list[UserEventSpec] | None = None,
    pid: int | None = None,
    warmup_fraction: float = 0.1,
) -> LoadResult:
    """Drive the event handler; see the module docstring."""
    mix = mix or DEFAULT_MIX
    result = LoadResult()
    deadline = time.monotonic() + duration
    warmup_requests = int(max_requests * warmup_fraction)
    started = time.monotonic()

    def budget_left() -> bool:
        return result.requests < max_requests and time.monotonic() < deadline

    async def send(
        session: aiohttp.ClientSession, name: str, connection_id: str, user_id: str,
        state: dict[str, Any], body: bytes, content_type: str,
    ) -> None:
        headers = protocol.build_event_headers(
            name, hub=hub, connection_id=connection_id, keys=[access_key], user_id=user_id,
            state=state, origin=origin, content_type=content_type,
            subprotocol="json.webpubsub.azure.v1",
        )
        begin = time.perf_counter()
        try:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                result.statuses[response.status] += 1
                new_state = response.headers.get("ce-connectionState")
                if response.status < 300 and new_state is not None:
                    state.clear()
                    state.update(decode_state(new_state))
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            result.errors[type(exc).__name__] += 1
        result.latencies_ms.append((time.perf_counter() - begin) * 1000)
        result.requests += 1
        if pid is not None and result.requests == warmup_requests:
            result.rss_after_warmup_kib = process_tree_rss_kib(pid)

    async def client(session: aiohttp.ClientSession, number: int) -> None:
        while budget_left():
            connection_id = uuid.uuid4().hex
            user_id = f"load-user-{number}"
            state: dict[str, Any] = {}
            connect_body = protocol.encode_json(
                {"claims": {"sub": [user_id]}, "query": {}, "subprotocols": [], "headers": {}}
            )
            await send(session, "connect", connection_id, user_id, state, connect_body,
                       protocol.JSON_CONTENT_TYPE)
            await send(session, "connected", connection_id, user_id, state, b"{}",
                       protocol.JSON_CONTENT_TYPE)
            for n in range(messages_per_connection):
                if not budget_left():
                    break
                name, payload = mix[n % len(mix)]
                body, content_type = protocol.encode_payload(payload(n))
                await send(session, name, connection_id, user_id, state, body, content_type)
            await send(session, "disconnected", connection_id, user_id, state,
                       b'{"reason":null}', protocol.JSON_CONTENT_TYPE)

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(client(session, n) for n in range(concurrency)))
    result.seconds = time.monotonic() - started
    if pid is not None:
        result.rss_end_kib = process_tree_rss_kib(pid)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--connection-string", required=True)
    parser.add_argument("--hub", required=True)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--pid", type=int, default=None, help="server process to measure")
    args = parser.parse_args()
    endpoint = parse_connection_string(args.connection_string)
    assert endpoint.access_key
    result = asyncio.run(
        run_load(
            args.url, access_key=endpoint.access_key, hub=args.hub, origin=endpoint.host,
            duration=args.duration, max_requests=args.requests, concurrency=args.concurrency,
            pid=args.pid,
        )
    )
    print(json.dumps(result.summary(), indent=2))


if __name__ == "__main__":
    main()
