"""Replies, PROTOCOL.md section 4: user event replies, connect accept and reject (MQTT codes too),
notifications that are always 200, handler errors, async handlers and handler selection."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask, abort

from flask_webpubsub import (
    ConnectEvent,
    ConnectRejection,
    ConnectResponse,
    GroupJoinedEvent,
    GroupLeftEvent,
    MqttUserProperty,
    UserEvent,
    UserEventResponse,
    WebPubSub,
)
from flask_webpubsub.core.service import build_event_headers
from flask_webpubsub.testing import WebPubSubTestClient
from tests.support import PRIMARY_KEY

JSON = "application/json; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
BINARY = "application/octet-stream"
GENERIC = b"Internal server error."


def reply_to(webpubsub: WebPubSub, wps: WebPubSubTestClient, value: Any) -> Any:
    webpubsub.on_user_event("ask")(lambda event: value)
    return wps.connection().user_event("ask", "?")


# User event replies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "content_type", "body"),
    [
        ("h\u00e9llo", TEXT, "h\u00e9llo".encode()),
        ("", TEXT, b""),
        ({"a": [1, 2], "\u00e9": None}, JSON, '{"a":[1,2],"\u00e9":null}'.encode()),
        ([], JSON, b"[]"),
        (3, JSON, b"3"),
        (2.5, JSON, b"2.5"),
        (True, JSON, b"true"),
        (False, JSON, b"false"),
        (b"\x00\xff", BINARY, b"\x00\xff"),
        (bytearray(b"ab"), BINARY, b"ab"),
        (memoryview(b"cd"), BINARY, b"cd"),
        (UserEventResponse("hi", data_type="json"), JSON, b'"hi"'),
        (UserEventResponse(b'{"a":1}', data_type="json"), JSON, b'{"a":1}'),
        (UserEventResponse({"a": 1}), JSON, b'{"a":1}'),
        (UserEventResponse("hi", data_type="text"), TEXT, b"hi"),
        (UserEventResponse(b"hi", data_type="binary"), BINARY, b"hi"),
        (UserEventResponse(None, data_type="json"), JSON, b"null"),
    ],
)
def test_user_event_replies(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient, value: Any, content_type: str,
    body: bytes
) -> None:
    result = reply_to(webpubsub, webpubsub_client, value)
    assert result.status == 200
    assert result.headers["Content-Type"] == content_type
    assert result.body == body


def test_none_is_204_with_no_body(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient
) -> None:
    result = reply_to(webpubsub, webpubsub_client, None)
    assert (result.status, result.body, result.data) == (204, b"", None)
    assert "Content-Type" not in result.headers


def test_an_event_with_no_handler_is_204(webpubsub_client: WebPubSubTestClient) -> None:
    assert webpubsub_client.connection().user_event("nobody-listens", "x").status == 204


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ({1, 2}, "returned set"),
        (object(), "returned object"),
        (ConnectResponse(user_id="x"), "returned ConnectResponse"),
        (UserEventResponse("x", data_type="binary"), "a binary reply must be bytes, not str"),
        (UserEventResponse(b"x", data_type="text"), "a text reply must be str, not bytes"),
        (UserEventResponse(1, data_type="text"), "a text reply must be str, not int"),
        (float("nan"), "Out of range float values are not JSON compliant"),
        ({"a": {1, 2}}, "not JSON serializable"),
    ],
)
def test_a_wrong_return_type_is_500_and_logged_naming_it(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient, value: Any, named: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, "flask_webpubsub"):
        result = reply_to(webpubsub, webpubsub_client, value)
    assert (result.status, result.body) == (500, GENERIC)
    assert named in caplog.text
    assert "ask handler" in caplog.text


def test_the_log_for_a_wrong_type_says_what_is_allowed(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, "flask_webpubsub"):
        reply_to(webpubsub, webpubsub_client, (1, 2))
    assert "returned tuple; return str (text), bytes (binary), a dict, list" in caplog.text


# Connect replies -----------------------------------------------------------------------------


def test_connect_with_no_handler_is_204(webpubsub_client: WebPubSubTestClient) -> None:
    result = webpubsub_client.connection().connect()
    assert (result.status, result.body) == (204, b"")


@pytest.mark.parametrize("value", [None, ConnectResponse()])
def test_connect_with_nothing_to_set_is_204(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient, value: Any
) -> None:
    webpubsub.on_connect(lambda event: value)
    result = webpubsub_client.connection().connect()
    assert (result.status, result.body) == (204, b"")
    assert "Content-Type" not in result.headers


@pytest.mark.parametrize(
    ("response", "body"),
    [
        (ConnectResponse(user_id="alice"), b'{"userId":"alice"}'),
        (ConnectResponse(groups=["a", "b"]), b'{"groups":["a","b"]}'),
        (ConnectResponse(groups=()), b'{"groups":[]}'),
        (ConnectResponse(roles=("webpubsub.sendToGroup.a",)),
         b'{"roles":["webpubsub.sendToGroup.a"]}'),
        (ConnectResponse(subprotocol="json.webpubsub.azure.v1"),
         b'{"subprotocol":"json.webpubsub.azure.v1"}'),
        (
            ConnectResponse(user_id="\u00e9", groups=["g"], roles=["r"],
                            subprotocol="json.webpubsub.azure.v1"),
            '{"userId":"\u00e9","groups":["g"],"roles":["r"],'
            '"subprotocol":"json.webpubsub.azure.v1"}'.encode(),
        ),
    ],
)
def test_connect_with_fields_is_200_compact_json_with_only_those_fields(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient, response: ConnectResponse,
    body: bytes
) -> None:
    webpubsub.on_connect(lambda event: response)
    conn = webpubsub_client.connection()
    result = conn.connect(subprotocols=["json.webpubsub.azure.v1", "other"])
    assert result.status == 200
    assert result.headers["Content-Type"] == JSON
    assert result.body == body
    assert result.response is not None
    if response.user_id:
        assert conn.user_id == response.user_id


def test_connect_may_set_mqtt_user_properties(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient
) -> None:
    webpubsub.on_connect(
        lambda event: ConnectResponse(mqtt_user_properties=[MqttUserProperty("k", "v")])
    )
    result = webpubsub_client.connection(mqtt=True).connect(mqtt={"protocol_version": 5})
    assert result.status == 200
    assert result.body == b'{"mqtt":{"userProperties":[{"name":"k","value":"v"}]}}'


@pytest.mark.parametrize(
    ("requested", "chosen"),
    [([], "json.webpubsub.azure.v1"), (["a"], "b"), (["A"], "a")],
)
def test_a_subprotocol_the_client_did_not_ask_for_is_500(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient, requested: list[str], chosen: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    webpubsub.on_connect(lambda event: ConnectResponse(subprotocol=chosen))
    with caplog.at_level(logging.ERROR, "flask_webpubsub"):
        result = webpubsub_client.connection().connect(subprotocols=requested)
    assert (result.status, result.body) == (500, GENERIC)
    assert "is not one the client asked for" in caplog.text


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("alice", "a connect handler returned str"),
        ({"userId": "alice"}, "a connect handler returned dict"),
        (ConnectResponse(groups="lobby"), "groups must be a list of strings"),
        (ConnectResponse(roles=[1]), "roles must contain only strings"),  # type: ignore[list-item]
        (ConnectResponse(user_id=7), "user_id must be a string"),  # type: ignore[arg-type]
    ],
)
def test_a_wrong_connect_return_value_is_500_and_logged(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient, value: Any, named: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    webpubsub.on_connect(lambda event: value)
    with caplog.at_level(logging.ERROR, "flask_webpubsub"):
        result = webpubsub_client.connection().connect()
    assert (result.status, result.body) == (500, GENERIC)
    assert named in caplog.text


@pytest.mark.parametrize(
    ("reject", "status", "reason"),
    [
        (lambda: abort(401, "no token"), 401, "no token"),
        (lambda: abort(403, "banned"), 403, "banned"),
        (lambda: abort(400, "bad query"), 400, "bad query"),
        (lambda: abort(429, "slow down"), 429, "slow down"),
        (lambda: abort(500, "database down"), 500, "database down"),
        (lambda: abort(503, "later"), 503, "later"),
        (lambda: abort(403), 403, None),
        (lambda: _raise(ConnectRejection(403, "blocked")), 403, "blocked"),
        (lambda: _raise(ConnectRejection(401)), 401, ""),
    ],
)
def test_connect_rejection_carries_the_status_and_reason_as_text(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient, reject: Any, status: int,
    reason: str | None
) -> None:
    webpubsub.on_connect(lambda event: reject())
    conn = webpubsub_client.connect()
    assert conn.result is not None
    assert not conn.accepted
    assert conn.result.status == status
    assert conn.result.headers["Content-Type"] == TEXT
    if reason is None:  # werkzeug's own description of the status
        assert "permission" in conn.result.body.decode()
    else:
        assert conn.result.body == reason.encode()
        assert conn.result.reason == reason


def _raise(exc: Exception) -> None:
    raise exc


def test_abort_with_a_response_is_sent_as_is(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient
) -> None:
    from flask import Response

    webpubsub.on_connect(lambda event: abort(Response("custom", status=418)))
    result = webpubsub_client.connection().connect()
    assert (result.status, result.body) == (418, b"custom")


def test_a_user_event_handler_may_abort_too(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient
) -> None:
    webpubsub.on_user_event("send")(lambda event: abort(403, "not in that group"))
    result = webpubsub_client.connection().user_event("send", "x")
    assert (result.status, result.reason) == (403, "not in that group")


@pytest.mark.parametrize(
    ("version", "status", "code"),
    [
        (4, 400, 4), (4, 401, 5), (4, 403, 5), (4, 500, 3), (4, 404, 5), (4, 503, 3),
        (3, 401, 5),
        (5, 400, 134), (5, 401, 135), (5, 403, 135), (5, 500, 128), (5, 404, 135), (5, 503, 128),
    ],
)
def test_mqtt_rejection_codes(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient, version: int, status: int,
    code: int
) -> None:
    webpubsub.on_connect(lambda event: abort(status, "no entry"))
    result = webpubsub_client.connection(mqtt=True).connect(mqtt={"protocol_version": version})
    assert result.status == status
    assert result.headers["Content-Type"] == JSON
    assert result.body == f'{{"mqtt":{{"code":{code},"reason":"no entry"}}}}'.encode()
    assert (result.mqtt_code, result.reason) == (code, "no entry")


@pytest.mark.parametrize("version", [4, 5])
def test_an_explicit_mqtt_code(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient, version: int
) -> None:
    webpubsub.on_connect(lambda event: _raise(ConnectRejection(403, "quota", mqtt_code=151)))
    result = webpubsub_client.connection(mqtt=True).connect(mqtt={"protocol_version": version})
    assert (result.status, result.mqtt_code, result.reason) == (403, 151, "quota")


@pytest.mark.parametrize(("version", "code"), [(4, 3), (5, 128)])
def test_an_mqtt_connect_handler_error_is_500_with_the_server_error_code(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient, version: int, code: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    webpubsub.on_connect(lambda event: 1 / 0)
    with caplog.at_level(logging.ERROR, "flask_webpubsub"):
        result = webpubsub_client.connection(mqtt=True).connect(mqtt={"protocol_version": version})
    assert result.status == 500
    assert result.body == f'{{"mqtt":{{"code":{code},"reason":"Internal server error."}}}}'.encode()
    assert "ZeroDivisionError" in caplog.text


@pytest.mark.parametrize(
    ("subprotocol", "physical_id", "is_mqtt"),
    [
        ("mqtt", "p1", True),
        ("MQTT", "p1", True),
        ("mqtt.v5", "p1", True),
        ("x-MqTt-y", "p1", True),
        ("mqtt", None, False),
        (None, "p1", False),
        ("json.webpubsub.azure.v1", "p1", False),
    ],
)
def test_the_mqtt_detection_rule(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient, subprotocol: str | None,
    physical_id: str | None, is_mqtt: bool,
) -> None:
    seen: list[ConnectEvent] = []

    @webpubsub.on_connect
    def reject(event: ConnectEvent) -> None:
        seen.append(event)
        abort(401, "who are you")

    headers = build_event_headers(
        "connect", hub="chat", connection_id="c1", keys=[PRIMARY_KEY], subprotocol=subprotocol,
        physical_connection_id=physical_id, content_type="application/json",
    )
    result = webpubsub_client.post(headers, b'{"mqtt":{"protocolVersion":5}}')
    assert seen[0].is_mqtt is is_mqtt
    if is_mqtt:
        assert result.body == b'{"mqtt":{"code":135,"reason":"who are you"}}'
    else:
        assert result.body == b"who are you"


# Notifications and errors --------------------------------------------------------------------


def _fail(event: Any) -> None:
    raise RuntimeError("handler bug with detail 12345")


@pytest.mark.parametrize(
    "handler",
    [_fail, lambda event: abort(403, "nope"), lambda event: "ignored", lambda event: {1, 2}],
)
def test_notifications_are_always_200_empty(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient, handler: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for register in (
        webpubsub.on_connected, webpubsub.on_disconnected,
        webpubsub.on_group_joined, webpubsub.on_group_left,
    ):
        register(handler)
    conn = webpubsub_client.connection()
    with caplog.at_level(logging.ERROR, "flask_webpubsub"):
        results = [conn.connected(), conn.group_joined("g"), conn.group_left("g"),
                   conn.disconnected("bye")]
    for result in results:
        assert (result.status, result.body) == (200, b"")
        assert "Content-Type" not in result.headers
    if handler is _fail:
        assert caplog.text.count("handler failed for connection") == 4
        assert "Traceback" in caplog.text


@pytest.mark.parametrize("kind", ["connect", "user event"])
def test_an_exception_in_a_blocking_handler_is_a_generic_500_logged_with_the_traceback(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient, kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    webpubsub.on_connect(_fail)
    webpubsub.on_user_event(_fail)
    conn = webpubsub_client.connection()
    with caplog.at_level(logging.ERROR, "flask_webpubsub"):
        result = conn.connect() if kind == "connect" else conn.user_event("m", "x")
    assert (result.status, result.body) == (500, GENERIC)
    assert result.headers["Content-Type"] == TEXT
    assert b"12345" not in result.body
    [record] = [r for r in caplog.records if r.name.startswith("flask_webpubsub")]
    assert record.exc_info is not None
    assert "Traceback" in caplog.text
    assert "RuntimeError: handler bug with detail 12345" in caplog.text
    assert conn.connection_id in record.getMessage()


def test_an_http_exception_that_is_not_an_error_is_500(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient, caplog: pytest.LogCaptureFixture
) -> None:
    from werkzeug.routing import RequestRedirect

    webpubsub.on_user_event(lambda event: _raise(RequestRedirect("http://x/")))
    with caplog.at_level(logging.ERROR, "flask_webpubsub"):
        result = webpubsub_client.connection().user_event("m", "x")
    assert (result.status, result.body) == (500, GENERIC)
    assert "not an error status" in caplog.text


# Handler kinds and selection ----------------------------------------------------------------


def test_async_handlers(webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient) -> None:
    calls: list[str] = []

    @webpubsub.on_connect
    async def connect(event: ConnectEvent) -> ConnectResponse:
        event.state["via"] = "async"
        return ConnectResponse(user_id="async-user")

    @webpubsub.on_connected
    async def connected(event: Any) -> None:
        calls.append("connected")

    @webpubsub.on_user_event("echo")
    async def echo(event: UserEvent) -> Any:
        return event.data

    @webpubsub.on_disconnected
    async def disconnected(event: Any) -> None:
        raise RuntimeError("async notification failures are logged too")

    conn = webpubsub_client.connect()
    assert conn.user_id == "async-user"
    assert conn.state == {"via": "async"}
    assert calls == ["connected"]
    assert conn.user_event("echo", {"a": 1}).data == {"a": 1}
    assert conn.disconnected().status == 200


def test_async_rejection(webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient) -> None:
    @webpubsub.on_connect
    async def connect(event: ConnectEvent) -> None:
        abort(401, "async no")

    conn = webpubsub_client.connect()
    assert conn.result is not None
    assert (conn.result.status, conn.result.reason) == (401, "async no")


@pytest.mark.parametrize("bare", [True, False])
def test_the_catch_all_gets_events_without_their_own_handler(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient, bare: bool
) -> None:
    def catch_all(event: UserEvent) -> str:
        return f"any:{event.event_name}"

    if bare:
        webpubsub.on_user_event(catch_all)
    else:
        webpubsub.on_user_event()(catch_all)
    webpubsub.on_user_event("special")(lambda event: "special")
    conn = webpubsub_client.connection()
    assert conn.user_event("special").data == "special"
    assert conn.user_event("other").data == "any:other"
    assert conn.user_event("message").data == "any:message"


def test_group_joined_and_left_handlers(
    app: Flask, webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient
) -> None:
    seen: list[Any] = []
    webpubsub.on_group_joined(seen.append)
    webpubsub.on_group_left(seen.append)
    conn = webpubsub_client.connection(user_id="bob")
    assert conn.group_joined("room 1").status == 200
    assert conn.group_left("room 1").status == 200
    joined, left = seen
    assert isinstance(joined, GroupJoinedEvent)
    assert isinstance(left, GroupLeftEvent)
    assert (joined.group, joined.event_name, joined.type) == (
        "room 1", "joined", "azure.webpubsub.gp.joined"
    )
    assert (left.group, left.event_name, left.type) == ("room 1", "left", "azure.webpubsub.gp.left")
    assert joined.user_id == "bob"
