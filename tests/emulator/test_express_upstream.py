"""@azure/web-pubsub-express (pinned in tests/js) as the emulator's upstream, configured as its
README shows: the abuse-protection check, connect, user events with connection state, and the
connected and disconnected notifications, from a Node express app on a loopback port."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from flask_webpubsub.emulator import EmulatorThread, UpstreamValidationError
from tests.support import ROOT, free_port, free_ports

from .conftest import JSON, KEY, bare_url, subprotocols

JS = ROOT / "tests" / "js"
SCRIPT = JS / "service" / "express_upstream.mjs"


class Express:
    """The express app in a Node process; what it reported, line by line."""

    def __init__(self, port: int, allowed: list[str]) -> None:
        node = shutil.which("node")
        if node is None or not (JS / "node_modules" / "@azure" / "web-pubsub-express").is_dir():
            pytest.fail("the JavaScript SDKs are missing: run .ci/install-node-packages.sh")
        self.port = port
        self.url = f"http://127.0.0.1:{port}/eventhandler"
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.process = subprocess.Popen(
            [node, str(SCRIPT)], cwd=JS, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env={**os.environ, "WPS_PORT": str(port), "WPS_ALLOWED": ",".join(allowed)},
        )
        threading.Thread(target=self._read, daemon=True).start()
        assert self.next("ready") == {"kind": "ready"}

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("{"):
                self.lines.put(json.loads(line))

    def next(self, kind: str, timeout: float = 10) -> dict[str, Any]:
        """The next line of that kind (earlier lines of other kinds are skipped)."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"express reported no {kind!r} line") from None
            if line["kind"] == kind:
                return line

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()


@contextmanager
def express(allowed: list[str]) -> Iterator[Express]:
    app = Express(free_port(), allowed)
    try:
        yield app
    finally:
        app.stop()


def test_express_as_the_upstream_of_connect_events_state_and_notifications() -> None:
    emulator_port = free_port()
    # As the README shows, and a second endpoint first: two WebHook-Allowed-Origin lines.
    allowed = ["https://contoso.webpubsub.azure.com", f"http://127.0.0.1:{emulator_port}"]
    with express(allowed) as upstream, EmulatorThread(
        port=emulator_port, access_key=KEY, upstream=upstream.url, upstream_retry_delays=()
    ) as emulator:
        with connect(bare_url(emulator, "alice"), subprotocols=subprotocols(JSON)) as ws:
            hello = json.loads(ws.recv(timeout=10))
            assert (hello["event"], hello["userId"]) == ("connected", "alice")
            connection_id = hello["connectionId"]
            assert upstream.next("connect")["userId"] == "alice"
            connected = upstream.next("connected")
            assert (connected["connectionId"], connected["states"]) == (connection_id,
                                                                        {"visits": 0})
            [hub] = emulator.emulator.snapshot()["hubs"]
            assert hub["connections"][0]["groups"] == ["lobby"]

            for visit, data in enumerate(["hi", "again"], 1):
                ws.send(json.dumps({"type": "event", "event": "echo", "dataType": "text",
                                    "data": data, "ackId": visit}))
                event = upstream.next("event")
                assert (event["event"], event["data"], event["dataType"]) == ("echo", data, "text")
                assert event["states"] == {"visits": visit - 1}  # the state the reply before set
                reply = json.loads(ws.recv(timeout=10))
                assert reply["data"] == {"echo": data, "visits": visit, "dataType": "text"}
                assert json.loads(ws.recv(timeout=10)) == {"type": "ack", "ackId": visit,
                                                           "success": True}
        disconnected = upstream.next("disconnected")
        assert (disconnected["connectionId"], disconnected["states"]) == (connection_id,
                                                                          {"visits": 2})

        # A user express names: an anonymous client becomes "express-user".
        with connect(bare_url(emulator), subprotocols=subprotocols(JSON)) as ws:
            assert json.loads(ws.recv(timeout=10))["userId"] == "express-user"

        with pytest.raises(InvalidStatus) as refused:
            connect(bare_url(emulator, "bob") + "&reject=1")
        assert refused.value.response.status_code == 401
        assert refused.value.response.body == b"express says no"


def test_a_port_in_the_allowed_origin_is_ignored_and_the_host_must_match() -> None:
    emulator_port, other_port = free_ports(2)
    # Another port of the same host passes: the service's origin is a host, with no port.
    with express([f"http://127.0.0.1:{other_port}"]) as upstream, EmulatorThread(
        port=emulator_port, access_key=KEY, upstream=upstream.url
    ) as emulator, connect(bare_url(emulator, "u")) as ws:
        ws.send("x")  # a simple client's message; express answers it, no failure
    with express([f"http://localhost:{emulator_port}"]) as upstream:
        emulator = EmulatorThread(port=emulator_port, access_key=KEY, upstream=upstream.url)
        with pytest.raises(UpstreamValidationError) as refused:
            emulator.start()
    message = str(refused.value)
    assert f"it allows 'localhost:{emulator_port}', not '127.0.0.1'" in message
    assert "--host" in message


def test_the_command_line_exits_1_with_what_express_allowed() -> None:
    emulator_port = free_port()
    with express(["https://contoso.webpubsub.azure.com"]) as upstream:
        completed = subprocess.run(
            [sys.executable, "-m", "flask_webpubsub.emulator", "--port", str(emulator_port),
             "--upstream", upstream.url],
            capture_output=True, text=True, timeout=60, check=False,
        )
    assert completed.returncode == 1
    assert "it allows 'contoso.webpubsub.azure.com', not '127.0.0.1'" in completed.stderr
    assert "http://127.0.0.1:<port>" in completed.stderr
