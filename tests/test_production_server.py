"""The production configuration the README recommends (granian, run with the README's own
command, and direct dispatch): signed events over real HTTP, through two worker processes."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flask_webpubsub.testing import WebPubSubTestClient

from .conftest import CONNECTION_STRING, SECONDARY_KEY

README = Path(__file__).resolve().parent.parent / "README.md"

APP = """
import os
from flask import Flask
from flask_webpubsub import WebPubSub

app = Flask(__name__)
app.config.update(WEBPUBSUB_CONNECTION_STRING=os.environ["TEST_CONNECTION_STRING"],
                  WEBPUBSUB_HUB="chat", WEBPUBSUB_DIRECT_DISPATCH=True)
webpubsub = WebPubSub(app)

@webpubsub.on_user_event("echo")
def echo(event):
    event.state["n"] = event.state.get("n", 0) + 1
    return {"data": event.data, "n": event.state["n"]}
"""


def readme_command() -> list[str]:
    """The granian command line of the README's Performance section, for this test's app."""
    match = re.search(r"^\s*(granian --interface wsgi .*)$", README.read_text(), re.MULTILINE)
    assert match, "README.md names no granian command"
    return match.group(1).replace("$(nproc)", "2").split()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "app.py").write_text(APP)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = readme_command()
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    executable = Path(sys.executable).with_name("granian")
    process = subprocess.Popen(
        [str(executable), *command[1:]],
        cwd=tmp_path,
        env={**os.environ, "TEST_CONNECTION_STRING": CONNECTION_STRING},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, "granian exited"
                assert time.monotonic() < deadline, "granian did not listen within 30 s"
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=15)
    assert b"Traceback" not in errors


def test_signed_events_through_the_recommended_server(server: str) -> None:
    client = WebPubSubTestClient(base_url=server, connection_string=CONNECTION_STRING, hub="chat")
    assert client.options().status == 200
    connection = client.connect(user_id="alice")
    assert connection.accepted
    for n in range(1, 21):
        reply = connection.user_event("echo", f"message {n}")
        assert reply.status == 200
        assert reply.data["data"] == f"message {n}"
        assert reply.data["n"] == n  # the state travels with the connection, not the worker
    client.keys = [SECONDARY_KEY]
    assert client.connection().user_event("echo", "x").status == 401
