"""Hub settings and client protocols: the anonymous connect policy (deny by default, as in the
service), and a clear answer for clients of a protocol the emulator does not serve."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from flask_webpubsub.emulator import Emulator, EmulatorThread

from .conftest import JSON, KEY, Stack, start_stack, subprotocols


@pytest.fixture
def anonymous() -> Iterator[Stack]:
    stack = start_stack(allow_anonymous=["chat"])
    try:
        yield stack
    finally:
        stack.emulator.stop()
        stack.server.stop()


def test_an_anonymous_client_connects_where_the_policy_allows(anonymous: Stack) -> None:
    with connect(f"{anonymous.ws_url}/client/hubs/chat?group=open",
                 subprotocols=subprotocols(JSON)) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert (hello["event"], hello["userId"]) == ("connected", None)
    [seen] = anonymous.recorded.of("connect", hello["connectionId"])
    assert (seen["user"], seen["claims"], seen["query"]) == (None, {}, {"group": ["open"]})
    # A token is still checked when one is given.
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{anonymous.ws_url}/client/hubs/chat?access_token=forged")
    assert refused.value.response.status_code == 401
    # Another hub keeps the default policy: deny.
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{anonymous.ws_url}/client/hubs/other")
    assert refused.value.response.status_code == 401
    assert b"anonymous connect policy is deny" in refused.value.response.body


def test_the_policy_is_deny_by_default_and_star_allows_every_hub(bare: EmulatorThread) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(bare.url.replace("http", "ws", 1) + "/client/hubs/chat")
    assert refused.value.response.status_code == 401
    with EmulatorThread(access_key=KEY, allow_anonymous=["*"]) as everywhere:
        for hub in ("chat", "Other_Hub"):
            with connect(everywhere.url.replace("http", "ws", 1) + f"/client/hubs/{hub}") as ws:
                ws.send("hi")  # a simple client, accepted without a token
    with pytest.raises(ValueError, match="invalid hub name"):
        Emulator(allow_anonymous=["not a hub"])


def test_the_command_line_takes_the_policy() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "flask_webpubsub.emulator", "--allow-anonymous", "bad hub"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert completed.returncode == 2
    assert "invalid hub name" in completed.stderr


@pytest.mark.parametrize(("path", "name"), [
    ("/clients/socketio/hubs/chat/?EIO=4&transport=polling", "Socket.IO"),
    ("/clients/whatever/hubs/chat", "'whatever'"),
])
def test_a_protocol_the_emulator_does_not_serve_gets_a_clear_answer(
    bare: EmulatorThread, path: str, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(bare.url + path, timeout=5)
    assert refused.value.code == 501
    body = refused.value.read().decode()
    refused.value.close()
    assert f"does not serve {name} clients" in body
    assert "/client/hubs/{hub}" in body
    assert any(r.levelno == logging.WARNING and f"Refused a {name} client" in r.getMessage()
               for r in caplog.records)
    last = bare.emulator.service.trace.since(0)[-1]
    assert last["text"] == f"{name} client refused: not emulated"
