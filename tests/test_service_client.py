"""The service client the extension creates talks to the configured endpoint, with the REST
API's verbs, paths and bearer tokens. A real HTTP server on 127.0.0.1 records each request."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from http import HTTPStatus
from typing import Any, ClassVar

import jwt
import pytest
from flask import Flask

from flask_webpubsub import WebPubSub

from .support import PRIMARY_KEY, base_url, make_app, serve

STATUSES = {"POST": 202, "PUT": 200, "DELETE": 204, "HEAD": 200}


class Recorder:
    """A WSGI app that records each request and answers as the REST API does, with no body."""

    requests: ClassVar[list[dict[str, Any]]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        self.requests.append(
            {
                "method": environ["REQUEST_METHOD"],
                "path": environ["RAW_URI"],  # as sent: the token's audience names it so
                "authorization": environ.get("HTTP_AUTHORIZATION", ""),
                "content_type": environ.get("CONTENT_TYPE") or None,
                "body": environ["wsgi.input"].read(length),
            }
        )
        status = STATUSES[environ["REQUEST_METHOD"]]
        if environ["PATH_INFO"].endswith((":addToGroups", ":removeFromGroups")):
            status = 200
        start_response(f"{status} {HTTPStatus(status).phrase}", [("Content-Length", "0")])
        return [b""]


@pytest.fixture
def recorder() -> Iterator[str]:
    Recorder.requests = []
    with serve(Recorder()) as server:
        yield base_url(server)


@pytest.fixture
def local_app(recorder: str) -> Flask:
    host, port = recorder.rsplit(":", 1)
    app = make_app(
        WEBPUBSUB_CONNECTION_STRING=f"Endpoint={host};Port={port};AccessKey={PRIMARY_KEY};"
        "Version=1.0;"
    )
    WebPubSub(app)
    return app


def test_operations_reach_the_endpoint_with_bearer_tokens(local_app: Flask, recorder: str) -> None:
    webpubsub: WebPubSub = local_app.extensions["webpubsub"].extension
    with local_app.app_context():
        client = webpubsub.client
        assert client is local_app.extensions["webpubsub"].client
        client.send_to_all({"hello": "all"})
        client.send_to_group("lobby", "hi lobby", content_type="text/plain")
        client.send_to_user("alice", b"\x00\x01", content_type="application/octet-stream")
        client.send_to_connection("c1", {"x": 1})
        client.add_connection_to_group(group="lobby", connection_id="c1")
        client.remove_connection_from_group(group="lobby", connection_id="c1")
        client.add_user_to_group(group="lobby", user_id="alice")
        client.close_connection(connection_id="c1", reason="bye")
        assert client.connection_exists(connection_id="c1")

    got = [(r["method"], r["path"].split("?")[0]) for r in Recorder.requests]
    assert got == [
        ("POST", "/api/hubs/chat/:send"),
        ("POST", "/api/hubs/chat/groups/lobby/:send"),
        ("POST", "/api/hubs/chat/users/alice/:send"),
        ("POST", "/api/hubs/chat/connections/c1/:send"),
        ("PUT", "/api/hubs/chat/groups/lobby/connections/c1"),
        ("DELETE", "/api/hubs/chat/groups/lobby/connections/c1"),
        ("PUT", "/api/hubs/chat/users/alice/groups/lobby"),
        ("DELETE", "/api/hubs/chat/connections/c1"),
        ("HEAD", "/api/hubs/chat/connections/c1"),
    ]
    first = Recorder.requests[0]
    assert first["body"] == b'{"hello": "all"}'
    assert first["content_type"] == "application/json"
    assert Recorder.requests[1]["content_type"] == "text/plain"
    assert Recorder.requests[2]["body"] == b"\x00\x01"
    for recorded in Recorder.requests:
        scheme, token = recorded["authorization"].split(" ", 1)
        assert scheme == "Bearer"
        claims = jwt.decode(token, PRIMARY_KEY, algorithms=["HS256"], options={"verify_aud": False})
        assert claims["aud"] == recorder + recorded["path"]
        assert claims["exp"] > 0
