"""Every class of malformed upstream request, and the exact status and reason it gets.

:data:`CASES` is the single source: the tests send each case and assert its status and reason,
and ``docs/bad-input.md`` is rendered from it. Regenerate the page after changing a case::

    .venv/bin/python -m tests.test_bad_input --write
"""

from __future__ import annotations

import base64
import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_webpubsub import WebPubSub
from flask_webpubsub.config import CONFIG_KEYS
from flask_webpubsub.core.service import build_event_headers
from flask_webpubsub.core.signature import sign
from flask_webpubsub.testing import WebPubSubTestClient
from tests.support import PRIMARY_KEY, make_app

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad-input.md"
LIMIT: int = CONFIG_KEYS["WEBPUBSUB_MAX_BODY_BYTES"][0]


@dataclass(frozen=True)
class Case:
    """One malformed request class: what is wrong, and what the endpoint answers."""

    section: str
    request: str
    status: int
    #: The exact response body ("" for none).
    reason: str
    send: Callable[[WebPubSubTestClient], tuple[int, bytes]]


def post(
    event: str = "message",
    body: bytes = b"x",
    *,
    drop: str | None = None,
    content_type: str | None = "text/plain",
    mqtt: bool = False,
    **headers: str,
) -> Callable[[WebPubSubTestClient], tuple[int, bytes]]:
    """A signed event as the service sends it, with one thing changed."""

    def send(wps: WebPubSubTestClient) -> tuple[int, bytes]:
        sent = build_event_headers(
            event, hub="chat", connection_id="conn1", keys=[PRIMARY_KEY],
            content_type=content_type, subprotocol="mqtt" if mqtt else None,
            physical_connection_id="phys" if mqtt else None,
        )
        if drop is not None:
            del sent[drop]
        sent.update({name.replace("_", "-"): value for name, value in headers.items()})
        result = wps.post(sent, body)
        return result.status, result.body

    return send


def options(origin: str | None) -> Callable[[WebPubSubTestClient], tuple[int, bytes]]:
    def send(wps: WebPubSubTestClient) -> tuple[int, bytes]:
        headers = {"ce-awpsversion": "1.0"}
        if origin is not None:
            headers["WebHook-Request-Origin"] = origin
        result = wps.request("OPTIONS", headers, b"")
        return result.status, result.body

    return send


def post_raw(
    wps: WebPubSubTestClient, content_type: str, extra_headers: dict[str, str], **request: Any
) -> tuple[int, bytes]:
    """A signed message event through Flask's test client, for what the testing helpers do not
    send: a body stream, an environ override."""
    assert wps.application is not None
    headers = build_event_headers(
        "message", hub="chat", connection_id="conn1", keys=[PRIMARY_KEY],
        content_type=content_type,
    )
    answer = wps.application.test_client().post(
        wps.path, headers={**headers, **extra_headers}, **request
    )
    return answer.status_code, answer.data


def chunked(size: int) -> Callable[[WebPubSubTestClient], tuple[int, bytes]]:
    def send(wps: WebPubSubTestClient) -> tuple[int, bytes]:
        return post_raw(
            wps, "application/octet-stream", {"Transfer-Encoding": "chunked"},
            input_stream=io.BytesIO(b"x" * size),
            environ_overrides={"wsgi.input_terminated": True},  # as a de-chunking server does
        )

    return send


def content_length(value: str) -> Callable[[WebPubSubTestClient], tuple[int, bytes]]:
    def send(wps: WebPubSubTestClient) -> tuple[int, bytes]:
        return post_raw(
            wps, "text/plain", {}, data=b"x", environ_overrides={"CONTENT_LENGTH": value}
        )

    return send


def connect(body: str, *, mqtt: bool = False) -> Callable[[WebPubSubTestClient], tuple[int, bytes]]:
    return post("connect", body.encode(), content_type="application/json", mqtt=mqtt)


def mqtt_connect(mqtt: str) -> Callable[[WebPubSubTestClient], tuple[int, bytes]]:
    return connect(f'{{"mqtt":{mqtt}}}', mqtt=True)


SIGNATURE_FAILED = "Signature validation failed."
ABUSE = "Abuse protection (OPTIONS)"
AUTH = "Signature"
ATTRIBUTES = "CloudEvents attributes"
SIZE = "Size"
CONNECT = "connect body"
PAYLOAD = "User event payload"
TOLERATED = "Tolerated: answered normally, logged"

CASES: list[Case] = [
    Case(ABUSE, "no `WebHook-Request-Origin` header", 400,
         "Missing WebHook-Request-Origin header.", options(None)),
    Case(ABUSE, "`WebHook-Request-Origin` holds only separators", 400,
         "Missing WebHook-Request-Origin header.", options(" , ")),
    Case(ABUSE, "origin not allowed", 400, "Origin 'evil.example.com' is not allowed.",
         options("evil.example.com")),
    Case(ABUSE, "several origins, none allowed (the first is named)", 400,
         "Origin 'a.example.com' is not allowed.", options("a.example.com, b.example.com")),
    Case(AUTH, "no `ce-signature` header", 401, SIGNATURE_FAILED, post(drop="ce-signature")),
    Case(AUTH, "signed with an unknown key", 401, SIGNATURE_FAILED,
         post(ce_signature=sign("conn1", ["another-key"]))),
    Case(AUTH, "signature of another connection id", 401, SIGNATURE_FAILED,
         post(ce_signature=sign("conn2", [PRIMARY_KEY]))),
    Case(AUTH, "malformed signature entries", 401, SIGNATURE_FAILED,
         post(ce_signature="sha256=, md5=00, garbage")),
    Case(AUTH, "empty `ce-signature`", 401, SIGNATURE_FAILED, post(ce_signature="")),
    Case(ATTRIBUTES, "no `ce-connectionId` (checked first: the signature is made of it)", 400,
         "Missing required header ce-connectionId.", post(drop="ce-connectionId")),
    Case(ATTRIBUTES, "blank `ce-connectionId`", 400, "Missing required header ce-connectionId.",
         post(ce_connectionId="  ")),
    Case(ATTRIBUTES, "no `ce-hub`", 400, "Missing required header ce-hub.", post(drop="ce-hub")),
    Case(ATTRIBUTES, "no `ce-type`", 400, "Missing required header ce-type.",
         post(drop="ce-type")),
    Case(ATTRIBUTES, "a hub this app does not serve", 404, "No handlers for hub 'elsewhere'.",
         post(ce_hub="elsewhere")),
    Case(ATTRIBUTES, "`ce-type` outside `azure.webpubsub.`", 400,
         "Unsupported ce-type 'com.example.created': not a Web PubSub event.",
         post(ce_type="com.example.created")),
    Case(ATTRIBUTES, "`ce-type` of an unknown kind under `azure.webpubsub.`", 400,
         "Unsupported ce-type 'azure.webpubsub.other.x'.", post(ce_type="azure.webpubsub.other.x")),
    Case(ATTRIBUTES, "user event without a name", 400, "Missing user event name in ce-type.",
         post(ce_type="azure.webpubsub.user.")),
    Case(SIZE, f"`Content-Length` over `WEBPUBSUB_MAX_BODY_BYTES` ({LIMIT})", 413,
         f"The body is larger than {LIMIT} bytes.",
         post(body=b"x" * (LIMIT + 1), content_type="application/octet-stream")),
    Case(SIZE, "chunked body over `WEBPUBSUB_MAX_BODY_BYTES`", 413,
         f"The body is larger than {LIMIT} bytes.", chunked(LIMIT + 1)),
    Case(SIZE, "chunked body that reads as empty (no terminating chunk, or a malformed one that "
         "the server hides; the service sends a `Content-Length`)", 400,
         "The chunked body is empty or malformed.", post(body=b"", Transfer_Encoding="chunked")),
    Case(CONNECT, "not JSON", 400, "The connect body is not valid JSON.", connect("{")),
    Case(CONNECT, "JSON with `NaN` or `Infinity`", 400, "The connect body is not valid JSON.",
         connect('{"a":NaN}')),
    Case(CONNECT, "not a JSON object", 400, "The connect body must be a JSON object.",
         connect("[]")),
    Case(CONNECT, "`claims` not an object", 400, "The connect body's claims must be an object.",
         connect('{"claims":[]}')),
    Case(CONNECT, "`query` values not lists of strings", 400,
         "The connect body's query values must be lists of strings.",
         connect('{"query":{"a":[1]}}')),
    Case(CONNECT, "`headers` values not lists of strings", 400,
         "The connect body's headers values must be lists of strings.",
         connect('{"headers":{"a":{}}}')),
    Case(CONNECT, "`subprotocols` not a list of strings", 400,
         "The connect body's subprotocols must be a list of strings.",
         connect('{"subprotocols":"mqtt"}')),
    Case(CONNECT, "`clientCertificates` without thumbprints", 400,
         "The connect body's clientCertificates must be a list of objects.",
         connect('{"clientCertificates":[{}]}')),
    Case(CONNECT, "MQTT: `mqtt` not an object", 400, "The connect body's mqtt must be an object.",
         mqtt_connect('"x"')),
    Case(CONNECT, "MQTT: `protocolVersion` not 4 or 5", 400,
         "The connect body's mqtt.protocolVersion must be 4 or 5.",
         mqtt_connect('{"protocolVersion":6}')),
    Case(CONNECT, "MQTT: malformed `userProperties`", 400,
         "MQTT userProperties must be a list of {name, value} strings.",
         mqtt_connect('{"userProperties":[{"name":1,"value":"x"}]}')),
    Case(PAYLOAD, "text not in its charset (UTF-8 by default)", 400,
         "The text payload does not match its charset.", post(body=b"\xff\xfe")),
    Case(PAYLOAD, "text that decodes to lone surrogates (utf-7, unicode_escape)", 400,
         "The text payload does not match its charset.",
         post(body=b"+2AA-", content_type="text/plain; charset=utf-7")),
    Case(PAYLOAD, "unknown charset", 400, "Unsupported charset 'klingon'.",
         post(content_type="text/plain; charset=klingon")),
    Case(PAYLOAD, "a codec that is not a text encoding as charset", 400,
         "Unsupported charset 'base64'.", post(content_type="text/plain; charset=base64")),
    Case(PAYLOAD, "JSON not in its charset", 400, "The JSON payload does not match its charset.",
         post(body=b'"\xff"', content_type="application/json")),
    Case(PAYLOAD, "invalid JSON (also empty, too deep, `NaN`)", 400,
         "The JSON payload is not valid JSON.", post(body=b"{", content_type="application/json")),
    Case(PAYLOAD, "JSON with an unpaired surrogate escape", 400,
         "The JSON payload holds an unpaired surrogate.",
         post(body=b'"\\ud800"', content_type="application/json")),
    Case(TOLERATED, "unknown `azure.webpubsub.sys.*` or `gp.*` type", 200, "",
         post(ce_type="azure.webpubsub.sys.future")),
    Case(TOLERATED, "`ce-connectionState` not base64 of a JSON object (read as `{}`)", 204, "",
         post(ce_connectionState="not-base64!")),
    Case(TOLERATED, "`ce-connectionState` a JSON array (read as `{}`)", 204, "",
         post(ce_connectionState=base64.b64encode(b"[1]").decode())),
    Case(TOLERATED, "malformed `disconnected` / `gp.*` body", 200, "",
         post("disconnected", b"{", content_type="application/json")),
    Case(TOLERATED, "`Content-Length` not ASCII digits, such as `²` (werkzeug reads no body)",
         204, "", content_length("²")),
]


@pytest.fixture(
    scope="module", params=[False, True], ids=["flask routing", "direct dispatch"]
)
def bad_input_app(request: pytest.FixtureRequest) -> Flask:
    """With and without ``WEBPUBSUB_DIRECT_DISPATCH``."""
    return accepting_app(direct=request.param)


def accepting_app(*, direct: bool) -> Flask:
    """An app with handlers that accept everything, so only the input decides the answer."""
    app = make_app(WEBPUBSUB_DIRECT_DISPATCH=direct)
    webpubsub = WebPubSub(app)
    webpubsub.on_connect(lambda event: None)
    webpubsub.on_user_event(lambda event: None)
    webpubsub.on_disconnected(lambda event: None)
    return app


@pytest.mark.parametrize("case", CASES, ids=[f"{c.section}: {c.request}" for c in CASES])
def test_bad_input(bad_input_app: Flask, case: Case) -> None:
    status, body = case.send(WebPubSubTestClient(bad_input_app))
    assert (status, body.decode()) == (case.status, case.reason)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.section}: {c.request}" for c in CASES])
def test_direct_dispatch_answers_alike_on_the_wire(case: Case) -> None:
    def wire(direct: bool) -> list[tuple[str, list[tuple[str, str]], bytes]]:
        """Status lines, headers in order and bodies, as the app hands them to the server."""
        app = accepting_app(direct=direct)
        inner, seen = app.wsgi_app, []

        def record(environ: Any, start_response: Any) -> Any:
            def start(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
                seen.append((status, list(headers)))
                return start_response(status, headers, *exc_info)

            return inner(environ, start)

        app.wsgi_app = record  # type: ignore[method-assign]
        _, body = case.send(WebPubSubTestClient(app))
        return [(status, headers, body) for status, headers in seen]

    assert wire(direct=True) == wire(direct=False)


INTRO = """\
# Bad input: what the upstream endpoint answers

<!-- Generated from tests/test_bad_input.py; do not edit. Regenerate with:
     .venv/bin/python -m tests.test_bad_input --write -->

Every row is a class of malformed request to the event handler URL. The test suite sends each
one (`tests/test_bad_input.py`) and asserts the exact status and response body, so this page
cannot drift. Reasons are one line of `text/plain; charset=utf-8`.

A POST is checked in this order, and the first failure answers: `ce-connectionId`, the signature
(before any of the body is read), `ce-hub` and `ce-type`, the hub, the body size, the body.
None of these inputs, nor any that the fuzzing suite (`tests/test_fuzz_upstream.py`) generates,
gets a 5xx.
"""


def render() -> str:
    lines = [INTRO.rstrip("\n")]
    section = None
    for case in CASES:
        if case.section != section:
            section = case.section
            lines += ["", f"## {section}", ""]
            lines += ["| Request | Status | Reason |", "| --- | --- | --- |"]
        reason = f"`{case.reason}`" if case.reason else "(empty)"
        lines.append(f"| {case.request} | {case.status} | {reason} |")
    return "\n".join(lines) + "\n"


def test_the_bad_input_page_is_up_to_date() -> None:
    current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    assert current == render(), (
        "docs/bad-input.md is stale: run `.venv/bin/python -m tests.test_bad_input --write`"
    )


def main(argv: list[str]) -> int:
    if argv != ["--write"]:
        print("usage: python -m tests.test_bad_input --write", file=sys.stderr)
        return 2
    DOC.write_text(render(), encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
