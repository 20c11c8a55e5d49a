"""Fuzzing the upstream endpoint: anyone on the internet can POST to it.

Random headers (names, casing, duplicates), bodies, content types, charsets, connection states
and signatures must never give a 5xx or an unhandled exception (the app runs with TESTING=True,
so one would fail the test), never reach a handler without a valid signature, and never answer
with the access key, a token or a traceback.

The default run is bounded (a few hundred examples per test, well under 30 s for the file). For
a long run set the number of examples per test::

    WEBPUBSUB_FUZZ_EXAMPLES=100000 .venv/bin/python -m pytest tests/test_fuzz_upstream.py
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_webpubsub import ConnectResponse, WebPubSub
from flask_webpubsub.core.errors import InvalidStateError, MalformedEvent
from flask_webpubsub.core.payload import decode_payload
from flask_webpubsub.core.request import parse_event
from flask_webpubsub.core.service import build_event_headers
from flask_webpubsub.core.signature import sign, verify
from flask_webpubsub.core.state import decode_state, encode_state
from flask_webpubsub.testing import WebPubSubTestClient
from tests.secrets_guard import JWT
from tests.support import HOST, PRIMARY_KEY, SECONDARY_KEY, make_app

EXAMPLES = int(os.environ.get("WEBPUBSUB_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: The pure codecs are cheap: give them more examples.
FUZZ_CODECS = settings(FUZZ, max_examples=EXAMPLES * 2)

# --- The app under test: handlers that check they were reached with a valid signature. ---------

violations: list[str] = []


def _check_signed(event: Any) -> None:
    from flask import request

    if not verify(event.connection_id, request.headers.getlist("ce-signature"), SECRETS):
        violations.append(f"{event.type} reached a handler without a valid signature")


def _build_app() -> Flask:
    app = make_app(WEBPUBSUB_ACCESS_KEYS=[SECONDARY_KEY])
    webpubsub = WebPubSub(app)

    @webpubsub.on_connect
    def connect(event: Any) -> ConnectResponse | None:
        _check_signed(event)
        # Client input into the state, and back out: cut to fit the state's 4 KiB limit, as a
        # correct app must (a larger state is the app's error, answered 500 and logged).
        event.state["claims"] = repr(event.claims)[:300]
        if event.query:
            return ConnectResponse(user_id=event.user_id or "anonymous", groups=list(event.query))
        return None

    @webpubsub.on_user_event
    def echo(event: Any) -> Any:
        _check_signed(event)
        event.state["last"] = event.data[:300] if event.data_type == "text" else event.data_type
        return event.data  # the client's own payload, whatever it decoded to

    def notification(event: Any) -> None:
        _check_signed(event)

    for register in (webpubsub.on_connected, webpubsub.on_disconnected,
                     webpubsub.on_group_joined, webpubsub.on_group_left):
        register(notification)
    return app


APP = _build_app()
SECRETS = (PRIMARY_KEY, SECONDARY_KEY)


def send(headers: list[tuple[str, str]], body: bytes, method: str = "POST") -> Any:
    answer = APP.test_client().open("/eventhandler", method=method, headers=headers, data=body)
    assert answer.status_code < 500, (answer.status_code, answer.data)
    everything = answer.get_data() + str(answer.headers).encode("latin-1")
    for secret in SECRETS:
        assert secret.encode() not in everything
    assert b"Traceback" not in everything
    assert not JWT.search(everything.decode("latin-1"))
    return answer


@pytest.fixture(autouse=True)
def _no_violations() -> Any:
    violations.clear()
    yield
    assert violations == []


# --- Strategies ---------------------------------------------------------------------------------

# What a WSGI server hands an app: header values are latin-1 text without control characters.
header_text = st.text(
    st.characters(codec="latin-1", exclude_categories=["Cc"]), max_size=40
)
token = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."),
    min_size=1, max_size=20,
)
ce_types = st.one_of(
    st.sampled_from([
        "azure.webpubsub.sys.connect", "azure.webpubsub.sys.connected",
        "azure.webpubsub.sys.disconnected", "azure.webpubsub.gp.joined",
        "azure.webpubsub.gp.left", "azure.webpubsub.sys.future", "azure.webpubsub.gp.",
        "azure.webpubsub.user.", "azure.webpubsub.", "AZURE.WEBPUBSUB.SYS.CONNECT",
    ]),
    token.map(lambda name: "azure.webpubsub.user." + name),
    header_text,
)
charsets = st.one_of(
    st.sampled_from([
        "utf-8", "UTF-8", "latin-1", "utf-16", "utf-16-be", "utf-32", "ascii", "utf-7",
        "unicode_escape", "raw_unicode_escape", "idna", "punycode", "cp037", "shift_jis",
        "base64", "zlib", "rot13", "hex", "undefined", "", '"utf-8"', "x-unknown",
    ]),
    header_text,
)
content_types = st.one_of(
    st.none(),
    st.sampled_from([
        "text/plain", "application/json", "application/octet-stream", "application/cbor",
        "TEXT/PLAIN", "application/json;", ";", "", "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
    ]),
    st.builds(lambda t, c: f"{t}; charset={c}",
              st.sampled_from(["text/plain", "application/json", "Text/Plain"]), charsets),
    header_text,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
connect_bodies = st.fixed_dictionaries(
    {},
    optional={
        "claims": st.one_of(json_values, st.dictionaries(st.text(max_size=5),
                                                         st.lists(st.text(max_size=5)))),
        "query": st.one_of(json_values, st.dictionaries(token, st.lists(token, max_size=2))),
        "headers": json_values,
        "subprotocols": st.one_of(json_values, st.lists(st.text(max_size=10))),
        "clientCertificates": st.one_of(
            json_values, st.lists(st.fixed_dictionaries({"thumbprint": st.text()}))
        ),
        "mqtt": st.one_of(json_values, st.fixed_dictionaries(
            {},
            optional={
                "protocolVersion": st.one_of(st.sampled_from([3, 4, 5]), json_values),
                "username": json_values,
                "password": st.one_of(st.binary().map(lambda b: base64.b64encode(b).decode()),
                                      json_values),
                "userProperties": st.one_of(json_values, st.lists(st.fixed_dictionaries(
                    {"name": st.text(max_size=5), "value": st.text(max_size=5)}))),
            },
        )),
    },
)
bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=100).map(str.encode),
    json_values.map(lambda v: json.dumps(v).encode()),
    connect_bodies.map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b'"\\ud800"', b"NaN", b"[" * 3000, b"{}", b'{"reason":null}',
                     b'{"group":"g"}', b"\xef\xbb\xbf{}"]),
)
states = st.one_of(
    st.none(),
    st.dictionaries(st.text(max_size=5), json_values, max_size=3).map(encode_state),
    st.binary(max_size=50).map(lambda b: base64.b64encode(b).decode()),
    json_values.map(lambda v: base64.b64encode(json.dumps(v).encode()).decode()),
    st.sampled_from(["e30=", "e30", "W10=", base64.b64encode(b"[" * 3000).decode()]),
    header_text,
)


@st.composite
def signatures(draw: st.DrawFn, connection_id: str) -> list[str]:
    """Zero or more ce-signature header lines, valid or not."""
    good = sign(connection_id, [PRIMARY_KEY])
    choices = st.one_of(
        st.just(good),
        st.just(sign(connection_id, [SECONDARY_KEY])),
        st.just(sign(connection_id, ["some-other-key", PRIMARY_KEY])),
        st.just(good.upper()),
        st.just(sign(connection_id + "x", [PRIMARY_KEY])),
        st.just(sign(connection_id, ["wrong-key"])),
        st.text(st.sampled_from("0123456789abcdefABCDEF"), max_size=70).map("sha256=".__add__),
        header_text,
    )
    return draw(st.lists(choices, max_size=3))


def recase(name: str, mask: int) -> str:
    return "".join(c.upper() if mask >> (i % 16) & 1 else c.lower() for i, c in enumerate(name))


@st.composite
def requests(draw: st.DrawFn) -> tuple[list[tuple[str, str]], bytes]:
    """A POST as the service might send it, then damaged in random ways."""
    connection_id = draw(st.one_of(token, header_text))
    fields: dict[str, str] = {
        "ce-specversion": "1.0",
        "ce-awpsversion": "1.0",
        "ce-type": draw(ce_types),
        "ce-source": f"/hubs/chat/client/{connection_id}",
        "ce-id": draw(token),
        "ce-time": "2024-05-01T10:00:00Z",
        "ce-hub": draw(st.sampled_from(["chat", "CHAT", "other"]) | header_text),
        "ce-eventName": draw(token),
        "ce-connectionId": connection_id,
        "WebHook-Request-Origin": HOST,
    }
    optional = {
        "ce-userId": header_text,
        "ce-subprotocol": st.sampled_from(["mqtt", "MQTT", "json.webpubsub.azure.v1"])
        | header_text,
        "ce-physicalConnectionId": header_text,
        "ce-sessionId": header_text,
        "mqtt-prop": header_text,
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            fields[name] = draw(strategy)
    state = draw(states)
    if state is not None:
        fields["ce-connectionState"] = state
    content_type = draw(content_types)
    if content_type is not None:
        fields["Content-Type"] = content_type
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=2, unique=True)):
        del fields[name]  # a required header goes missing
    headers = [(recase(name, draw(st.integers(0, 0xFFFF))), value)
               for name, value in fields.items()]
    headers += [("ce-signature", s) for s in draw(signatures(connection_id))]
    extra = st.tuples(
        st.one_of(st.sampled_from(sorted(fields)), token.map("ce-".__add__), token)
        .filter(lambda n: n.lower() not in {"content-length", "transfer-encoding", "host"}),
        header_text,
    )
    headers += draw(st.lists(extra, max_size=3))  # duplicates and strangers
    order = draw(st.permutations(range(len(headers))))
    return [headers[i] for i in order], draw(bodies)


# --- Properties ---------------------------------------------------------------------------------


@FUZZ
@given(requests())
def test_random_requests_never_fail_the_server(
    request: tuple[list[tuple[str, str]], bytes],
) -> None:
    headers, body = request
    send(headers, body)


@FUZZ
@given(requests())
def test_no_handler_runs_without_a_valid_signature(
    request: tuple[list[tuple[str, str]], bytes],
) -> None:
    headers, body = request
    unsigned = [(n, v) for n, v in headers if n.lower() != "ce-signature"]
    forged = [
        *unsigned,
        ("ce-signature", sign("not-this-connection", [PRIMARY_KEY])),
        ("ce-signature", "sha256=" + "0" * 64),
    ]
    for attempt in (unsigned, forged):
        answer = send(attempt, body)
        assert answer.status_code in (400, 401), answer.data


@FUZZ
@given(
    event=st.sampled_from(["connect", "connected", "disconnected", "joined", "left", "message",
                           "custom"]),
    body=bodies,
    content_type=content_types,
    state=states,
    subprotocol=st.sampled_from([None, "mqtt", "json.webpubsub.azure.v1"]),
    mqtt=st.booleans(),
)
def test_validly_signed_events_with_random_content(
    event: str, body: bytes, content_type: str | None, state: str | None,
    subprotocol: str | None, mqtt: bool,
) -> None:
    headers = build_event_headers(
        event, hub="chat", connection_id="conn1", keys=[PRIMARY_KEY, SECONDARY_KEY],
        subprotocol=subprotocol, physical_connection_id="phys" if mqtt else None,
        session_id="sess", origin=HOST,
    )
    if content_type is not None:
        headers["Content-Type"] = content_type
    if state is not None:
        headers["ce-connectionState"] = state
    answer = send(list(headers.items()), body)
    # A signed event of a known type reaches its handler or gets a 400 with a reason.
    assert answer.status_code in (200, 204, 400), answer.data
    if answer.status_code == 400:
        assert answer.data
        assert b"\n" not in answer.data


@FUZZ
@given(origin=st.one_of(st.none(), header_text, st.just(HOST)), extra=st.lists(
    st.tuples(token, header_text), max_size=3))
def test_random_abuse_protection_requests(
    origin: str | None, extra: list[tuple[str, str]]
) -> None:
    headers = [(n, v) for n, v in extra
               if n.lower() not in {"content-length", "transfer-encoding", "host"}]
    if origin is not None:
        headers.append(("WebHook-Request-Origin", origin))
    answer = send(headers, b"", method="OPTIONS")
    assert answer.status_code in (200, 400)


@FUZZ_CODECS
@given(body=bodies, content_type=content_types)
def test_decode_payload_raises_only_invalid_event_errors(
    body: bytes, content_type: str | None
) -> None:
    try:
        data, data_type, _ = decode_payload(body, content_type)
    except MalformedEvent:
        return
    assert data_type in ("text", "json", "binary")
    if data_type == "text":
        data.encode()  # always text a reply can carry


@FUZZ_CODECS
@given(st.one_of(states.filter(lambda s: s is not None), header_text))
def test_decode_state_raises_only_invalid_state_errors(value: str) -> None:
    try:
        state = decode_state(value)
    except InvalidStateError:
        return
    assert isinstance(state, dict)
    encode_state(state)


@FUZZ_CODECS
@given(headers=st.dictionaries(st.sampled_from(
    ["ce-type", "ce-hub", "ce-connectionId", "ce-subprotocol", "ce-physicalConnectionId",
     "ce-connectionState", "Content-Type", "ce-userId"]), header_text), body=bodies,
    ce_type=ce_types)
def test_parse_event_raises_only_invalid_event_errors(
    headers: dict[str, str], body: bytes, ce_type: str
) -> None:
    from werkzeug.datastructures import Headers

    headers.setdefault("ce-type", ce_type)
    with contextlib.suppress(MalformedEvent):
        parse_event(Headers(headers), body)


def test_the_helpers_talk_to_the_fuzzed_app() -> None:
    wps = WebPubSubTestClient(APP)
    conn = wps.connect(query={"room": ["1"]})
    assert conn.accepted
    assert conn.user_event("echo", {"a": 1}).data == {"a": 1}
