"""How the emulator calls the upstream, and how it behaves when the upstream is slow, down,
refuses, or a client vanishes."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from flask import Flask, Response, request
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from flask_webpubsub.core.signature import verify
from flask_webpubsub.emulator import EmulatorThread, EventHandler, UpstreamValidationError
from tests.support import free_port, wait_for

from .conftest import (
    ALL_ROLES,
    JSON,
    KEY,
    AppServer,
    Recorded,
    Stack,
    bare_url,
    create_chat_app,
    read_until_closed,
    subprotocols,
)


class FakeUpstream:
    """Records every request (after checking its signature); ``slow`` events take a while."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        app = Flask("fake_upstream")
        app.add_url_rule("/<path:path>", "hook", self.hook, methods=["OPTIONS", "POST"])
        self.server = AppServer(app)

    def hook(self, path: str) -> Response:
        if request.method == "OPTIONS":
            origin = request.headers.get("WebHook-Request-Origin", "")
            return Response(headers={"WebHook-Allowed-Origin": origin})
        headers = dict(request.headers)
        assert verify(headers["Ce-Connectionid"], request.headers.getlist("ce-signature"), [KEY])
        with self.lock:
            self.requests.append({"path": request.full_path, "headers": headers,
                                  "body": request.get_data()})
        if headers["Ce-Eventname"] == "slow":
            time.sleep(1.0)
        if headers["Ce-Type"].startswith("azure.webpubsub.user."):
            return Response(request.get_data(), content_type=request.content_type)
        return Response(status=204)

    def paths(self) -> list[str]:
        with self.lock:
            return [r["path"] for r in self.requests]


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    upstream = FakeUpstream()
    yield upstream
    upstream.server.stop()


def test_templates_headers_and_per_hub_event_settings(
    fake: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    template = f"{fake.server.url}/hooks/{{hub}}/{{event}}?code=s3cret"
    handlers = {
        "chat": [EventHandler.create(template, user_events="echo",
                                     system_events=["connect", "disconnected"])],
    }
    caplog.set_level(logging.INFO, "flask_webpubsub.emulator")
    with EmulatorThread(access_key=KEY, event_handlers=handlers) as emulator, \
            connect(bare_url(emulator, "u", ALL_ROLES), subprotocols=subprotocols(JSON)) as ws:
        connection_id = json.loads(ws.recv(timeout=5))["connectionId"]
        ws.send(json.dumps({"type": "event", "event": "echo", "dataType": "text", "data": "hi"}))
        assert json.loads(ws.recv(timeout=5))["data"] == "hi"
        ws.send(json.dumps({"type": "event", "event": "other", "data": 1}))
        code, seen = read_until_closed(lambda: json.loads(ws.recv(timeout=5)))
        assert code == 1008
        assert "No event handler" in seen[-1]["message"]
        # Other hubs have no event handler: their clients connect without any upstream call.
        with connect(bare_url(emulator, "v", hub="other")) as other:
            other.ping().wait(5)
        wait_for(lambda: len(fake.paths()) == 3, what="disconnected")

    assert fake.paths() == [
        "/hooks/chat/connect?code=s3cret",
        "/hooks/chat/echo?code=s3cret",
        "/hooks/chat/disconnected?code=s3cret",
    ]
    connect_request, echo_request, _ = fake.requests
    headers = connect_request["headers"]
    assert {name: headers[name] for name in (
        "Ce-Specversion", "Ce-Awpsversion", "Ce-Type", "Ce-Hub", "Ce-Eventname", "Ce-Userid",
        "Webhook-Request-Origin",
    )} == {
        "Ce-Specversion": "1.0", "Ce-Awpsversion": "1.0", "Ce-Type": "azure.webpubsub.sys.connect",
        "Ce-Hub": "chat", "Ce-Eventname": "connect", "Ce-Userid": "u",
        "Webhook-Request-Origin": "127.0.0.1",
    }
    assert headers["Ce-Source"] == f"/hubs/chat/client/{connection_id}"
    body = json.loads(connect_request["body"])
    assert body["subprotocols"] == [JSON]
    assert body["claims"]["role"] == ALL_ROLES
    assert echo_request["headers"]["Content-Type"].startswith("text/plain")
    assert echo_request["headers"]["Ce-Subprotocol"] == JSON
    emulator_lines = [r.getMessage() for r in caplog.records if "emulator" in r.name]
    assert emulator_lines
    assert not [line for line in emulator_lines if "s3cret" in line]


def test_slow_upstream_times_out_with_a_clear_log_line(
    fake: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    with EmulatorThread(access_key=KEY, upstream=f"{fake.server.url}/eventhandler",
                        upstream_timeout=0.3) as emulator, \
            connect(bare_url(emulator, "u"), subprotocols=subprotocols(JSON)) as ws:
        json.loads(ws.recv(timeout=5))
        ws.send(json.dumps({"type": "event", "event": "slow", "data": 1, "ackId": 1}))
        code, seen = read_until_closed(lambda: json.loads(ws.recv(timeout=5)))
    assert code == 1008
    assert seen[0]["error"]["name"] == "InternalServerError"
    assert "did not answer within 0.3 s" in seen[-1]["message"]
    assert "did not answer the slow event of connection" in caplog.text
    assert "within 0.3 s" in caplog.text


def test_dead_upstream_fails_connects_and_events_until_it_returns(stack: Stack) -> None:
    stack.emulator.emulator.upstream.retry_delays = ()  # fail at once (retries: test_retries)
    with ExitStack() as sockets:
        ws = sockets.enter_context(connect(stack.negotiate("d"), subprotocols=subprotocols(JSON)))
        json.loads(ws.recv(timeout=5))
        url = stack.negotiate("e")
        port = stack.server.port
        stack.server.stop()

        with pytest.raises(InvalidStatus) as refused:
            connect(url)
        assert refused.value.response.status_code == 500
        assert b"cannot connect" in refused.value.response.body
        ws.send(json.dumps({"type": "event", "event": "echo", "data": 1}))
        code, _ = read_until_closed(lambda: json.loads(ws.recv(timeout=5)))
        assert code == 1008

        stack.server = AppServer(stack.app, port=port)
        with connect(url, subprotocols=subprotocols(JSON)) as back:
            assert json.loads(back.recv(timeout=5))["userId"] == "e"


def test_an_upstream_that_refuses_the_origin_stops_the_start() -> None:
    port = free_port()
    app = create_chat_app(f"Endpoint=http://127.0.0.1:{port};AccessKey={KEY};Version=1.0;",
                          Recorded(), WEBPUBSUB_ALLOWED_ORIGINS=["somewhere.else"])
    server = AppServer(app)
    try:
        emulator = EmulatorThread(port=port, access_key=KEY, upstream=f"{server.url}/eventhandler")
        with pytest.raises(UpstreamValidationError, match="refused the abuse-protection check"):
            emulator.start()
    finally:
        server.stop()


def test_an_unreachable_upstream_is_checked_again_later(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    with EmulatorThread(access_key=KEY, upstream=f"http://127.0.0.1:{port}/eventhandler",
                        upstream_timeout=2) as emulator:
        assert "not reachable yet" in caplog.text
        with pytest.raises(InvalidStatus) as refused:
            connect(bare_url(emulator, "u"))
        assert refused.value.response.status_code == 500


def test_a_client_that_vanishes_is_disconnected_upstream(stack: Stack) -> None:
    with connect(stack.negotiate("ghost")) as ws:
        ws.send("boo")
        assert ws.recv(timeout=5) == "echo: boo"
        connection_id = stack.recorded.events[0][1]
        ws.socket.shutdown(socket.SHUT_RDWR)  # gone, without a close frame
        reason = wait_for(lambda: stack.recorded.of("disconnected", connection_id))[0]
    assert "without a close frame" in reason
