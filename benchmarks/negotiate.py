"""Client access tokens: our builder against the service SDK and a bare ``jwt.encode``.

All three sign the same claims (aud, iat, exp, sub, role, webpubsub.group) with HS256; the
contenders alternate in every repeat. The negotiate route (GET /negotiate -> {url, baseUrl,
token}) is measured in-process like the upstream events, when the extension serves one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jwt
from azure.messaging.webpubsubservice import WebPubSubServiceClient

from benchmarks.fixtures import (
    ACCESS_KEY,
    CONNECTION_STRING,
    GROUPS,
    HUB,
    NEGOTIATE_PATH,
    ROLES,
    USER_ID,
)
from benchmarks.results import Metric, Table

BARE = "jwt.encode (the floor)"
OURS = "flask_webpubsub.core.tokens.build_client_token"
SDK = "WebPubSubServiceClient.get_client_access_token"
OUR_ROUTE = "flask_webpubsub negotiate route"
SDK_ROUTE = "Flask route around get_client_access_token"


def _contenders() -> dict[str, Callable[[], Any]]:
    audience = f"http://127.0.0.1/client/hubs/{HUB}"

    def bare() -> str:
        now = int(time.time())
        payload = {
            "aud": audience,
            "iat": now,
            "exp": now + 3600,
            "sub": USER_ID,
            "role": ROLES,
            "webpubsub.group": GROUPS,
        }
        return jwt.encode(payload, ACCESS_KEY, algorithm="HS256")

    contenders: dict[str, Callable[[], Any]] = {BARE: bare}
    try:
        from flask_webpubsub.core.endpoint import parse_connection_string
        from flask_webpubsub.core.tokens import build_client_token
    except ImportError:
        pass
    else:
        endpoint = parse_connection_string(CONNECTION_STRING)

        def ours() -> str:
            return build_client_token(endpoint, HUB, user_id=USER_ID, roles=ROLES, groups=GROUPS)

        contenders[OURS] = ours
    client = WebPubSubServiceClient.from_connection_string(CONNECTION_STRING, hub=HUB)

    def sdk() -> Any:
        return client.get_client_access_token(user_id=USER_ID, roles=ROLES, groups=GROUPS)

    contenders[SDK] = sdk
    return contenders


def time_per_call(function: Callable[[], Any], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        function()
    return (time.perf_counter() - start) / count * 1e6


def run(*, repeats: int, count: int) -> Table:
    table = Table(
        key="tokens",
        title="Client access tokens: one token",
        metrics=[
            Metric("us", "time per token", "us", higher_is_better=False),
            Metric("per_s", "tokens/s (one core)", "tokens/s", higher_is_better=True),
        ],
        baseline=BARE,
    )
    contenders = _contenders()
    for function in contenders.values():
        time_per_call(function, max(count // 10, 10))  # warm up
    for _ in range(repeats):
        for name, function in contenders.items():
            us = time_per_call(function, count)
            table.contender(name).add("us", us)
            table.contender(name).add("per_s", 1e6 / us)
    if OURS not in contenders:
        table.notes.append("flask_webpubsub.core.tokens was not importable.")
    return table


def run_route(*, repeats: int, seconds_per_sample: float) -> Table:
    """GET /negotiate through WSGI: the extension's route against a route around the SDK."""
    from benchmarks.apps import extension_app, sdk_negotiate_app
    from benchmarks.inprocess import calibrate, prepare_request

    table = Table(
        key="negotiate",
        title="Negotiate route in-process: GET /negotiate -> {url, baseUrl, token}",
        metrics=[
            Metric("per_s", "tokens/s (one core)", "tokens/s", higher_is_better=True),
            Metric("us", "time per request", "us", higher_is_better=False),
        ],
        baseline=SDK_ROUTE,
    )
    calls = {SDK_ROUTE: prepare_request(sdk_negotiate_app(), "GET", NEGOTIATE_PATH, {}, b"")}
    try:
        calls[OUR_ROUTE] = prepare_request(extension_app(), "GET", NEGOTIATE_PATH, {}, b"")
    except ImportError:
        table.notes.append("flask_webpubsub was not importable.")
    for name, call in calls.items():
        status, body = call()
        if not status.startswith("200") or b'"token"' not in body:
            raise AssertionError(f"{name} answered {status} {body[:80]!r}")
    count = min(calibrate(call, seconds_per_sample) for call in calls.values())
    for _ in range(repeats):
        for name, call in calls.items():
            us = time_per_call(call, count)
            table.contender(name).add("per_s", 1e6 / us)
            table.contender(name).add("us", us)
    return table
