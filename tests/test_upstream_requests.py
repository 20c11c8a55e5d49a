"""The request itself, PROTOCOL.md section 2: required attributes, ce-type, hubs, header-name
casing, paths, body limits (chunked too, through a real server), CSRF and app factories."""

from __future__ import annotations

import http.client
import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from flask_webpubsub import Hub, UserEvent, WebPubSub
from flask_webpubsub.core.service import build_event_headers
from flask_webpubsub.testing import WebPubSubTestClient
from tests.support import ENDPOINT, PRIMARY_KEY, SECONDARY_KEY, make_app, serve


def signed(event: str = "message", *, hub: str = "chat", **fields: Any) -> dict[str, str]:
    fields.setdefault("content_type", "text/plain")
    return build_event_headers(
        event, hub=hub, connection_id="conn1", keys=[PRIMARY_KEY], **fields
    )


@pytest.mark.parametrize("name", ["ce-type", "ce-hub"])
@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_required_attributes_are_400(
    webpubsub_client: WebPubSubTestClient, seen: list[Any], name: str, value: str | None
) -> None:
    headers = signed()
    del headers[name]
    if value is not None:
        headers[name] = value
    result = webpubsub_client.post(headers, b"x")
    assert (result.status, result.reason) == (400, f"Missing required header {name}.")
    assert result.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert seen == []


def test_a_missing_connection_id_is_400(
    webpubsub_client: WebPubSubTestClient, seen: list[Any]
) -> None:
    headers = signed()
    del headers["ce-connectionId"]
    result = webpubsub_client.post(headers, b"x")
    assert (result.status, result.reason) == (400, "Missing required header ce-connectionId.")
    assert seen == []


@pytest.mark.parametrize(
    ("ce_type", "reason"),
    [
        ("com.example.thing", "Unsupported ce-type 'com.example.thing': not a Web PubSub event."),
        ("Azure.WebPubSub.user.x", "Unsupported ce-type 'Azure.WebPubSub.user.x': not a Web "
         "PubSub event."),
        ("azure.webpubsub.user.", "Missing user event name in ce-type."),
        ("azure.webpubsub.unknown.kind", "Unsupported ce-type 'azure.webpubsub.unknown.kind'."),
    ],
)
def test_a_type_outside_the_web_pubsub_events_is_400(
    webpubsub_client: WebPubSubTestClient, seen: list[Any], ce_type: str, reason: str
) -> None:
    result = webpubsub_client.post({**signed(), "ce-type": ce_type}, b"x")
    assert (result.status, result.reason) == (400, reason)
    assert seen == []


def test_a_long_type_is_clipped_in_the_reason(webpubsub_client: WebPubSubTestClient) -> None:
    result = webpubsub_client.post({**signed(), "ce-type": "x" * 5000}, b"x")
    assert result.status == 400
    assert len(result.body) < 200


@pytest.mark.parametrize(
    "ce_type",
    ["azure.webpubsub.sys.reconnected", "azure.webpubsub.sys.", "azure.webpubsub.gp.renamed"],
)
def test_unknown_sys_and_gp_types_are_200_empty_and_logged(
    webpubsub_client: WebPubSubTestClient, seen: list[Any], ce_type: str,
    caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, "flask_webpubsub"):
        result = webpubsub_client.post({**signed(), "ce-type": ce_type}, b"{}")
    assert (result.status, result.body) == (200, b"")
    assert seen == []
    assert ce_type in caplog.text


def test_an_unknown_hub_is_404(webpubsub_client: WebPubSubTestClient, seen: list[Any]) -> None:
    result = webpubsub_client.post(signed(hub="elsewhere"), b"x")
    assert (result.status, result.reason) == (404, "No handlers for hub 'elsewhere'.")
    assert seen == []


@pytest.mark.parametrize("hub", ["chat", "CHAT", "Chat", "cHaT"])
def test_the_hub_matches_case_insensitively(
    webpubsub_client: WebPubSubTestClient, seen: list[Any], hub: str
) -> None:
    assert webpubsub_client.post({**signed(), "ce-hub": hub}, b"x").status == 204
    assert seen[0].hub == hub


def test_a_configured_mixed_case_hub_gets_the_lower_case_service_name() -> None:
    app = make_app(WEBPUBSUB_HUB="ChatRoom")
    webpubsub = WebPubSub(app)
    notifications = Hub("Notifications")
    webpubsub.register_hub(notifications)
    webpubsub.on_user_event(lambda event: "default")
    notifications.on_user_event(lambda event: "notifications")
    wps = WebPubSubTestClient(app)
    assert wps.post(signed(hub="chatroom"), b"x").body == b"default"
    assert wps.post(signed(hub="notifications"), b"x").body == b"notifications"
    assert wps.connection(hub="NOTIFICATIONS").user_event("m").data == "notifications"


def _recase(name: str, style: str) -> str:
    if style == "lower":
        return name.lower()
    if style == "upper":
        return name.upper()
    return "".join(c.upper() if i % 2 else c.lower() for i, c in enumerate(name))


@pytest.mark.parametrize("style", ["lower", "upper", "alternating"])
def test_header_names_are_case_insensitive(
    webpubsub_client: WebPubSubTestClient, seen: list[Any], style: str
) -> None:
    headers = signed(
        "echo",
        user_id="alice",
        subprotocol="json.webpubsub.azure.v1",
        state={"n": 1},
        origin="contoso.webpubsub.azure.com",
        content_type="text/plain; charset=utf-8",
    )
    result = webpubsub_client.post({_recase(k, style): v for k, v in headers.items()}, b"hi")
    assert result.status == 204
    event = seen[0]
    assert isinstance(event, UserEvent)
    assert (event.event_name, event.user_id, event.state, event.data) == (
        "echo", "alice", {"n": 1}, "hi"
    )
    assert event.subprotocol == "json.webpubsub.azure.v1"
    assert event.origin == "contoso.webpubsub.azure.com"


@pytest.mark.parametrize("path", ["/eventhandler/", "/eventhandler/message", "/eventhandler/a/b/c"])
def test_sub_paths_are_served(app: Flask, seen: list[Any], path: str) -> None:
    wps = WebPubSubTestClient(app, path=path)
    assert wps.connection().user_event("m", "x").status == 204
    assert wps.options().status == 200
    assert len(seen) == 1


def test_a_custom_event_handler_path() -> None:
    app = make_app(WEBPUBSUB_EVENT_HANDLER_PATH="/api/webpubsub/hubs/chat/")
    webpubsub = WebPubSub(app)
    webpubsub.on_user_event(lambda event: event.data)
    wps = WebPubSubTestClient(app)
    assert wps.connection().user_event("m", "x").data == "x"
    for path in ("/api/webpubsub/hubs/chat/", "/api/webpubsub/hubs/chat/message"):
        assert WebPubSubTestClient(app, path=path).connection().user_event("m", "y").data == "y"
    assert app.test_client().post("/eventhandler", headers=signed()).status_code == 404


def test_other_methods_are_405(app: Flask) -> None:
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        assert app.test_client().open("/eventhandler", method=method).status_code == 405


# Body limits ----------------------------------------------------------------------------------


@pytest.fixture
def small_app() -> Flask:
    app = make_app(WEBPUBSUB_MAX_BODY_BYTES=100)
    webpubsub = WebPubSub(app)

    @webpubsub.on_user_event
    def length(event: UserEvent) -> int:
        assert isinstance(event.data, bytes)
        return len(event.data)

    return app


def binary(body: bytes, **extra: str) -> dict[str, str]:
    return {**signed(content_type="application/octet-stream"), **extra}


def test_a_body_at_the_limit_is_accepted_and_one_more_byte_is_413(small_app: Flask) -> None:
    wps = WebPubSubTestClient(small_app)
    assert wps.post(binary(b""), b"x" * 100).body == b"100"
    result = wps.post(binary(b""), b"x" * 101)
    assert (result.status, result.reason) == (413, "The body is larger than 100 bytes.")


def test_the_default_limit_takes_a_full_one_mib_message(app: Flask) -> None:
    webpubsub: WebPubSub = app.extensions["webpubsub"].extension
    webpubsub.on_user_event(lambda event: len(event.data))
    wps = WebPubSubTestClient(app)
    assert wps.post(binary(b""), b"x" * 1024 * 1024).body == b"1048576"
    assert wps.post(binary(b""), b"x" * 1024 * 1200).status == 413


@pytest.mark.parametrize(("length", "status"), [(100, 200), (101, 413)])
def test_a_content_length_given_as_an_int_is_read(
    small_app: Flask, length: int, status: int
) -> None:
    # PEP 3333 makes CONTENT_LENGTH a string, but some servers (pyruvate) pass an int.
    answer = small_app.test_client().post(
        "/eventhandler",
        headers=binary(b""),
        data=b"x" * length,
        environ_overrides={"CONTENT_LENGTH": length},
    )
    assert answer.status_code == status
    assert answer.data == (b"100" if status == 200 else b"The body is larger than 100 bytes.")


def chunks(total: int, size: int = 7) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


@pytest.mark.parametrize(
    ("length", "status"), [(50, 200), (100, 200), (101, 413), (10_000, 413)]
)
def test_chunked_bodies_are_limited_too(small_app: Flask, length: int, status: int) -> None:
    # A server that de-chunks the body gives no Content-Length and sets wsgi.input_terminated,
    # as werkzeug's and gunicorn's servers do.
    answer = small_app.test_client().post(
        "/eventhandler",
        headers={**binary(b""), "Transfer-Encoding": "chunked"},
        input_stream=io.BytesIO(b"".join(chunks(length))),
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert answer.status_code == status
    if status == 200:
        assert answer.data == str(length).encode()
    else:
        assert answer.data == b"The body is larger than 100 bytes."


@pytest.fixture
def server(small_app: Flask) -> Iterator[int]:
    """The small app on a real loopback server; yields its port."""
    with serve(small_app) as httpd:
        yield httpd.server_port


@pytest.mark.parametrize(("length", "status"), [(60, 200), (100, 200), (101, 413), (5_000, 413)])
def test_chunked_bodies_over_a_real_server(server: int, length: int, status: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    try:
        connection.request(
            "POST", "/eventhandler", body=chunks(length, 13), headers=binary(b""),
            encode_chunked=True,
        )
        answer = connection.getresponse()
        body = answer.read()
    finally:
        connection.close()
    assert answer.status == status
    expected = str(length).encode() if status == 200 else b"The body is larger than 100 bytes."
    assert body == expected


def test_a_content_length_over_the_limit_over_a_real_server(server: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    try:
        connection.request("POST", "/eventhandler", body=b"x" * 500, headers=binary(b""))
        answer = connection.getresponse()
        assert (answer.status, answer.read()) == (413, b"The body is larger than 100 bytes.")
    finally:
        connection.close()


# CSRF and app factories -----------------------------------------------------------------------


@pytest.mark.parametrize("order", ["csrf first", "csrf last", "csrf init_app last"])
def test_flask_wtf_csrf_protection_exempts_the_upstream_endpoint(order: str) -> None:
    from flask_wtf.csrf import CSRFProtect

    app = make_app(SECRET_KEY="not-secret-in-tests")

    @app.post("/form")
    def form() -> str:
        return "posted"

    csrf = CSRFProtect()
    if order == "csrf first":
        csrf.init_app(app)
    webpubsub = WebPubSub(app)
    if order != "csrf first":
        csrf.init_app(app)
    webpubsub.on_user_event(lambda event: event.data)
    wps = WebPubSubTestClient(app)
    conn = wps.connection()
    assert conn.user_event("echo", "hi").data == "hi"
    assert conn.user_event("echo", {"a": 1}).data == {"a": 1}
    assert wps.options().status == 200
    # CSRF still guards the app's own forms.
    assert app.test_client().post("/form", data={"a": "b"}).status_code == 400


def test_one_extension_on_two_apps_with_their_own_hubs_and_keys() -> None:
    webpubsub = WebPubSub()
    received: list[tuple[str, str]] = []

    @webpubsub.on_user_event("whoami")
    def whoami(event: UserEvent) -> str:
        received.append((event.hub, event.connection_id))
        return event.hub

    first = make_app(WEBPUBSUB_HUB="alpha")
    second = make_app(
        WEBPUBSUB_HUB="beta",
        WEBPUBSUB_CONNECTION_STRING=f"Endpoint={ENDPOINT};AccessKey={SECONDARY_KEY};Version=1.0;",
        WEBPUBSUB_EVENT_HANDLER_PATH="/hooks",
    )
    webpubsub.init_app(first)
    webpubsub.init_app(second)

    alpha, beta = WebPubSubTestClient(first), WebPubSubTestClient(second)
    assert alpha.connection().user_event("whoami").data == "alpha"
    assert beta.connection().user_event("whoami").data == "beta"
    # Each app knows only its own hub, key and path.
    assert alpha.connection(hub="beta").user_event("whoami").status == 404
    assert WebPubSubTestClient(second, access_key=PRIMARY_KEY).connection().user_event(
        "whoami"
    ).status == 401
    assert WebPubSubTestClient(first, path="/hooks").connection().user_event("x").status == 404
    assert [hub for hub, _ in received] == ["alpha", "beta"]
