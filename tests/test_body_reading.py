"""The event's body is read once and left where Flask finds it: a handler, a hook or a
middleware that reads the request the ordinary way gets the same bytes, and never waits on an
empty socket. Over real HTTP (werkzeug's server), where a second read of the socket would hang.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask, Response, request

from flask_webpubsub import UserEvent, WebPubSub
from flask_webpubsub.core.service import build_event_headers
from tests.support import PRIMARY_KEY, make_app, serve

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

BODY = {"text": "hé", "n": 1}

READERS: dict[str, Callable[[], Any]] = {
    "get_json": lambda: request.get_json(),
    "data": lambda: json.loads(request.data),
    "get_data": lambda: json.loads(request.get_data(as_text=True)),
    "stream": lambda: json.loads(request.stream.read()),
}


def post_event(port: int, *, chunked: bool = False, name: str = "echo") -> tuple[int, bytes]:
    headers = build_event_headers(
        name, hub="chat", connection_id="c1", keys=[PRIMARY_KEY], content_type="application/json"
    )
    body = json.dumps(BODY).encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        if chunked:
            connection.putrequest("POST", "/eventhandler")
            for header, value in headers.items():
                connection.putheader(header, value)
            connection.putheader("Transfer-Encoding", "chunked")
            connection.endheaders()
            connection.send(f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
        else:
            connection.request("POST", "/eventhandler", body=body, headers=headers)
        reply = connection.getresponse()
        return reply.status, reply.read()
    finally:
        connection.close()


def app_reading_in_handler(read: Callable[[], Any]) -> Flask:
    app = make_app()
    webpubsub = WebPubSub(app)

    @webpubsub.on_user_event("echo")
    def echo(event: UserEvent) -> Any:
        return {"event": event.data, "request": read()}

    return app


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("way", sorted(READERS))
def test_a_handler_reads_the_request_the_flask_way(way: str, chunked: bool) -> None:
    with serve(app_reading_in_handler(READERS[way])) as server:
        status, body = post_event(server.server_port, chunked=chunked)
    assert status == 200
    assert json.loads(body) == {"event": BODY, "request": BODY}


@pytest.mark.parametrize("way", ["get_json", "data", "get_data"])
def test_a_before_request_hook_reads_it_first(way: str) -> None:
    """(``request.stream`` is werkzeug's consume-once stream: a hook that reads it leaves
    nothing for anybody, Flask included.)"""
    app = app_reading_in_handler(lambda: None)
    seen: list[Any] = []

    @app.before_request
    def log_body() -> None:
        seen.append(READERS[way]())

    with serve(app) as server:
        status, body = post_event(server.server_port)
    assert status == 200
    assert json.loads(body) == {"event": BODY, "request": None}
    assert seen == [BODY]


def test_an_after_request_hook_reads_it_too() -> None:
    app = app_reading_in_handler(lambda: None)
    seen: list[Any] = []

    @app.after_request
    def log_body(response: Response) -> Response:
        seen.append(request.get_json())
        return response

    with serve(app) as server:
        assert post_event(server.server_port)[0] == 200
    assert seen == [BODY]


@pytest.mark.parametrize("direct", [False, True], ids=["routed", "direct dispatch"])
def test_a_wsgi_middleware_reads_the_input_after_the_app(direct: bool) -> None:
    app = make_app(WEBPUBSUB_DIRECT_DISPATCH=direct)
    WebPubSub(app).on_user_event("echo")(lambda event: event.data)
    inner = app.wsgi_app
    seen: list[bytes] = []

    def logging_middleware(
        environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        result = inner(environ, start_response)
        seen.append(environ["wsgi.input"].read())
        return result

    app.wsgi_app = logging_middleware  # type: ignore[method-assign]
    with serve(app) as server:
        status, body = post_event(server.server_port)
    assert (status, json.loads(body)) == (200, BODY)
    assert [json.loads(b) for b in seen] == [BODY]
