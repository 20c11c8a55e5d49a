"""@azure/web-pubsub (the JavaScript service SDK, pinned in tests/js) driving the emulator's REST
API: sends with filters and TTL, bulk group changes by filter, paged group members, existence,
permissions, users' groups, closing; and the SDK's own refusal of http:// without
``allowInsecureConnection``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from flask_webpubsub.emulator import EmulatorThread
from tests.support import ROOT

from .conftest import JSON, bare_url, read_until_closed, subprotocols

JS = ROOT / "tests" / "js"


def run_script(emulator: EmulatorThread, **env: str) -> dict[str, dict[str, Any]]:
    node = shutil.which("node")
    if node is None or not (JS / "node_modules" / "@azure" / "web-pubsub").is_dir():
        pytest.fail("the JavaScript SDKs are missing: run .ci/install-node-packages.sh")
    completed = subprocess.run(
        [node, str(JS / "service" / "rest.mjs")], cwd=JS, capture_output=True, text=True,
        timeout=60, check=False,
        env={**os.environ, "WPS_CONNECTION_STRING": emulator.connection_string, **env},
    )
    lines = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
    failures = [line for line in lines if line["kind"] == "failed"]
    assert not failures, f"{failures}\n{completed.stderr[-3000:]}"
    assert completed.returncode == 0, completed.stderr
    return {line["kind"]: line for line in lines}


def frames(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    return [json.loads(ws.recv(timeout=10)) for _ in range(count)]


def test_the_js_service_sdk_drives_the_rest_api(bare: EmulatorThread) -> None:
    with connect(bare_url(bare, "alice"), subprotocols=subprotocols(JSON)) as alice, \
            connect(bare_url(bare, "alice"), subprotocols=subprotocols(JSON)) as alice2, \
            connect(bare_url(bare, "bob"), subprotocols=subprotocols(JSON)) as bob:
        ids = {name: frames(ws, 1)[0]["connectionId"]
               for name, ws in (("alice", alice), ("alice2", alice2), ("bob", bob))}
        steps = run_script(bare, WPS_ALICE=ids["alice"], WPS_ALICE2=ids["alice2"],
                           WPS_BOB=ids["bob"])

        assert steps["insecure refused"]["refused"] is True
        assert "allowInsecureConnection" in steps["insecure refused"]["error"]
        assert "/client/hubs/chat?access_token=" in steps["token"]["url"]
        assert steps["add to groups"] == {"kind": "add to groups", "room": True, "hall": True}
        pages = steps["list members"]["pages"]
        assert [len(page) for page in pages] == [1, 1]  # two pages, through nextLink
        assert sorted(m["connectionId"] for page in pages for m in page) == sorted(
            [ids["alice"], ids["alice2"]])
        assert {m["userId"] for page in pages for m in page} == {"alice"}
        assert steps["exists"] == {"kind": "exists", "bob": True, "nobody": False,
                                   "connection": True, "gone": False}
        assert steps["permissions"] == {"kind": "permissions", "before": False,
                                        "granted": True, "revoked": False}
        assert steps["remove from groups"]["hall"] == [ids["alice"]]
        assert steps["user and group"] == {"kind": "user and group", "team": True,
                                           "after": False}
        assert steps["invalid filter"]["statusCode"] == 400
        assert steps["close"]["bob"] is False

        for ws in (alice, alice2):
            received = frames(ws, 3)
            assert [m["data"] for m in received] == ["to alice only", {"hello": "room"},
                                                     "direct"]
            assert received[1]["from"] == "server"
        code, seen = read_until_closed(lambda: json.loads(bob.recv(timeout=5)))
    assert code == 1008
    assert seen == [{"type": "system", "event": "disconnected",
                     "message": "closed by the service SDK"}]  # nothing sent to alice reached bob
    with connect(steps["token"]["url"], subprotocols=subprotocols(JSON)) as carol:
        assert frames(carol, 1)[0]["userId"] == "carol"
