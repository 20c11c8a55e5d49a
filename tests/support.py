"""What the tests share, besides fixtures: the test service's keys, a configured app, free
ports, an app served over real HTTP on loopback, and polling.

Fixtures live in the ``conftest.py`` files; everything a test imports comes from here.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

#: The checkout this test suite belongs to.
ROOT = Path(__file__).resolve().parents[1]

#: Realistic keys: 44 characters, like the service's base64 keys.
PRIMARY_KEY = "cHJpbWFyeS1rZXktZm9yLXRlc3RzLW9ubHktMDAwMDA="
SECONDARY_KEY = "c2Vjb25kYXJ5LWtleS1mb3ItdGVzdHMtb25seS0wMDA="
ENDPOINT = "https://contoso.webpubsub.azure.com"
CONNECTION_STRING = f"Endpoint={ENDPOINT};AccessKey={PRIMARY_KEY};Version=1.0;"
HOST = "contoso.webpubsub.azure.com"


def make_app(**config: object) -> Flask:
    """A bare app configured for the tests' service."""
    app = Flask(__name__)
    app.config.update(
        TESTING=True,
        WEBPUBSUB_CONNECTION_STRING=CONNECTION_STRING,
        WEBPUBSUB_HUB="chat",
    )
    app.config.update(config)
    return app


def free_ports(count: int) -> list[int]:
    """Distinct free ports on loopback (all held open until all are chosen)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def free_port() -> int:
    """A free port on loopback."""
    return free_ports(1)[0]


@contextlib.contextmanager
def serve(app: Any, *, port: int = 0, fd: int | None = None) -> Iterator[BaseWSGIServer]:
    """Serve a WSGI app over real HTTP on loopback (werkzeug, threaded) until the block ends;
    the server's ``server_port`` is where. ``fd``: a listening socket bound already."""
    server = make_server("127.0.0.1", port, app, threaded=True, fd=fd)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def base_url(server: BaseWSGIServer) -> str:
    """``http://127.0.0.1:<port>`` of a server from :func:`serve`."""
    return f"http://127.0.0.1:{server.server_port}"


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll until ``condition()`` is truthy; its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


#: Each phase's report of a test ("setup", "call", "teardown") on its item's stash, for fixtures
#: that act on a failed test; the ``pytest_runtest_makereport`` hook of
#: tests/example_app/conftest.py keeps them.
REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


#: The WSGI servers the docs name (Flask's development server, and the deployment guide's
#: gunicorn and granian), as commands serving ``module:app`` on a loopback port.
WSGI_SERVERS: dict[str, Callable[[str, int], list[str]]] = {
    "werkzeug": lambda target, port: [
        sys.executable, "-c",
        f"from {target.split(':')[0]} import {target.split(':')[1]} as app; "
        "from werkzeug.serving import run_simple; "
        f"run_simple('127.0.0.1', {port}, app, threaded=True)",
    ],
    "gunicorn": lambda target, port: [
        str(Path(sys.executable).with_name("gunicorn")), "--threads", "4",
        "-b", f"127.0.0.1:{port}", target,
    ],
    "granian": lambda target, port: [
        str(Path(sys.executable).with_name("granian")), "--interface", "wsgi", "--http", "1",
        "--blocking-threads", "1", "--host", "127.0.0.1", "--port", str(port), target,
    ],
}


@contextlib.contextmanager
def run_wsgi_server(
    kind: str,
    directory: Path,
    target: str,
    env: dict[str, str] | None = None,
    port: int | None = None,
) -> Iterator[int]:
    """Serve ``target`` (``module:app``, a module in ``directory``) with one of
    :data:`WSGI_SERVERS` in a subprocess, this checkout's package first on its path; the port
    (a free one unless given), once it accepts connections."""
    port = port or free_port()
    log_path = directory / f"{kind}.log"
    environment = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            WSGI_SERVERS[kind](target, port), cwd=directory, env=environment, stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert process.poll() is None, log_path.read_text()
                    assert time.monotonic() < deadline, f"{kind} did not start"
                    time.sleep(0.1)
            yield port
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
