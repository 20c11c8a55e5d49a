"""The recommended production configuration (granian, run with the deployment guide's own
command, and direct dispatch): signed events over real HTTP, through two worker processes."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.hardening.procs import LOG_PROBLEMS, ServerProcess
from flask_webpubsub.testing import WebPubSubTestClient

from .support import CONNECTION_STRING, SECONDARY_KEY, free_port

DEPLOYMENT = Path(__file__).resolve().parent.parent / "docs" / "deployment.md"

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


def recommended_command() -> list[str]:
    """The granian command line of the deployment guide ("A production server"), for this
    test's app."""
    match = re.search(r"^\$ (granian --interface wsgi .*)$", DEPLOYMENT.read_text(),
                      re.MULTILINE)
    assert match, "docs/deployment.md names no granian command"
    return match.group(1).replace("$(nproc)", "2").split()


def start_granian(tmp_path: Path, target: str, **overrides: str) -> tuple[ServerProcess, str]:
    """The deployment guide's granian command serving ``target`` (a module in ``tmp_path``) on
    a free loopback port, with ``overrides`` replacing the values of its options
    (``workers_kill_timeout`` for ``--workers-kill-timeout``); the server and its URL."""
    port = str(free_port())
    command = recommended_command()
    for option, value in {"host": "127.0.0.1", "port": port, **overrides}.items():
        command[command.index("--" + option.replace("_", "-")) + 1] = value
    command[0] = str(Path(sys.executable).with_name("granian"))
    command[-1] = target
    env = {"TEST_CONNECTION_STRING": CONNECTION_STRING, "PYTHONPATH": str(tmp_path)}
    server = ServerProcess("granian", command, tmp_path / "granian.log", env=env)
    return server, f"http://127.0.0.1:{port}"


def wait_for_log(server: ServerProcess, line: str, count: int) -> None:
    """Wait until ``count`` lines of the server's log hold ``line``."""
    deadline = time.monotonic() + 30
    while len(server.log_lines(line)) < count:
        assert server.process.poll() is None, f"granian exited: {server.log_tail()}"
        assert time.monotonic() < deadline, f"granian: {count} x {line!r} not within 30 s"
        time.sleep(0.05)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "app.py").write_text(APP)
    server, url = start_granian(tmp_path, "app:app")
    try:
        # Both workers, so that the state has to travel with the connection between them.
        wait_for_log(server, "Started worker-", 2)
        yield url
    finally:
        server.stop()
    assert server.exit_problems() == []
    # Nothing went wrong, and no started worker had to be killed ("[WARNING] Killing worker").
    assert server.log_lines(*LOG_PROBLEMS) == []


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
    forever; the recommended --workers-kill-timeout is what makes the server stop anyway."""
    (tmp_path / "slow.py").write_text(SLOW_APP)
    server, _ = start_granian(tmp_path, "slow:app", workers_kill_timeout="2")
    wait_for_log(server, "Spawning worker-", 2)
    time.sleep(0.5)  # both workers are importing the app now
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started >= 2
    assert server.exit_problems() == []  # granian itself stopped in time, and took its workers
    assert server.log_lines("Killing worker")  # what the timeout was needed for
