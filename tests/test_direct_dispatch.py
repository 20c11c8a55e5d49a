"""``WEBPUBSUB_DIRECT_DISPATCH``: the event handler served in front of Flask's request handling.

The same app, with and without it, must answer every upstream request byte for byte alike;
what it skips (the request context, after-request hooks, errorhandlers) is skipped for upstream
requests only, and an app's before_request functions are never skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask, Response, abort, current_app, g, request, request_started
from werkzeug.test import EnvironBuilder, run_wsgi_app

from flask_webpubsub import (
    ConfigurationError,
    ConnectEvent,
    ConnectRejection,
    ConnectResponse,
    UserEvent,
    UserEventResponse,
    WebPubSub,
)
from flask_webpubsub.core.service import build_event_headers
from flask_webpubsub.errors import SignatureError
from flask_webpubsub.testing import HTTPResult, WebPubSubTestClient
from tests.support import CONNECTION_STRING, PRIMARY_KEY, base_url, make_app, serve


def chat_app(direct: bool) -> Flask:
    """Handlers that use every kind of answer: identity, groups, state, abort, errors."""
    app = make_app(WEBPUBSUB_DIRECT_DISPATCH=direct, TESTING=False)
    webpubsub = WebPubSub(app)

    @webpubsub.on_connect
    def connect(event: ConnectEvent) -> ConnectResponse | None:
        if event.claims.get("sub") == ["banned"]:
            abort(403, "Banned.")
        if event.claims.get("sub") == ["mqtt-banned"]:
            raise ConnectRejection(403, "Not on MQTT.", mqtt_code=0x87)
        event.state["visits"] = 1
        return ConnectResponse(
            user_id=event.user_id, groups=["lobby"], roles=["webpubsub.joinLeaveGroup"]
        )

    @webpubsub.on_user_event("echo")
    def echo(event: UserEvent) -> Any:
        return event.data

    @webpubsub.on_user_event("count")
    def count(event: UserEvent) -> UserEventResponse:
        event.state["visits"] = int(event.state.get("visits", 0)) + 1
        return UserEventResponse({"visits": event.state["visits"]})

    @webpubsub.on_user_event("fail")
    def fail(event: UserEvent) -> None:
        raise RuntimeError("a bug in the handler")

    @webpubsub.on_user_event("context")
    def context(event: UserEvent) -> dict[str, Any]:
        g.seen = True
        return {"app": current_app.name, "g": g.seen}

    @webpubsub.on_disconnected
    def disconnected(event: Any) -> None:
        return None

    return app


#: What to send; returns every reply it got.
Exchange = Callable[[WebPubSubTestClient], list[HTTPResult]]


def _session(wps: WebPubSubTestClient) -> list[HTTPResult]:
    connection = wps.connection(user_id="ann", connection_id="c1")
    results: list[HTTPResult] = [connection.connect(subprotocols=["json.webpubsub.azure.v1"])]
    results.append(connection.connected())
    for data in ("text", b"\x00\xffbinary", {"json": [1, 2]}):
        results.append(connection.user_event("echo", data))
    results += [connection.user_event("count"), connection.user_event("count")]
    results += [connection.user_event("fail"), connection.user_event("nobody-listens")]
    results.append(connection.disconnected("bye"))
    return results


#: name -> (what to send, the statuses it gets).
EXCHANGES: dict[str, tuple[Exchange, list[int]]] = {
    "a whole session": (_session, [200, 200, 200, 200, 200, 200, 200, 500, 204, 200]),
    "abort in connect": (lambda wps: [wps.connection(user_id="banned").connect()], [403]),
    "MQTT rejection": (
        lambda wps: [
            wps.connection(user_id="mqtt-banned", mqtt=True).connect(mqtt={"protocol_version": 5})
        ],
        [403],
    ),
    "abuse protection allowed": (lambda wps: [wps.options()], [200]),
    "abuse protection refused": (lambda wps: [wps.options("evil.example.com")], [400]),
    "bad signature": (
        lambda wps: [
            wps.post({"ce-connectionId": "c1", "ce-signature": "sha256=00", "ce-hub": "chat",
                      "ce-type": "azure.webpubsub.user.echo"}, b"x")
        ],
        [401],
    ),
    "unknown hub": (
        lambda wps: [wps.connection(hub="other").user_event("echo", "x")], [404]
    ),
}


@pytest.mark.parametrize("name", list(EXCHANGES))
def test_replies_are_byte_for_byte_those_of_flask_routing(name: str) -> None:
    exchange, statuses = EXCHANGES[name]
    routed = exchange(WebPubSubTestClient(chat_app(direct=False)))
    direct = exchange(WebPubSubTestClient(chat_app(direct=True)))
    assert [r.status for r in routed] == statuses
    assert [(r.status, sorted(r.headers.items()), r.body) for r in direct] == [
        (r.status, sorted(r.headers.items()), r.body) for r in routed
    ]


@pytest.mark.parametrize(
    ("event", "body", "state"),
    [
        ("echo", b"hi", None),  # 200 with a body
        ("count", b"", {"visits": 1}),  # 200 with ce-connectionState
        ("nobody-listens", b"x", None),  # 204
        ("connected", b"{}", None),  # a notification: 200, no body
        ("fail", b"x", None),  # 500
    ],
)
def test_status_lines_and_header_order_are_those_of_flask_routing(
    event: str, body: bytes, state: dict[str, int] | None
) -> None:
    # The test client above compares statuses as numbers and headers as sets; this compares
    # what goes on the wire: the status line and every header in order.
    headers = build_event_headers(
        event, hub="chat", connection_id="c1", keys=[PRIMARY_KEY], user_id="ann",
        state=state, content_type="application/json" if event == "connected" else "text/plain",
    )

    direct, routed = (_wire(chat_app(direct), headers, body) for direct in (True, False))
    assert direct == routed


def test_handlers_have_an_app_context_but_no_request_context() -> None:
    app = chat_app(direct=True)
    webpubsub: WebPubSub = app.extensions["webpubsub"].extension

    @webpubsub.on_user_event("request")
    def uses_request(event: UserEvent) -> str:
        return request.path

    connection = WebPubSubTestClient(app).connect(user_id="ann")
    assert connection.user_event("context").body == b'{"app":"tests.support","g":true}'
    # Flask's own "Working outside of request context." is a bug in the handler: a 500.
    assert connection.user_event("request").status == 500


def test_only_the_path_itself_is_dispatched_directly() -> None:
    app = chat_app(direct=True)
    seen: list[str] = []

    # Flask's request_started signal marks what went through Flask's request handling (a
    # before_request function would turn direct dispatch off: see below).
    def record(sender: Flask, **extra: Any) -> None:
        seen.append(request.path)

    request_started.connect(record, app)

    app.add_url_rule("/eventhandlerish", "other", lambda: "other", methods=["POST"])
    client = app.test_client()
    for path in ("/eventhandler", "/eventhandler/"):
        assert WebPubSubTestClient(app, path=path).connect().user_event("echo", "hi").body == b"hi"
    assert seen == []
    # Sub-paths go through Flask's routing (to the same handler), as do other paths and methods.
    wps = WebPubSubTestClient(app, path="/eventhandler/hubs/chat")
    assert wps.connection(connection_id="c9").user_event("echo", "hi").body == b"hi"
    assert client.post("/eventhandlerish").data == b"other"
    assert client.get("/eventhandler").status_code == 405
    assert client.get("/negotiate").status_code == 200
    assert seen == ["/eventhandler/hubs/chat", "/eventhandlerish", "/eventhandler", "/negotiate"]


def test_the_apps_own_routes_under_the_event_handler_path_stay_its_own() -> None:
    app = make_app(WEBPUBSUB_DIRECT_DISPATCH=True, WEBPUBSUB_EVENT_HANDLER_PATH="/api")
    WebPubSub(app).on_user_event("echo")(lambda event: event.data)
    app.add_url_rule("/api/messages", "messages", lambda: "the app's own", methods=["POST"])
    assert app.test_client().post("/api/messages").data == b"the app's own"
    assert WebPubSubTestClient(app).connect().user_event("echo", "hi").body == b"hi"


def _wire(app: Flask, headers: dict[str, str], body: bytes = b"x") -> tuple[str, list[Any], bytes]:
    """What the app hands the server: status line, headers in order, body. (Flask's test
    client would rebuild the response with the app's response class.)"""
    environ = EnvironBuilder(
        "/eventhandler", method="POST", headers=list(headers.items()), data=body
    )
    app_iter, status, response_headers = run_wsgi_app(app, environ.get_environ())
    try:
        return status, list(response_headers.items()), b"".join(app_iter)
    finally:
        getattr(app_iter, "close", lambda: None)()


def _echo_headers(key: str = PRIMARY_KEY) -> dict[str, str]:
    return build_event_headers(
        "echo", hub="chat", connection_id="c1", keys=[key], content_type="text/plain"
    )


def test_trusted_hosts_are_checked_as_flask_does() -> None:
    apps = [chat_app(direct) for direct in (False, True)]
    for app in apps:
        app.config["TRUSTED_HOSTS"] = ["app.example"]
    bad = [_wire(app, {**_echo_headers(), "Host": "evil.example"}) for app in apps]
    assert bad[0] == bad[1]
    assert bad[0][0] == "400 BAD REQUEST"
    good = [_wire(app, {**_echo_headers(), "Host": "app.example"}) for app in apps]
    assert good[0] == good[1]
    assert good[0][2] == b"x"


def test_a_custom_response_class_still_writes_the_reply() -> None:
    class Framed(Response):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.headers["X-Frame-Options"] = "DENY"

    apps = [chat_app(direct) for direct in (False, True)]
    for app in apps:
        app.response_class = Framed
    answers = [_wire(app, _echo_headers()) for app in apps]
    assert answers[0] == answers[1]
    assert ("X-Frame-Options", "DENY") in answers[0][1]


@pytest.mark.parametrize("trap", [False, True])
def test_an_unexpected_error_is_answered_logged_and_torn_down_as_flask_does(
    caplog: pytest.LogCaptureFixture, trap: bool
) -> None:
    # A bug outside the handlers (here: no hub lookup), or an HTTP error the app traps.
    results = []
    for direct in (False, True):
        app = chat_app(direct)
        app.config["TRAP_HTTP_EXCEPTIONS"] = trap
        torn_down: list[BaseException | None] = []
        app.teardown_appcontext(torn_down.append)
        if not trap:
            app.extensions["webpubsub"].find_hub = None
        caplog.clear()
        headers = _echo_headers("d3Jvbmcta2V5") if trap else _echo_headers()
        wire = _wire(app, headers)
        results.append((wire, [type(e) for e in torn_down], [r.getMessage() for r in
                        caplog.records if r.name == app.logger.name]))
    assert results[0] == results[1]
    wire, torn_down_with, logged = results[0]
    assert wire[0] == "500 INTERNAL SERVER ERROR"
    assert torn_down_with == [SignatureError if trap else TypeError]
    assert logged == ["Exception on /eventhandler [POST]"]


def test_testing_apps_propagate_unexpected_errors_as_flask_does() -> None:
    app = chat_app(direct=True)
    app.testing = True
    app.extensions["webpubsub"].find_hub = None
    with pytest.raises(TypeError):
        WebPubSubTestClient(app).connection().user_event("echo", "x")


@pytest.fixture
def served() -> Iterator[str]:
    """The direct-dispatch app on a real loopback server."""
    with serve(chat_app(direct=True)) as server:
        yield base_url(server)


def test_over_a_real_server(served: str) -> None:
    wps = WebPubSubTestClient(
        base_url=served, hub="chat", connection_string=CONNECTION_STRING
    )
    assert wps.options().status == 200
    connection = wps.connect(user_id="ann")
    assert connection.groups == ["lobby"]
    assert connection.user_event("echo", {"a": 1}).data == {"a": 1}
    assert connection.user_event("count").data == {"visits": 2}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"WEBPUBSUB_DIRECT_DISPATCH": "yes"}, "WEBPUBSUB_DIRECT_DISPATCH must be True or False"),
        (
            {"WEBPUBSUB_DIRECT_DISPATCH": True, "WEBPUBSUB_EVENT_HANDLER_PATH": "/"},
            "WEBPUBSUB_DIRECT_DISPATCH needs a WEBPUBSUB_EVENT_HANDLER_PATH of its own",
        ),
    ],
)
def test_bad_settings_fail_at_init(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        WebPubSub(make_app(**config))


def test_an_apps_before_request_function_is_never_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A token check in a hook: direct dispatch hands the service's requests to Flask, where
    the hook runs, and says so once."""
    app = chat_app(direct=True)

    @app.before_request
    def require_token() -> Any:
        if request.headers.get("X-Token") != "secret":
            return Response("no token", status=401)
        return None

    events = WebPubSubTestClient(app)
    with caplog.at_level(logging.WARNING, "flask_webpubsub"):
        assert events.connection().user_event("echo", "hi").status == 401
        assert events.connection().user_event("echo", "hi").status == 401
    warnings = [r for r in caplog.records if "before_request" in r.getMessage()]
    assert len(warnings) == 1
    assert "require_token" in warnings[0].getMessage()
    # With the token the hook lets the event through to its handler.
    connection = events.connection()
    headers = build_event_headers(
        "echo", hub="chat", connection_id=connection.connection_id, keys=[PRIMARY_KEY],
        content_type="text/plain",
    )
    result = events.post({**headers, "X-Token": "secret"}, b"hi")
    assert (result.status, result.body) == (200, b"hi")


def test_a_blueprint_hook_of_the_extension_counts_too() -> None:
    app = chat_app(direct=True)
    ran: list[str] = []
    app.before_request_funcs.setdefault("webpubsub", []).append(lambda: ran.append("hook"))
    assert WebPubSubTestClient(app).connect().user_event("echo", "hi").body == b"hi"
    assert ran  # connect, connected and the user event went through Flask's handling


def test_the_extensions_own_csrf_hook_does_not_turn_direct_dispatch_off() -> None:
    app = chat_app(direct=True)  # no CSRFProtect: the extension registered its late hook
    assert app.before_request_funcs.get(None)
    started: list[str] = []

    def record(sender: Flask, **extra: Any) -> None:
        started.append(request.path)

    request_started.connect(record, app)
    assert WebPubSubTestClient(app).connect().user_event("echo", "hi").body == b"hi"
    assert started == []
