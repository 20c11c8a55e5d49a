"""``python -m flask_webpubsub.emulator`` and the state behind the dashboard at ``/`` (the
dashboard itself: test_dashboard.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from typing import Any

import pytest
from websockets.sync.client import connect

from flask_webpubsub.emulator import Emulator, EmulatorThread
from flask_webpubsub.emulator import __main__ as emulator_main

from .conftest import ALL_ROLES, JSON, KEY, bare_url, subprotocols


def _get(url: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.headers.get("Content-Type", ""), response.read()


def test_command_line_prints_the_connection_string_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "flask_webpubsub.emulator", "--port", "0", "--access-key", KEY],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert banner.startswith("Web PubSub emulator on http://127.0.0.1:")
        line = process.stdout.readline().strip()
        assert line.startswith("WEBPUBSUB_CONNECTION_STRING=Endpoint=http://127.0.0.1:")
        assert line.endswith(f";AccessKey={KEY};Version=1.0;")
        url = line.split("Endpoint=")[1].split(";")[0]
        content_type, page = _get(url + "/")
        assert content_type.startswith("text/html")
        assert b"Web PubSub emulator" in page
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "Emulator listening on" in errors
    assert KEY not in errors


@pytest.mark.parametrize("value", ["0", "121", "1.5", "soon"])
def test_the_keepalive_interval_is_checked(value: str) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "flask_webpubsub.emulator", "--keepalive", value],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert refused.returncode == 2
    assert "argument --keepalive" in refused.stderr
    assert "from 1 to 120" in refused.stderr


@pytest.mark.parametrize(("arguments", "heartbeat"), [([], 20), (["--keepalive", "1"], 1),
                                                      (["--keepalive", "120"], 120)])
def test_the_keepalive_interval_reaches_the_emulator(
    monkeypatch: pytest.MonkeyPatch, arguments: list[str], heartbeat: int
) -> None:
    started: list[Emulator] = []
    monkeypatch.setattr(emulator_main, "run", lambda emulator, ready: started.append(emulator))
    assert emulator_main.main(["--port", "0", *arguments]) == 0
    assert [emulator.heartbeat for emulator in started] == [heartbeat]
    assert Emulator().heartbeat == 20  # the service's default, from Python too


def test_command_line_errors() -> None:
    short_key = subprocess.run(
        [sys.executable, "-m", "flask_webpubsub.emulator", "--access-key", "short"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert short_key.returncode == 2
    assert "at least 32 characters" in short_key.stderr


def test_state_shows_hubs_connections_and_the_trace(bare: EmulatorThread) -> None:
    with connect(bare_url(bare, "alice", ALL_ROLES, ["room"]),
                 subprotocols=subprotocols(JSON)) as ws:
        connection_id = json.loads(ws.recv(timeout=5))["connectionId"]
        ws.send(json.dumps({"type": "sendToGroup", "group": "room", "data": "<b>hi</b>"}))
        ws.recv(timeout=5)
        _, body = _get(f"{bare.url}/_emulator/state")
        state: dict[str, Any] = json.loads(body)
    [hub] = state["hubs"]
    assert hub["name"] == "chat"
    assert hub["groups"] == [{"name": "room", "size": 1,
                              "members": [{"connectionId": connection_id, "userId": "alice"}]}]
    assert hub["upstream"] == []  # its clients' events are not forwarded
    [connection] = hub["connections"]
    assert connection["connectionId"] == connection_id
    assert (connection["userId"], connection["groups"]) == ("alice", ["room"])
    assert (connection["protocol"], connection["status"]) == ("json", "connected")
    assert connection["roles"] == sorted(ALL_ROLES)
    texts = [entry["text"] for entry in state["trace"]]
    assert any("joined room" in text for text in texts)
    assert any('<b>hi</b>' in text for text in texts)
    last = state["trace"][-1]["id"]
    _, body = _get(f"{bare.url}/_emulator/state?after={last}")
    later = [entry["text"] for entry in json.loads(body)["trace"]]
    assert later in ([], ["disconnected"])  # only what happened after ``last``
    _, script = _get(f"{bare.url}/_emulator/static/app.js")
    assert b"innerHTML" not in script  # everything is rendered as text
