"""``python -m example_app``: its settings, and a real run on free ports."""

from __future__ import annotations

import http.cookiejar
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from example_app.__main__ import (
    PER_REQUEST_LOGGERS,
    Options,
    configure_logging,
    options_from,
)
from example_app.server import ChatServer
from tests.support import CONNECTION_STRING, free_ports

ROOT = Path(__file__).parents[2]


def test_defaults() -> None:
    assert options_from({}) == Options("127.0.0.1", 5000, 8080, None, "INFO")


def test_everything_is_set_from_the_environment() -> None:
    environ = {
        "EXAMPLE_HOST": "192.0.2.1",
        "EXAMPLE_PORT": "5001",
        "EMULATOR_PORT": "8081",
        "WEBPUBSUB_CONNECTION_STRING": CONNECTION_STRING,
        "EXAMPLE_LOG_LEVEL": "debug",
    }
    assert options_from(environ) == Options("192.0.2.1", 5001, 8081, CONNECTION_STRING, "DEBUG")


@pytest.mark.parametrize("value", ["http", "-1", "65536", "80.5"])
def test_bad_ports_are_named(value: str) -> None:
    with pytest.raises(ValueError, match="EMULATOR_PORT must be a port number"):
        options_from({"EMULATOR_PORT": value})


def test_a_bad_log_level_is_named() -> None:
    with pytest.raises(ValueError, match="EXAMPLE_LOG_LEVEL must be one of DEBUG, INFO"):
        options_from({"EXAMPLE_LOG_LEVEL": "loud"})


@pytest.fixture
def logger_levels() -> Iterator[None]:
    """Put back the levels configure_logging sets (the test run's own logging stays as it was:
    basicConfig does nothing where the root logger has handlers)."""
    names = ["", *PER_REQUEST_LOGGERS]
    saved = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("logger_levels")
def test_per_request_logging_is_off_unless_debugging() -> None:
    configure_logging("INFO")
    assert logging.getLogger("azure.core.pipeline.policies.http_logging_policy"
                             ).getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("werkzeug").getEffectiveLevel() == logging.WARNING
    configure_logging("DEBUG")
    assert logging.getLogger("azure").getEffectiveLevel() == logging.DEBUG
    assert logging.getLogger("werkzeug").getEffectiveLevel() == logging.DEBUG


def test_with_a_connection_string_there_is_no_emulator(tmp_path: Path) -> None:
    with ChatServer(
        port=0,
        connection_string=CONNECTION_STRING,
        config={"CHAT_DATABASE": str(tmp_path / "chat.sqlite3")},
    ) as server:
        assert server.emulator is None
        with urllib.request.urlopen(f"{server.url}/", timeout=10) as page:
            assert page.status == 200
        assert server.app is not None
        assert server.app.extensions["webpubsub"].settings.endpoint.host == (
            "contoso.webpubsub.azure.com"
        )


def read_until(process: subprocess.Popen[bytes], marker: str, seconds: float = 30) -> str:
    """The process's output up to ``marker`` (raw reads: no buffer for select to miss)."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    deadline = time.monotonic() + seconds
    output = b""
    while marker.encode() not in output and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            output += chunk
    text = output.decode()
    assert marker in text, f"no {marker!r} in the output:\n{text}"
    return text


def example_environ(**variables: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("WEBPUBSUB_CONNECTION_STRING", "EXAMPLE_LOG_LEVEL")}
    environ.update(PYTHONPATH=str(ROOT), **variables)
    return environ


def start_example(**variables: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "example_app"],
        env=example_environ(**variables),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def stop_example(process: subprocess.Popen[bytes]) -> str:
    """SIGTERM, a clean exit, and the rest of the output."""
    process.send_signal(signal.SIGTERM)
    try:
        rest, _ = process.communicate(timeout=20)
        assert process.returncode == 0
        return rest.decode()
    finally:
        if process.poll() is None:  # it did not stop: do not leave it running
            process.kill()
            process.wait()


@pytest.mark.parametrize(("variable", "role"), [("EXAMPLE_PORT", "chat"),
                                                ("EMULATOR_PORT", "emulator")])
def test_a_busy_port_names_the_variable_that_moves_it(variable: str, role: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        busy = taken.getsockname()[1]
        variables = {"EXAMPLE_PORT": "0", "EMULATOR_PORT": "0", variable: str(busy)}
        result = subprocess.run(
            [sys.executable, "-m", "example_app"],
            env=example_environ(**variables),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr == (
        f"error: port {busy} is in use by another program, so the {role} cannot listen on it. "
        f"Set {variable} to a free port, for example:\n"
        f"  {variable}={busy + 1} ./run-example.sh\n"
    )
    assert "Ctrl+C" not in result.stdout


def test_one_command_runs_the_chat_on_the_emulator() -> None:
    port, emulator_port = free_ports(2)
    process = start_example(EXAMPLE_PORT=str(port), EMULATOR_PORT=str(emulator_port))
    try:
        output = read_until(process, "Ctrl+C stops.")
        assert f"  Chat: open http://127.0.0.1:{port}/\n" in output
        assert f"  Web PubSub emulator: http://127.0.0.1:{emulator_port}/ " in output
        assert "AccessKey" not in output
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
            assert b'action="/signin"' in page.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{emulator_port}/", timeout=10) as page:
            assert page.status == 200
    finally:
        stop_example(process)


def test_chatting_logs_no_per_request_http_lines() -> None:
    """azure-core logs each service client request and response at INFO, headers and all
    (once 1,227 lines for 40 s of chat), and werkzeug every request: neither by default."""
    port, emulator_port = free_ports(2)
    process = start_example(EXAMPLE_PORT=str(port), EMULATOR_PORT=str(emulator_port))
    try:
        output = read_until(process, "Ctrl+C stops.")
        name = f"log-test-{os.getpid()}"
        chat(port, name, messages=10)
        chat(port, "admin", messages=0)  # refused: the chat's own INFO record
        output += stop_example(process)
    finally:
        if process.poll() is None:
            stop_example(process)
    assert "Refused a connection for 'admin'" in output
    for per_request in ("Request URL:", "Response status:", "Request headers:", " HTTP/1.1"):
        assert per_request not in output
    assert len(output.splitlines()) < 60, output


def chat(port: int, name: str, messages: int) -> None:
    """Sign in, connect as the page would, send ``messages`` messages and read the replies."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect
    from websockets.typing import Subprotocol

    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    base = f"http://127.0.0.1:{port}"
    opener.open(f"{base}/signin", data=urllib.parse.urlencode({"name": name}).encode(),
                timeout=10).close()
    with opener.open(f"{base}/negotiate", timeout=10) as reply:
        url = json.load(reply)["url"]
    try:
        client = connect(url, subprotocols=[Subprotocol("json.webpubsub.azure.v1")],
                         open_timeout=10)
    except InvalidStatus:
        assert messages == 0
        return
    with client:
        for number in range(messages):
            client.send(json.dumps({"type": "event", "event": "message", "dataType": "json",
                                    "data": {"text": f"hi {number}"}, "ackId": number + 1}))
        acks = 0
        while acks < messages:
            frame = json.loads(client.recv(timeout=10))
            acks += frame.get("type") == "ack"


def test_the_chat_runs_with_entra_id_and_no_access_key() -> None:
    """EXAMPLE_ENTRA=1: the emulator plays Microsoft Entra ID, as the service does with access
    keys disabled. The app has no key: every event it takes carries the emulator's bearer
    token, and its REST calls (the room's messages) use the emulator's credential."""
    port, emulator_port = free_ports(2)
    process = start_example(
        EXAMPLE_PORT=str(port), EMULATOR_PORT=str(emulator_port), EXAMPLE_ENTRA="1"
    )
    try:
        read_until(process, "Ctrl+C stops.")
        chat(port, f"entra-{os.getpid()}", messages=3)
        output = stop_example(process)
    finally:
        if process.poll() is None:
            stop_example(process)
    assert "Traceback" not in output
    assert "AccessKey=" not in output


def test_entra_mode_gives_the_app_no_key(tmp_path: Path) -> None:
    with ChatServer(
        port=0, emulator_port=0, entra=True,
        config={"CHAT_DATABASE": str(tmp_path / "chat.sqlite3")},
    ) as server:
        assert server.app is not None
        settings = server.app.extensions["webpubsub"].settings
        assert settings.access_key is None
        assert settings.entra is not None
        assert settings.verify_signature is False
