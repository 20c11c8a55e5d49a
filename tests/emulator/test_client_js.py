"""The official JavaScript client (@azure/web-pubsub-client, pinned in tests/js) against the
emulator and the real extension: each scenario is a Node script in tests/js/client that reports
what the client saw as JSON lines; the app's handlers record what the upstream saw."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest

from tests.support import ROOT, wait_for

from .conftest import Stack

JS = ROOT / "tests" / "js"
SCRIPTS = JS / "client"


def run_node(stack: Stack, script: str, timeout: float = 60, **env: str) -> list[dict[str, Any]]:
    """Run a scenario to its end; the lines it reported (a failed scenario fails the test)."""
    node = shutil.which("node")
    if node is None or not (JS / "node_modules" / "@azure" / "web-pubsub-client").is_dir():
        pytest.fail("the JavaScript SDKs are missing: run .ci/install-node-packages.sh (Node 20)")
    completed = subprocess.run(
        [node, str(SCRIPTS / script)],
        cwd=JS,
        env={
            **os.environ,
            "WPS_APP": stack.server.url,
            "WPS_CONNECTION_STRING": stack.emulator.connection_string,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
    failures = [line["error"] for line in lines if line["kind"] == "failed"]
    assert not failures, f"{script} failed: {failures}\n{completed.stderr[-4000:]}"
    assert completed.returncode == 0, f"{script} exited {completed.returncode}: {completed.stderr}"
    return lines


def reported(lines: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(line for line in lines if line["kind"] == kind)


@pytest.mark.parametrize("protocol", ["reliable", "json"])
def test_an_idle_client_keeps_its_connection_for_a_minute(stack: Stack, protocol: str) -> None:
    # The client pings every 20 s; an emulator that refused the ping closed it after 20 s.
    idle = "60000" if protocol == "reliable" else "25000"
    lines = run_node(stack, "idle.mjs", timeout=120, WPS_IDLE_MS=idle, WPS_PROTOCOL=protocol)
    connection_id = reported(lines, "connected")["connectionId"]
    result = reported(lines, "result")
    assert result["connections"] == [connection_id]
    assert result["disconnects"] == []
    assert result["stopped"] is False
    assert result["data"] == "still here"
    assert len(stack.recorded.of("connect")) == 1
    wait_for(lambda: stack.recorded.of("disconnected", connection_id), what="disconnected")


def test_a_reliable_client_closed_by_the_app_sees_the_apps_reason(stack: Stack) -> None:
    result = reported(run_node(stack, "close_reason.mjs"), "result")
    first, second = result["connections"]
    assert first != second
    assert result["disconnects"] == ["closed by the app"]
    assert stack.recorded.of("disconnected", first) == ["closed by the app"]



def test_protobuf_clients_and_the_official_json_client_share_a_group(stack: Stack) -> None:
    result = reported(run_node(stack, "protobuf.mjs"), "result")
    assert result["protocols"] == ["protobuf.webpubsub.azure.v1",
                                   "protobuf.reliable.webpubsub.azure.v1"]
    assert result["connected"]["user_id"] == "pb-user"
    assert result["joined"] == {"ack_id": 1, "success": True}
    # JSON to protobuf: text as text_data, JSON as json_data, binary as binary_data.
    assert [m["data"] for m in result["fromJson"]] == [
        {"text_data": "hello", "data": "text_data"},
        {"json_data": '{"a":1}', "data": "json_data"},
        {"binary_data": [1, 2, 3], "data": "binary_data"},
    ]
    assert all((m["from"], m["group"]) == ("group", "mix") for m in result["fromJson"])
    # Protobuf to JSON: protobuf_data as the base64 of its Any's bytes.
    assert result["toJson"] == [
        {"dataType": "text", "data": "pb text", "metadata": None},
        {"dataType": "binary", "data": [4, 5], "metadata": None},
        {"dataType": "protobuf", "data": result["anyBytes"], "metadata": None},
        {"dataType": "json", "data": {"b": 2}, "metadata": {"k": "v"}},
    ]
    any_data = result["echoed"][2]["data"]
    assert any_data["protobuf_data"] == {
        "type_url": "type.googleapis.com/azure.webpubsub.TestMessage", "value": [8, 1]
    }
    assert result["echoed"][3]["metadata"] == {"k": "v"}
    assert result["pong"] == {}
    # An event with protobuf data reaches the app as the Any's bytes; its reply comes back.
    assert result["reply"]["from"] == "server"
    assert result["reply"]["data"]["binary_data"] == result["anyBytes"]
    assert result["eventAck"] == {"ack_id": 2, "success": True}
    assert stack.recorded.of("echo")[-1] == bytes(result["anyBytes"])
    assert result["reliableConnected"]["reconnection_token"]
    assert result["numbered"]["sequence_id"] == 1
    assert result["closed"] == 1008
    assert result["disconnected"]["reason"].startswith("Invalid message:")
