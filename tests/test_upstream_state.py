"""Connection state, PROTOCOL.md section 5: read, modify, clear, untouched, invalid."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest

from flask_webpubsub import ConnectEvent, ConnectResponse, UserEvent, WebPubSub
from flask_webpubsub.core.service import build_event_headers
from flask_webpubsub.core.state import EMPTY_STATE, decode_state, encode_state
from flask_webpubsub.testing import WebPubSubTestClient
from tests.support import PRIMARY_KEY

VECTOR_STATE = {"a": {"x": 1}, "b": "\u00e9"}
VECTOR = "eyJhIjp7IngiOjF9LCJiIjoiw6kifQ=="


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def headers_with_state(value: str | None, event: str = "message") -> dict[str, str]:
    headers = build_event_headers(
        event, hub="chat", connection_id="c1", keys=[PRIMARY_KEY], content_type="text/plain"
    )
    if value is not None:
        headers["ce-connectionState"] = value
    return headers


def test_the_state_vector() -> None:
    assert encode_state(VECTOR_STATE) == VECTOR
    assert decode_state(VECTOR) == VECTOR_STATE
    assert encode_state({}) == EMPTY_STATE == "e30="


def test_a_handler_that_sets_the_vector_state_sends_exactly_the_vector(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient
) -> None:
    @webpubsub.on_connect
    def connect(event: ConnectEvent) -> None:
        event.state.update({"a": {"x": 1}, "b": "\u00e9"})

    conn = webpubsub_client.connection()
    result = conn.connect()
    assert result.status == 204
    assert result.state_header == VECTOR
    assert conn.state == VECTOR_STATE


def test_state_is_read_on_every_event(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient
) -> None:
    seen: list[dict[str, Any]] = []
    for register in (webpubsub.on_connected, webpubsub.on_disconnected, webpubsub.on_group_joined):
        register(lambda event: seen.append(dict(event.state)))
    webpubsub.on_user_event(lambda event: seen.append(dict(event.state)))
    conn = webpubsub_client.connection()
    conn.state = {"n": 1, "nested": {"list": [1, "\u00e9"]}}
    conn.connected()
    conn.user_event("m")
    conn.group_joined("g")
    conn.disconnected()
    assert seen == [{"n": 1, "nested": {"list": [1, "\u00e9"]}}] * 4


def test_missing_state_is_the_empty_object(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient
) -> None:
    seen: list[dict[str, Any]] = []
    webpubsub.on_user_event(lambda event: seen.append(event.state))
    assert webpubsub_client.post(headers_with_state(None), b"x").status == 204
    assert webpubsub_client.post(headers_with_state(""), b"x").status == 204
    assert seen == [{}, {}]


def test_a_change_sends_the_whole_new_state(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient
) -> None:
    @webpubsub.on_connect
    def connect(event: ConnectEvent) -> ConnectResponse:
        event.state["visits"] = 0
        event.state["profile"] = {"name": "alice"}
        return ConnectResponse(user_id="alice")

    @webpubsub.on_user_event("visit")
    def visit(event: UserEvent) -> int:
        event.state["visits"] += 1
        return int(event.state["visits"])

    @webpubsub.on_user_event("rename")
    def rename(event: UserEvent) -> None:
        event.state["profile"]["name"] = event.data  # a nested change counts too

    conn = webpubsub_client.connect()
    assert conn.state == {"visits": 0, "profile": {"name": "alice"}}
    first = conn.user_event("visit")
    assert first.data == 1
    assert decode_state(first.state_header) == {"visits": 1, "profile": {"name": "alice"}}
    renamed = conn.user_event("rename", "bob")
    assert decode_state(renamed.state_header) == {"visits": 1, "profile": {"name": "bob"}}
    assert conn.state == {"visits": 1, "profile": {"name": "bob"}}


def test_clearing_the_state_sends_the_empty_object(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient
) -> None:
    @webpubsub.on_user_event("logout")
    def logout(event: UserEvent) -> None:
        event.state.clear()

    conn = webpubsub_client.connection()
    conn.state = {"token": "abc"}
    result = conn.user_event("logout")
    assert result.status == 204
    assert result.state_header == "e30="
    assert conn.state == {}


@pytest.mark.parametrize("incoming", [None, VECTOR, b64("{}")])
def test_untouched_state_sends_no_header(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient, incoming: str | None
) -> None:
    webpubsub.on_user_event(lambda event: dict(event.state))  # reads, does not change
    webpubsub.on_connect(lambda event: ConnectResponse(user_id="x"))
    for event in ("message", "connect"):
        headers = headers_with_state(incoming, event)
        if event == "connect":
            headers["Content-Type"] = "application/json"
        result = webpubsub_client.post(headers, b"{}")
        assert result.ok
        assert "ce-connectionState" not in result.headers


def test_a_value_changed_and_changed_back_sends_no_header(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient
) -> None:
    @webpubsub.on_user_event
    def toggle(event: UserEvent) -> None:
        event.state["n"] = 2
        event.state["n"] = 1

    result = webpubsub_client.post(headers_with_state(b64('{"n":1}')), b"x")
    assert "ce-connectionState" not in result.headers


@pytest.mark.parametrize(
    "value",
    [
        "!!!not base64",
        "e30",  # unpadded
        b64("not json"),
        b64(b"\xff\xfe"),
        b64('{"a":NaN}'),
        b64("[" * 5000),
        "\u00e9\u00e9\u00e9\u00e9",
        b64("[1,2]"),
        b64('"a string"'),
        b64("null"),
        b64("42"),
    ],
)
def test_an_invalid_or_non_object_state_is_empty_with_a_warning(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient, value: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[dict[str, Any]] = []
    webpubsub.on_user_event(lambda event: seen.append(dict(event.state)))
    webpubsub.on_connected(lambda event: seen.append(dict(event.state)))
    with caplog.at_level(logging.WARNING, "flask_webpubsub"):
        results = [
            webpubsub_client.post(headers_with_state(value), b"x"),
            webpubsub_client.post(headers_with_state(value, "connected"), b"{}"),
        ]
    assert [r.status for r in results] == [204, 200]
    assert all("ce-connectionState" not in r.headers for r in results)
    assert seen == [{}, {}]
    assert "Ignoring the ce-connectionState header" in caplog.text


def test_a_handler_may_replace_an_invalid_state(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient
) -> None:
    @webpubsub.on_user_event
    def reset(event: UserEvent) -> None:
        event.state["fresh"] = True

    result = webpubsub_client.post(headers_with_state("garbage"), b"x")
    assert result.status == 204
    assert decode_state(result.headers["ce-connectionState"]) == {"fresh": True}


def test_notifications_cannot_set_state(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient
) -> None:
    def meddle(event: Any) -> None:
        event.state["x"] = 1

    for register in (webpubsub.on_connected, webpubsub.on_disconnected,
                     webpubsub.on_group_joined, webpubsub.on_group_left):
        register(meddle)
    conn = webpubsub_client.connection()
    for result in (conn.connected(), conn.group_joined("g"), conn.group_left("g"),
                   conn.disconnected()):
        assert "ce-connectionState" not in result.headers


def test_a_rejected_connect_sends_no_state(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient
) -> None:
    from flask import abort

    @webpubsub.on_connect
    def connect(event: ConnectEvent) -> None:
        event.state["half"] = "done"
        abort(403, "no")

    result = webpubsub_client.connection().connect()
    assert result.status == 403
    assert "ce-connectionState" not in result.headers


def test_state_that_cannot_be_json_is_a_logged_500(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient, caplog: pytest.LogCaptureFixture
) -> None:
    @webpubsub.on_user_event
    def bad(event: UserEvent) -> str:
        event.state["when"] = object()
        return "ok"

    with caplog.at_level(logging.ERROR, "flask_webpubsub"):
        result = webpubsub_client.connection().user_event("m")
    assert result.status == 500
    assert "cannot be sent" in caplog.text


@pytest.mark.parametrize("name", ["ce-connectionstate", "CE-CONNECTIONSTATE", "Ce-ConnectionState"])
def test_the_state_header_name_is_case_insensitive(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient, name: str
) -> None:
    seen: list[dict[str, Any]] = []
    webpubsub.on_user_event(lambda event: seen.append(event.state))
    headers = headers_with_state(None)
    headers[name] = VECTOR
    assert webpubsub_client.post(headers, b"x").status == 204
    assert seen == [VECTOR_STATE]


def test_state_with_client_text_that_is_not_unicode_is_still_encoded(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient
) -> None:
    # A query value can hold an escaped lone surrogate; keeping it in the state must not fail.
    @webpubsub.on_connect
    def connect(event: ConnectEvent) -> None:
        event.state["q"] = event.query["q"][0]

    headers = build_event_headers(
        "connect", hub="chat", connection_id="c1", keys=[PRIMARY_KEY],
        content_type="application/json",
    )
    result = webpubsub_client.post(headers, b'{"query":{"q":["\\ud800"]}}')
    assert result.status == 204
    assert decode_state(result.headers["ce-connectionState"]) == {"q": "\ud800"}


def test_a_handler_that_never_reads_the_state_costs_no_decoding(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The state is decoded on first use: an invalid header that no handler reads is neither
    warned about nor answered with a state header."""
    events: list[UserEvent] = []
    webpubsub.on_user_event(lambda event: events.append(event))
    with caplog.at_level(logging.WARNING, "flask_webpubsub"):
        result = webpubsub_client.post(headers_with_state("!!!not base64"), b"x")
    assert result.status == 204
    assert "ce-connectionState" not in result.headers
    assert "ce-connectionState" not in caplog.text
    assert not events[0].state_loaded
    assert events[0].state == {}  # still readable afterwards
    assert events[0].state_loaded
