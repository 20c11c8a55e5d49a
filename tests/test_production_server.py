"""The production configuration the README recommends (granian, run with the README's own
command, and direct dispatch): signed events over real HTTP, through two worker processes."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
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


def start_granian(
    tmp_path: Path, target: str, **overrides: str
) -> tuple[subprocess.Popen[bytes], int, Path]:
    """The README's granian command serving ``target`` on a free loopback port from
    ``tmp_path``, with ``overrides`` replacing the values of its options (``workers_kill_timeout``
    for ``--workers-kill-timeout``); its log goes to a file, returned with the process."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = readme_command()
    for option, value in {"host": "127.0.0.1", "port": str(port), **overrides}.items():
        command[command.index("--" + option.replace("_", "-")) + 1] = value
    command[-1] = target
    log = tmp_path / "granian.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("granian")), *command[1:]],
            cwd=tmp_path,
            env={**os.environ, "TEST_CONNECTION_STRING": CONNECTION_STRING},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, port, log


def wait_for(condition: Callable[[], bool], what: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert process.poll() is None, f"granian exited before {what}"
        assert time.monotonic() < deadline, f"granian: no {what} within 30 s"
        time.sleep(0.05)


def stop(process: subprocess.Popen[bytes], within: float) -> float:
    """Sends SIGTERM and returns how long granian took to exit; kills its process group and
    fails if that is more than ``within`` seconds."""
    started = time.monotonic()
    process.terminate()
    try:
        process.wait(timeout=within)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        pytest.fail(f"granian did not stop within {within} s of SIGTERM")
    return time.monotonic() - started


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "app.py").write_text(APP)
    process, port, log = start_granian(tmp_path, "app:app")
    try:
        # Both workers, so that the state has to travel with the connection between them.
        wait_for(lambda: b"Started worker-2" in log.read_bytes()
                 and b"Started worker-1" in log.read_bytes(), "two started workers", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process, within=15)
    output = log.read_text()
    assert "Traceback" not in output
    assert "Killing worker" not in output, output  # a started worker stops on SIGTERM by itself


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


SLOW_APP = """
import time
time.sleep(3)  # an app that takes a while to import

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


def test_the_recommended_command_stops_even_when_told_to_during_startup(tmp_path: Path) -> None:
    """granian workers miss a SIGTERM that arrives while they import the app and then wait
    forever; the README's --workers-kill-timeout is what makes the server stop anyway."""
    (tmp_path / "slow.py").write_text(SLOW_APP)
    process, _, log = start_granian(tmp_path, "slow:app", workers_kill_timeout="2")
    wait_for(lambda: b"Spawning worker-2" in log.read_bytes(), "spawned workers", process)
    time.sleep(0.5)  # both workers are importing the app now
    took = stop(process, within=20)
    assert "Killing worker" in log.read_text()  # what the timeout was needed for
    assert took >= 2
