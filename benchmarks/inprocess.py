"""Extension overhead in-process: WSGI calls with a prebuilt environ, no server, no socket.

Every event type is sent to the bare Flask route and to flask_webpubsub, alternating the two
in each repeat (A B A B ...), and the ratio is taken per repeat, so drift on a shared machine
cancels out.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.test import EnvironBuilder

from benchmarks.fixtures import EVENTS, PATH, UpstreamRequest
from benchmarks.results import Metric, Table

WsgiCall = Callable[[], tuple[str, bytes]]


def prepare(app: Flask, event: UpstreamRequest) -> WsgiCall:
    """A function that sends ``event`` through ``app`` once and returns (status, body)."""
    headers = {k: v for k, v in event.headers.items() if k.lower() != "content-type"}
    return prepare_request(
        app, "POST", PATH, headers, event.body, event.headers.get("Content-Type")
    )


def prepare_request(
    app: Flask,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    content_type: str | None = None,
) -> WsgiCall:
    """Like :func:`prepare`, for any request."""
    builder = EnvironBuilder(
        path=path,
        method=method,
        headers=list(headers.items()),
        data=body,
        content_type=content_type,
    )
    template = builder.get_environ()
    builder.close()
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], Any]:
        statuses.append(status)
        return lambda data: None

    def call() -> tuple[str, bytes]:
        environ = template.copy()
        environ["wsgi.input"] = io.BytesIO(body)
        result: Iterable[bytes] = app(environ, start_response)
        try:
            payload = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return statuses.pop(), payload

    return call


def check(call: WsgiCall, event: UpstreamRequest, contender: str) -> None:
    """Fail loudly if a contender answers wrongly: a fast wrong answer is not a result."""
    status, body = call()
    code = int(status.split()[0])
    if code != event.expected_status or (
        event.expected_body is not None and body != event.expected_body
    ):
        raise AssertionError(
            f"{contender} answered {event.name} with {status} {body[:80]!r}, "
            f"expected {event.expected_status} {event.expected_body!r}"
        )


def time_per_call(call: WsgiCall, count: int) -> float:
    """Microseconds per call over ``count`` calls."""
    start = time.perf_counter()
    for _ in range(count):
        call()
    return (time.perf_counter() - start) / count * 1e6


def calibrate(call: WsgiCall, seconds: float) -> int:
    """How many calls take about ``seconds``."""
    per_call = time_per_call(call, 200) / 1e6
    return max(200, int(seconds / per_call))


def run(apps: dict[str, Flask], *, repeats: int, seconds_per_sample: float) -> Table:
    """``apps`` maps ``bare`` (the baseline) and, when importable, ``extension`` and ``direct``
    (with ``WEBPUBSUB_DIRECT_DISPATCH``) to apps."""
    table = Table(
        key="inprocess",
        title="In-process: one WSGI call with a prebuilt environ",
        metrics=[
            Metric("ratio", "extension / bare", "x", higher_is_better=False),
            Metric("extension_us", "flask_webpubsub", "us/request", higher_is_better=False),
            Metric("bare_us", "bare Flask route", "us/request", higher_is_better=False),
            Metric("direct_ratio", "direct dispatch / bare", "x", higher_is_better=False),
            Metric("direct_us", "direct dispatch", "us/request", higher_is_better=False),
        ],
    )
    for event in EVENTS:
        row = table.contender(event.name)
        calls = {name: prepare(app, event) for name, app in apps.items()}
        for name, call in calls.items():
            if name != "bare":
                check(call, event, name)
        counts = {name: calibrate(call, seconds_per_sample) for name, call in calls.items()}
        count = min(counts.values())
        for _ in range(repeats):
            sample = {name: time_per_call(call, count) for name, call in calls.items()}
            for name, value in sample.items():
                row.add(f"{name}_us", value)
            if "extension" in sample:
                row.add("ratio", sample["extension"] / sample["bare"])
            if "direct" in sample:
                row.add("direct_ratio", sample["direct"] / sample["bare"])
    if "extension" not in apps:
        table.notes.append("flask_webpubsub was not importable: only the bare route ran.")
    return table


def run_entra(*, repeats: int, seconds_per_sample: float) -> Table:
    """The text user event authenticated by an Entra ID bearer token (the tenant's keys cached)
    against the same event authenticated by ``ce-signature``, alternating per repeat."""
    import dataclasses
    import threading

    from werkzeug.serving import make_server

    from benchmarks.apps import entra_app, extension_app
    from benchmarks.fixtures import TEXT_EVENT
    from flask_webpubsub.core.entra_issuer import LocalEntraIssuer

    table = Table(
        key="inprocess_entra",
        title="In-process: Entra ID bearer token against ce-signature (keys cached)",
        metrics=[
            Metric("ratio", "Entra ID / access key", "x", higher_is_better=False),
            Metric("entra_us", "Entra ID token", "us/request", higher_is_better=False),
            Metric("key_us", "ce-signature", "us/request", higher_is_better=False),
        ],
    )
    tenant_app = Flask("tenant")
    server = make_server("127.0.0.1", 0, tenant_app, threaded=True)
    issuer = LocalEntraIssuer(f"http://127.0.0.1:{server.server_port}")

    @tenant_app.get("/<path:path>")
    def document(path: str) -> Any:
        found = issuer.document("/" + path)
        return ("", 404) if found is None else found

    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        audience, identity = "api://benchmark", "0b1c2d3e-4f5a-4b6c-9d7e-8f9a0b1c2d3e"
        token = issuer.issue(audience, object_id=identity)
        headers = {k: v for k, v in TEXT_EVENT.headers.items() if k != "ce-signature"}
        entra_event = dataclasses.replace(
            TEXT_EVENT, headers={**headers, "Authorization": f"Bearer {token}"}
        )
        entra = prepare(entra_app(issuer.authority, issuer.tenant_id, audience, identity),
                        entra_event)
        key = prepare(extension_app(), TEXT_EVENT)
        check(entra, entra_event, "Entra ID")
        check(key, TEXT_EVENT, "access key")
        count = min(calibrate(entra, seconds_per_sample), calibrate(key, seconds_per_sample))
        row = table.contender(TEXT_EVENT.name)
        for _ in range(repeats):
            entra_us, key_us = time_per_call(entra, count), time_per_call(key, count)
            row.add("entra_us", entra_us)
            row.add("key_us", key_us)
            row.add("ratio", entra_us / key_us)
    finally:
        server.shutdown()
        thread.join(5)
    return table
