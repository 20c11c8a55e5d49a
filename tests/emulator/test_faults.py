"""Fault injection, from Python, over HTTP and from the command line: drop a connection, close
one with a code and reason, make upstream calls slow or fail; and the upstream retries (408,
5xx, network errors) that failing calls meet, as the service makes them."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, Response, request
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.sync.client import connect

from flask_webpubsub.emulator import EmulatorThread, UpstreamFault
from tests.support import wait_for

from .conftest import (
    HUB,
    JSON,
    KEY,
    RELIABLE,
    AppServer,
    Stack,
    read_until_closed,
    start_stack,
    subprotocols,
)


@pytest.fixture
def quick() -> Iterator[Stack]:
    """The chat app behind an emulator whose retries come quickly."""
    stack = start_stack(upstream_retry_delays=(0.05, 0.05, 0.05))
    try:
        yield stack
    finally:
        stack.emulator.stop()
        stack.server.stop()


def hello(ws: Any) -> str:
    message = json.loads(ws.recv(timeout=10))
    assert message["event"] == "connected"
    connection_id: str = message["connectionId"]
    return connection_id


def echo(ws: Any, data: str, ack_id: int) -> list[dict[str, Any]]:
    """Send an ``echo`` event; what came back up to its ack."""
    ws.send(json.dumps({"type": "event", "event": "echo", "dataType": "text", "data": data,
                        "ackId": ack_id}))
    seen = []
    while True:
        message = json.loads(ws.recv(timeout=30))
        seen.append(message)
        if message.get("type") == "ack":
            return seen


# -- connections -------------------------------------------------------------------------------


def test_drop_cuts_the_socket_without_a_close_frame(quick: Stack) -> None:
    with connect(quick.negotiate("d"), subprotocols=subprotocols(JSON)) as ws:
        connection_id = hello(ws)
        assert quick.emulator.drop(connection_id)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is None  # no close frame came
    reason = wait_for(lambda: quick.recorded.of("disconnected", connection_id))[0]
    assert "without a close frame" in reason
    assert not quick.emulator.drop(connection_id)  # gone


@pytest.fixture
def pinging() -> Iterator[Stack]:
    """The chat app behind an emulator that pings its clients every half second."""
    stack = start_stack(upstream_retry_delays=(0.05,), heartbeat=0.5, recovery_timeout=10.0)
    try:
        yield stack
    finally:
        stack.emulator.stop()
        stack.server.stop()


def assert_silent_but_open(ws: Any) -> None:
    """No frame comes (no close frame, no data, no pong), and the TCP connection stays open:
    the client's reader would have seen a FIN or a reset, and ended the connection."""
    pong = ws.ping()
    ws.send(json.dumps({"type": "event", "event": "echo", "dataType": "text", "data": "?",
                        "ackId": 99}))  # never read, never answered
    with pytest.raises(TimeoutError):
        ws.recv(timeout=2)  # four of the emulator's heartbeats: it pings no more either
    assert not pong.wait(0.1)
    assert ws.protocol.state is State.OPEN
    assert ws.protocol.close_rcvd is None


def test_a_half_open_drop_goes_silent_and_ends_the_connection(pinging: Stack) -> None:
    with connect(pinging.negotiate("h"), subprotocols=subprotocols(JSON), ping_interval=None,
                 close_timeout=0.2) as ws:
        connection_id = hello(ws)
        assert pinging.emulator.drop_half_open(connection_id)
        reason = wait_for(lambda: pinging.recorded.of("disconnected", connection_id))[0]
        assert "half-open" in reason
        assert_silent_but_open(ws)
        assert pinging.recorded.of("echo", connection_id) == []
        assert not pinging.emulator.drop_half_open(connection_id)  # gone
        assert not pinging.emulator.drop(connection_id)
        trace = [entry["text"] for entry in pinging.emulator.emulator.service.trace.since(0)
                 if entry["connection_id"] == connection_id]
        assert f"disconnected: {reason}" in trace
    # The emulator's stop cuts the silent socket (a leak would warn, and fail the test).


def test_a_reliable_client_recovers_from_a_half_open_drop(pinging: Stack) -> None:
    with connect(pinging.negotiate("r"), subprotocols=subprotocols(RELIABLE),
                 ping_interval=None, close_timeout=0.2) as ws:
        connected = json.loads(ws.recv(timeout=10))
        connection_id = connected["connectionId"]
        assert pinging.emulator.drop_half_open(connection_id)
        [state] = [c["status"] for hub in pinging.emulator.emulator.snapshot()["hubs"]
                   for c in hub["connections"] if c["connectionId"] == connection_id]
        assert state == "recovering"
        assert_silent_but_open(ws)
        assert pinging.recorded.of("disconnected", connection_id) == []
    with connect(
        f"{pinging.ws_url}/client/hubs/{HUB}?awps_connection_id={connection_id}"
        f"&awps_reconnection_token={connected['reconnectionToken']}",
        subprotocols=subprotocols(RELIABLE),
    ) as again:
        assert json.loads(again.recv(timeout=5))["connectionId"] == connection_id
        seen = echo(again, "back", 1)
    assert seen[-1]["success"] is True
    assert pinging.recorded.of("echo", connection_id) == ["back"]  # not the unread "?"


def test_close_with_a_code_and_reason(quick: Stack) -> None:
    with connect(quick.negotiate("c"), subprotocols=subprotocols(JSON)) as ws:
        connection_id = hello(ws)
        assert quick.emulator.close_connection(connection_id, code=4001, reason="maintenance")
        code, seen = read_until_closed(lambda: json.loads(ws.recv(timeout=5)))
        assert ws.close_reason == "maintenance"
    assert code == 4001
    assert seen == [{"type": "system", "event": "disconnected", "message": "maintenance"}]
    assert wait_for(lambda: quick.recorded.of("disconnected", connection_id)) == ["maintenance"]
    assert not quick.emulator.close_connection(connection_id, code=1000)


# -- upstream ----------------------------------------------------------------------------------


def test_a_slow_upstream(quick: Stack) -> None:
    with connect(quick.negotiate("s"), subprotocols=subprotocols(JSON)) as ws:
        hello(ws)
        quick.emulator.add_upstream_fault(delay=0.5, event="echo", count=1)
        started = time.monotonic()
        assert echo(ws, "late", 1)[-1]["success"] is True
        assert time.monotonic() - started >= 0.5
        started = time.monotonic()
        assert echo(ws, "quick", 2)[-1]["success"] is True
        assert time.monotonic() - started < 0.5  # count=1: the fault is spent


def test_a_delay_past_the_timeout_times_out(stack: Stack) -> None:
    stack.emulator.emulator.upstream.timeout = 0.3
    stack.emulator.add_upstream_fault(delay=5, event="echo")
    with connect(stack.negotiate("t"), subprotocols=subprotocols(JSON)) as ws:
        hello(ws)
        ws.send(json.dumps({"type": "event", "event": "echo", "data": 1, "ackId": 1}))
        code, seen = read_until_closed(lambda: json.loads(ws.recv(timeout=5)))
    assert code == 1008
    assert "did not answer within 0.3 s" in seen[0]["error"]["message"]


def test_a_failing_upstream_is_retried_as_the_service_does(quick: Stack) -> None:
    with connect(quick.negotiate("r"), subprotocols=subprotocols(JSON)) as ws:
        hello(ws)
        # One 503 and one network error, then the app: the event succeeds on its third try.
        quick.emulator.add_upstream_fault(status=503, event="echo", count=1)
        quick.emulator.add_upstream_fault(UpstreamFault(status=0, event="echo", count=1))
        assert echo(ws, "third time", 1)[-1]["success"] is True
        assert quick.recorded.of("echo") == ["third time"]
        # Four failures: every try fails, so the event fails and the connection ends.
        quick.emulator.add_upstream_fault(status=500, event="echo", count=4)
        ws.send(json.dumps({"type": "event", "event": "echo", "data": 1, "ackId": 2}))
        code, seen = read_until_closed(lambda: json.loads(ws.recv(timeout=5)))
    assert code == 1008
    assert "answered the 'echo' event with 500" in seen[0]["error"]["message"]
    assert quick.emulator.emulator.upstream_faults() == []  # all spent


def test_a_fault_on_connect(quick: Stack) -> None:
    quick.emulator.add_upstream_fault(status=403, event="connect")
    with pytest.raises(Exception, match="403"):
        connect(quick.negotiate("x"))
    assert quick.emulator.clear_upstream_faults() == 1
    with connect(quick.negotiate("x"), subprotocols=subprotocols(JSON)) as ws:
        hello(ws)


class FlakyUpstream:
    """Answers the events named in ``failures`` with each status in turn, then 204; records
    every request's ce-id and body."""

    def __init__(self, failures: dict[str, list[int]]) -> None:
        self.failures = failures
        self.requests: list[tuple[str, str, bytes]] = []
        self.lock = threading.Lock()
        app = Flask("flaky")
        app.add_url_rule("/eventhandler", "hook", self.hook, methods=["OPTIONS", "POST"])
        self.server = AppServer(app)

    def hook(self) -> Response:
        if request.method == "OPTIONS":
            return Response(headers={"WebHook-Allowed-Origin": "*"})
        event = request.headers["ce-eventName"]
        with self.lock:
            self.requests.append((event, request.headers["ce-id"], request.get_data()))
            pending = self.failures.get(event, [])
            status = pending.pop(0) if pending else 204
        return Response(status=status)

    def of(self, event: str) -> list[tuple[str, bytes]]:
        with self.lock:
            return [(ce_id, body) for name, ce_id, body in self.requests if name == event]


@pytest.mark.parametrize(("failures", "tries", "ok"), [
    ([503, 502], 3, True),
    ([408], 2, True),
    ([500, 500, 500, 500], 4, False),
    ([400], 1, False),  # a client error is the app's answer: not retried
    ([404], 1, False),
])
def test_retries_reuse_the_event_id_and_body(failures: list[int], tries: int, ok: bool) -> None:
    upstream = FlakyUpstream({"ping": list(failures)})
    try:
        with EmulatorThread(access_key=KEY, upstream=f"{upstream.server.url}/eventhandler",
                            upstream_retry_delays=(0.05, 0.05, 0.05)) as emulator, \
                connect(_client(emulator), subprotocols=subprotocols(JSON)) as ws:
            hello(ws)
            ws.send(json.dumps({"type": "event", "event": "ping", "dataType": "text",
                                "data": "once", "ackId": 1}))
            answer = json.loads(ws.recv(timeout=10))
    finally:
        upstream.server.stop()
    assert answer["success"] is ok
    calls = upstream.of("ping")
    assert len(calls) == tries
    assert len({ce_id for ce_id, _ in calls}) == 1
    assert {body for _, body in calls} == {b"once"}


def test_retries_wait_as_the_service_does(caplog: pytest.LogCaptureFixture) -> None:
    upstream = FlakyUpstream({"ping": [503]})
    try:
        with EmulatorThread(access_key=KEY, upstream=f"{upstream.server.url}/eventhandler"
                            ) as emulator, \
                connect(_client(emulator), subprotocols=subprotocols(JSON)) as ws:
            hello(ws)
            started = time.monotonic()
            ws.send(json.dumps({"type": "event", "event": "ping", "data": 1, "ackId": 1}))
            assert json.loads(ws.recv(timeout=10))["success"] is True
            waited = time.monotonic() - started
    finally:
        upstream.server.stop()
    assert 1.0 <= waited < 2.5  # the first retry comes after 1 s
    assert "503; trying again in 1 s" in caplog.text


def _client(emulator: EmulatorThread, user: str = "u") -> str:
    from .conftest import bare_url

    return bare_url(emulator, user)


# -- over HTTP ---------------------------------------------------------------------------------


def _http(emulator: EmulatorThread, method: str, path: str, body: Any = None,
          headers: dict[str, str] | None = None) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", emulator.emulator.port, timeout=10)
    data = body if isinstance(body, bytes) else (None if body is None else json.dumps(body))
    sent = {"Content-Type": "application/json"} if data is not None else {}
    try:
        connection.request(method, path, body=data, headers={**sent, **(headers or {})})
        response = connection.getresponse()
        raw = response.read()
        if not raw or "json" not in (response.getheader("Content-Type") or ""):
            return response.status, raw or None
        return response.status, json.loads(raw)
    finally:
        connection.close()


def test_faults_over_http(quick: Stack) -> None:
    emulator = quick.emulator
    status, fault = _http(emulator, "POST", "/_emulator/faults/upstream",
                          {"status": 503, "event": "echo", "count": 1})
    assert (status, fault) == (201, {"status": 503, "event": "echo", "count": 1, "delay": 0.0,
                                     "id": fault["id"]})
    assert _http(emulator, "GET", "/_emulator/faults/upstream") == (200, {"upstream": [fault]})
    assert _http(emulator, "DELETE", "/_emulator/faults/upstream") == (200, {"cleared": 1})
    with connect(quick.negotiate("h"), subprotocols=subprotocols(JSON)) as ws:
        connection_id = hello(ws)
        status, _ = _http(emulator, "POST", f"/_emulator/connections/{connection_id}/:close",
                          {"code": 4002, "reason": "over http"})
        assert status == 204
        code, _ = read_until_closed(lambda: json.loads(ws.recv(timeout=5)))
    assert code == 4002
    with connect(quick.negotiate("h"), subprotocols=subprotocols(JSON)) as ws:
        connection_id = hello(ws)
        assert _http(emulator, "POST", f"/_emulator/connections/{connection_id}/:drop")[0] == 204
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
    with connect(quick.negotiate("h"), subprotocols=subprotocols(JSON), ping_interval=None,
                 close_timeout=0.2) as ws:
        connection_id = hello(ws)
        path = f"/_emulator/connections/{connection_id}/:dropHalfOpen"
        assert _http(emulator, "POST", path, {"hub": "chat"})[0] == 204
        wait_for(lambda: quick.recorded.of("disconnected", connection_id))
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)
        assert _http(emulator, "POST", path)[0] == 404


@pytest.mark.parametrize(("method", "path", "body", "headers", "status"), [
    ("POST", "/_emulator/faults/upstream", {"status": 700}, {}, 400),
    ("POST", "/_emulator/faults/upstream", {"delay": -1}, {}, 400),
    ("POST", "/_emulator/faults/upstream", {"count": 1}, {}, 400),
    ("POST", "/_emulator/faults/upstream", {"status": "5xx"}, {}, 400),
    ("POST", "/_emulator/faults/upstream", {"surprise": 1}, {}, 400),
    ("POST", "/_emulator/faults/upstream", [1], {}, 400),
    ("POST", "/_emulator/faults/upstream", b"status=500", {"Content-Type": "text/plain"}, 415),
    ("POST", "/_emulator/faults/upstream", b"{", {}, 400),
    ("POST", "/_emulator/faults/upstream", {"status": 500},
     {"Origin": "https://attacker.example"}, 403),
    ("POST", "/_emulator/faults/upstream", {"status": 500}, {"Host": "attacker.example"}, 403),
    ("POST", "/_emulator/connections/nobody/:drop", None, {}, 404),
    ("POST", "/_emulator/connections/nobody/:dropHalfOpen", None, {}, 404),
    ("POST", "/_emulator/connections/nobody/:dropHalfOpen", None,
     {"Host": "attacker.example"}, 403),
    ("POST", "/_emulator/connections/nobody/:dropHalfOpen", b"x", {"Content-Type": "text/plain"},
     415),
    ("POST", "/_emulator/connections/nobody/:close", {"code": 4000}, {}, 404),
    ("POST", "/_emulator/connections/nobody/:close", {"code": 1006}, {}, 400),
    ("POST", "/_emulator/connections/nobody/:close", {"code": 4000, "reason": "x" * 121}, {},
     400),
])
def test_the_http_api_refuses_what_it_cannot_do(
    bare: EmulatorThread, method: str, path: str, body: Any, headers: dict[str, str],
    status: int,
) -> None:
    assert _http(bare, method, path, body, headers)[0] == status
    assert bare.emulator.upstream_faults() == []


# -- from the command line ---------------------------------------------------------------------


def _cli(emulator: EmulatorThread, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flask_webpubsub.emulator", "fault", "--emulator", emulator.url,
         *arguments],
        capture_output=True, text=True, timeout=30, check=False,
    )


def test_faults_from_the_command_line(quick: Stack) -> None:
    emulator = quick.emulator
    added = _cli(emulator, "upstream", "delay=0.2,event=echo,count=2")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["delay"] == 0.2
    assert json.loads(_cli(emulator, "list").stdout)["upstream"][0]["count"] == 2
    assert json.loads(_cli(emulator, "clear").stdout) == {"cleared": 1}
    with connect(quick.negotiate("cli"), subprotocols=subprotocols(JSON)) as ws:
        connection_id = hello(ws)
        closed = _cli(emulator, "close", connection_id, "--code", "4003", "--reason", "bye")
        assert closed.returncode == 0, closed.stderr
        code, _ = read_until_closed(lambda: json.loads(ws.recv(timeout=5)))
    assert code == 4003
    with connect(quick.negotiate("cli"), subprotocols=subprotocols(JSON), ping_interval=None,
                 close_timeout=0.2) as ws:
        connection_id = hello(ws)
        hung = _cli(emulator, "drop", connection_id, "--half-open")
        assert hung.returncode == 0, hung.stderr
        assert "half-open" in wait_for(lambda: quick.recorded.of("disconnected", connection_id))[0]
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)
    missing = _cli(emulator, "drop", connection_id)
    assert missing.returncode == 1
    assert "No such connection" in missing.stderr
    bad = _cli(emulator, "upstream", "status=teapot")
    assert bad.returncode == 2
    assert "status must be an integer" in bad.stderr


def test_a_fault_from_the_start_and_an_unreachable_emulator() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "flask_webpubsub.emulator", "--port", "0", "--access-key", KEY,
         "--fault", "status=503,event=message", "--fault", "delay=1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[4]
        listed = subprocess.run(
            [sys.executable, "-m", "flask_webpubsub.emulator", "fault", "--emulator", url, "list"],
            capture_output=True, text=True, timeout=30, check=False,
        )
        faults = json.loads(listed.stdout)["upstream"]
        assert [f.get("status") for f in faults] == [503, None]
        assert [f["delay"] for f in faults] == [0.0, 1.0]
    finally:
        process.terminate()
        process.communicate(timeout=10)
    gone = subprocess.run(
        [sys.executable, "-m", "flask_webpubsub.emulator", "fault", "--emulator", url, "list"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert gone.returncode == 1
    assert "cannot reach the emulator" in gone.stderr
