"""The requests every benchmark sends: signed upstream events, as the service builds them."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from flask_webpubsub.core.signature import sign

ACCESS_KEY = "benchmark-access-key-0123456789abcdef"
SECONDARY_KEY = "benchmark-secondary-key-fedcba9876543210"
CONNECTION_STRING = f"Endpoint=http://127.0.0.1;AccessKey={ACCESS_KEY};Version=1.0;"
HUB = "chat"
PATH = "/eventhandler"
CONNECTION_ID = "0f9c97a2f0bf4706afe87a14e0797b11"
ORIGIN = "127.0.0.1"
NEGOTIATE_PATH = "/negotiate"
#: What a negotiated client access token grants, in every token benchmark.
USER_ID = "user1"
ROLES = ["webpubsub.sendToGroup.lobby", "webpubsub.joinLeaveGroup.lobby"]
GROUPS = ["lobby"]


@dataclass(frozen=True)
class UpstreamRequest:
    """One upstream POST: what a server receives and what a correct reply looks like."""

    name: str
    headers: dict[str, str]
    body: bytes
    expected_status: int
    #: The exact body a correct reply carries (``None``: not checked).
    expected_body: bytes | None


def _headers(ce_type: str, event_name: str, content_type: str | None) -> dict[str, str]:
    headers = {
        "ce-specversion": "1.0",
        "ce-awpsversion": "1.0",
        "ce-type": ce_type,
        "ce-source": f"/hubs/{HUB}/client/{CONNECTION_ID}",
        "ce-id": "1",
        "ce-time": "2024-01-01T00:00:00Z",
        "ce-hub": HUB,
        "ce-eventName": event_name,
        "ce-connectionId": CONNECTION_ID,
        "ce-userId": "user1",
        # Both keys, as the service sends them.
        "ce-signature": sign(CONNECTION_ID, [ACCESS_KEY, SECONDARY_KEY]),
        "ce-connectionState": base64.b64encode(b'{"visits":1}').decode(),
        "WebHook-Request-Origin": ORIGIN,
    }
    if content_type:
        headers["Content-Type"] = content_type
    return headers


def _user_event(name: str, content_type: str, body: bytes) -> UpstreamRequest:
    return UpstreamRequest(
        name=name,
        headers=_headers("azure.webpubsub.user.echo", "echo", content_type),
        body=body,
        expected_status=200,
        expected_body=body,
    )


_CONNECT_BODY = json.dumps(
    {
        "claims": {"sub": ["user1"]},
        "query": {"room": ["lobby"]},
        "headers": {"user-agent": ["benchmark"]},
        "subprotocols": [],
        "clientCertificates": [],
    },
    separators=(",", ":"),
).encode()

#: The request that the HTTP benchmarks send, and the in-process headline figure.
TEXT_EVENT = _user_event("user event (text)", "text/plain; charset=utf-8", b"Hello, world!")

EVENTS: tuple[UpstreamRequest, ...] = (
    TEXT_EVENT,
    _user_event("user event (JSON)", "application/json", b'{"msg":"Hello","n":[1,2,3]}'),
    _user_event("user event (binary)", "application/octet-stream", bytes(range(64))),
    UpstreamRequest(
        name="connect",
        headers=_headers("azure.webpubsub.sys.connect", "connect", "application/json"),
        body=_CONNECT_BODY,
        expected_status=200,
        expected_body=None,
    ),
    UpstreamRequest(
        name="connected",
        headers=_headers("azure.webpubsub.sys.connected", "connected", "application/json"),
        body=b"{}",
        expected_status=200,
        expected_body=None,
    ),
)
