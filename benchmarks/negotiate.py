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

from benchmarks.fixtures import ACCESS_KEY, CONNECTION_STRING, HUB
from benchmarks.results import Metric, Table

BARE = "jwt.encode (the floor)"
OURS = "flask_webpubsub.tokens.build_client_token"
SDK = "WebPubSubServiceClient.get_client_access_token"

USER_ID = "user1"
ROLES = ["webpubsub.sendToGroup.lobby", "webpubsub.joinLeaveGroup.lobby"]
GROUPS = ["lobby"]


def _contenders() -> dict[str, Callable[[], Any]]:
    audience = f"http://127.0.0.1/client/hubs/{HUB}"

    def bare() -> str:
        now = int(time.time())
        payload = {"aud": audience, "iat": now, "exp": now + 3600, "sub": USER_ID,
                   "role": ROLES, "webpubsub.group": GROUPS}
        return jwt.encode(payload, ACCESS_KEY, algorithm="HS256")

    contenders: dict[str, Callable[[], Any]] = {BARE: bare}
    try:
        from flask_webpubsub.tokens import build_client_token, parse_connection_string
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


def _time(function: Callable[[], Any], count: int) -> float:
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
        _time(function, max(count // 10, 10))  # warm up
    for _ in range(repeats):
        for name, function in contenders.items():
            us = _time(function, count)
            table.contender(name).add("us", us)
            table.contender(name).add("per_s", 1e6 / us)
    if OURS not in contenders:
        table.notes.append("flask_webpubsub.tokens was not importable.")
    return table
