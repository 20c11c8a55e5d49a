"""The emulator keeps secrets and stays available (issue #13): an upstream URL's ``?code=`` never
shows, a client's token is never logged, the page answers only its own hosts, slow upstream
calls do not hold up other connections, and a connection state over the limit is refused."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import websockets
from aiohttp import web
from flask import Flask, Response, request
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from flask_webpubsub.core.state import MAX_STATE_BYTES
from flask_webpubsub.emulator import EmulatorThread, UpstreamValidationError
from tests.support import wait_for

from .conftest import JSON, KEY, AppServer, bare_url, read_until_closed, subprotocols

SECRET = "s3cretFunctionKey"

#: Replies no HTTP client can use, each a way an upstream's reply can be malformed.
MALFORMED = {
    "status line": b"HTTP/1.1 abc OK\r\n\r\n",
    "not HTTP": b"\x00\x01garbage\r\n\r\n",
    "content length": b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
    "short body": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc",
    "chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "header": b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
}


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every level of the emulator's and its HTTP server's logs (not the test clients')."""
    with caplog.at_level(logging.DEBUG, logger="flask_webpubsub"), \
            caplog.at_level(logging.DEBUG, logger="aiohttp"):
        yield caplog


def emulator_log(caplog: pytest.LogCaptureFixture) -> str:
    """What the emulator (and its HTTP server) logged, not the upstream app's own server."""
    return "\n".join(
        record.getMessage() for record in caplog.records
        if record.name.startswith(("flask_webpubsub", "aiohttp"))
    )


class RawUpstream:
    """Passes the abuse-protection check, then answers every event with ``reply`` bytes."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            with client:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = client.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                if data.startswith(b"OPTIONS"):
                    client.sendall(b"HTTP/1.1 200 OK\r\nWebHook-Allowed-Origin: *\r\n"
                                   b"Content-Length: 0\r\nConnection: close\r\n\r\n")
                else:
                    client.sendall(self.reply)

    def close(self) -> None:
        self.server.close()


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_an_upstream_urls_secret_never_shows(
    case: str, debug_log: pytest.LogCaptureFixture
) -> None:
    upstream = RawUpstream(MALFORMED[case])
    try:
        with EmulatorThread(
            access_key=KEY, upstream_retry_delays=(),
            upstream=f"http://127.0.0.1:{upstream.port}/eventhandler?code={SECRET}&x=1",
        ) as emulator:
            with pytest.raises(InvalidStatus) as refused:
                connect(bare_url(emulator, "u"))
            answer = refused.value.response
            trace = json.dumps(emulator.emulator.service.trace.since(0))
            page = json.dumps(emulator.emulator.snapshot())
    finally:
        upstream.close()
    assert answer.status_code == 500
    assert b"connect event failed" in answer.body
    assert b"127.0.0.1" not in answer.body  # the client learns nothing of the upstream
    logged = emulator_log(debug_log)
    for text in (answer.body.decode(), trace, page, logged):
        assert SECRET not in text
    assert "connect failed" in trace
    assert f"127.0.0.1:{upstream.port}/eventhandler" in logged  # the log names the URL


def test_a_secret_in_a_refusing_upstreams_answer_is_masked(
    debug_log: pytest.LogCaptureFixture,
) -> None:
    app = Flask("echoes_its_url")

    @app.route("/eventhandler", methods=["OPTIONS"])
    def refuse() -> Response:
        return Response(f"no: {request.url}", status=400)

    server = AppServer(app)
    try:
        emulator = EmulatorThread(access_key=KEY,
                                  upstream=f"{server.url}/eventhandler?code={SECRET}")
        with pytest.raises(UpstreamValidationError) as refused:
            emulator.start()
    finally:
        server.stop()
    assert "answered 400" in str(refused.value)
    assert SECRET not in str(refused.value)
    assert "refused the abuse-protection check" in emulator_log(debug_log)
    assert SECRET not in emulator_log(debug_log)


#: Request lines a client may get wrong, each carrying its token.
BAD_REQUESTS = [
    b"GET /client/hubs/chat?access_token=%s HTTP/1.1 extra\r\nHost: x\r\n\r\n",
    b"GET /client/hubs/chat?access_token=%s\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /client/hubs/chat?access_token=%s HTTP/9.9\r\nHost: x\r\n\r\n",
    b"G\x01T /client/hubs/chat?access_token=%s HTTP/1.1\r\n\r\n",
    b"GET /client/hubs/chat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nBad Header\r\n\r\n",
    b"GET /client/hubs/chat?access_token=%s HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
]


def test_a_clients_token_is_never_logged(
    bare: EmulatorThread, debug_log: pytest.LogCaptureFixture
) -> None:
    token = bare_url(bare, "u").split("access_token=")[1]
    signature = token.rsplit(".", 1)[1]
    for line in BAD_REQUESTS:
        with socket.create_connection(("127.0.0.1", bare.emulator.port), timeout=5) as raw:
            raw.sendall(line % token.encode())
            assert raw.recv(4096).startswith(b"HTTP/1.")
    with pytest.raises(InvalidStatus):  # a good line, a bad token
        connect(bare_url(bare, "u").replace(signature, signature[::-1]))
    wait_for(lambda: emulator_log(debug_log).count("Error handling request") >= 3,
             what="the log lines")
    logged = emulator_log(debug_log)
    assert "Error handling request" in logged
    assert signature not in logged
    assert token.split(".")[1] not in logged


def _get(port: int, path: str, host: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("path", ["/", "/_emulator/state", "/_emulator/static/app.js",
                                  "/_emulator/faults/upstream"])
def test_the_page_answers_only_its_own_hosts(bare: EmulatorThread, path: str) -> None:
    port = bare.emulator.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}",
                 f"LOCALHOST:{port}", f"10.1.2.3:{port}"):
        assert _get(port, path, host)[0] == 200, host
    for host in (f"attacker.example:{port}", "attacker.example", f"localhost.attacker.example:"
                 f"{port}", "", f"127.0.0.1.nip.io:{port}"):
        status, body = _get(port, path, host)
        assert (status, body) == (403, b"Forbidden: unknown Host."), host


def test_a_named_host_is_served_too() -> None:
    with EmulatorThread(host="localhost", access_key=KEY) as emulator:
        port = emulator.emulator.port
        assert _get(port, "/_emulator/state", f"localhost:{port}")[0] == 200
        assert _get(port, "/_emulator/state", f"evil:{port}")[0] == 403


class HangingUpstream:
    """An upstream whose ``hang`` events wait until released; others answer at once."""

    def __init__(self) -> None:
        self.port = 0
        self.started = threading.Event()
        self.waiting = 0
        self._loop = asyncio.new_event_loop()
        self._release: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self.started.wait(10)

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._release = asyncio.Event()

        async def hook(request: web.Request) -> web.Response:
            if request.method == "OPTIONS":
                return web.Response(headers={"WebHook-Allowed-Origin": "*"})
            if request.headers.get("ce-eventName") == "hang":
                self.waiting += 1
                assert self._release is not None
                await self._release.wait()
            return web.Response(status=204)

        app = web.Application()
        app.router.add_route("*", "/{path:.*}", hook)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self.started.set()
        await self._release.wait()
        await runner.cleanup()

    def release(self) -> None:
        assert self._release is not None
        with contextlib.suppress(RuntimeError):  # released already: its loop is closed
            self._loop.call_soon_threadsafe(self._release.set)

    def stop(self) -> None:
        self.release()
        self._thread.join(10)


def test_hanging_upstream_calls_do_not_delay_other_connections() -> None:
    """250 calls wait on the upstream (more than aiohttp's default pool of 100, and the 200 the
    emulator used to allow): a new client still connects at once."""
    upstream = HangingUpstream()
    hanging = 250

    async def scenario(emulator: EmulatorThread) -> float:
        sockets = []
        try:
            for i in range(hanging):
                ws = await websockets.connect(bare_url(emulator, f"u{i}"),
                                              subprotocols=subprotocols(JSON))
                await ws.recv()
                sockets.append(ws)
            for ws in sockets:
                await ws.send(json.dumps({"type": "event", "event": "hang", "data": 1}))
            deadline = time.monotonic() + 30
            while upstream.waiting < hanging and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert upstream.waiting == hanging
            started = time.perf_counter()
            async with websockets.connect(bare_url(emulator, "late"),
                                          subprotocols=subprotocols(JSON), open_timeout=30) as late:
                assert json.loads(await late.recv())["userId"] == "late"
            return time.perf_counter() - started
        finally:
            upstream.release()
            for ws in sockets:
                await ws.close()

    try:
        with EmulatorThread(access_key=KEY, upstream=f"http://127.0.0.1:{upstream.port}/eh",
                            upstream_timeout=60) as emulator:
            elapsed = asyncio.run(scenario(emulator))
    finally:
        upstream.stop()
    assert elapsed < 1.0, f"a new client waited {elapsed:.2f} s behind hanging upstream calls"


def _state_of(size: int) -> str:
    """A ``ce-connectionState`` value exactly ``size`` bytes long (base64 of a JSON object)."""
    filler = "x" * (size * 3 // 4 - 8)
    value = base64.b64encode(json.dumps({"a": filler}, separators=(",", ":")).encode()).decode()
    while len(value) < size:
        filler += "x"
        value = base64.b64encode(json.dumps({"a": filler}, separators=(",", ":")).encode()
                                 ).decode()
    return value


class StateUpstream:
    """Sets a connection state of ``size`` bytes on connect or on the ``grow`` event."""

    def __init__(self) -> None:
        self.connect_state_size = 0
        self.seen_states: list[str | None] = []
        app = Flask("state_upstream")
        app.add_url_rule("/eventhandler", "hook", self.hook, methods=["OPTIONS", "POST"])
        self.server = AppServer(app)

    def hook(self) -> Response:
        if request.method == "OPTIONS":
            return Response(headers={"WebHook-Allowed-Origin": "*"})
        event = request.headers["ce-eventName"]
        self.seen_states.append(request.headers.get("ce-connectionState"))
        headers: dict[str, Any] = {}
        if event == "connect" and self.connect_state_size:
            headers["ce-connectionState"] = _state_of(self.connect_state_size)
        if event == "grow":
            headers["ce-connectionState"] = _state_of(int(request.get_data()))
        return Response(status=204, headers=headers)


@pytest.fixture
def state_upstream() -> Iterator[StateUpstream]:
    upstream = StateUpstream()
    yield upstream
    upstream.server.stop()


def test_a_connect_reply_with_a_state_over_the_limit_is_refused(
    state_upstream: StateUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    with EmulatorThread(access_key=KEY, upstream=f"{state_upstream.server.url}/eventhandler",
                        upstream_retry_delays=()) as emulator:
        state_upstream.connect_state_size = MAX_STATE_BYTES
        with connect(bare_url(emulator, "u"), subprotocols=subprotocols(JSON)) as ws:
            json.loads(ws.recv(timeout=5))
        state_upstream.connect_state_size = MAX_STATE_BYTES + 4
        with pytest.raises(InvalidStatus) as refused:
            connect(bare_url(emulator, "u"))
    assert refused.value.response.status_code == 500
    assert f"longer than the {MAX_STATE_BYTES}-byte limit" in refused.value.response.body.decode()
    assert "ce-connectionState is 4100 bytes" in caplog.text


def test_a_user_event_reply_with_a_state_over_the_limit_fails_the_event(
    state_upstream: StateUpstream,
) -> None:
    with EmulatorThread(access_key=KEY, upstream=f"{state_upstream.server.url}/eventhandler",
                        upstream_retry_delays=()) as emulator, \
            connect(bare_url(emulator, "u"), subprotocols=subprotocols(JSON)) as ws:
        json.loads(ws.recv(timeout=5))
        ws.send(json.dumps({"type": "event", "event": "grow", "dataType": "text",
                            "data": str(MAX_STATE_BYTES), "ackId": 1}))
        assert json.loads(ws.recv(timeout=5))["success"] is True
        ws.send(json.dumps({"type": "event", "event": "grow", "dataType": "text",
                            "data": str(MAX_STATE_BYTES + 1), "ackId": 2}))
        code, seen = read_until_closed(lambda: json.loads(ws.recv(timeout=5)))
    assert code == 1008
    assert seen[0]["ackId"] == 2
    assert seen[0]["error"]["name"] == "InternalServerError"
    assert "limit" in seen[0]["error"]["message"]
    # The state that fit was sent with the next event; the one that did not never was.
    assert state_upstream.seen_states[-1] is not None
    assert all(s is None or len(s) <= MAX_STATE_BYTES for s in state_upstream.seen_states)
