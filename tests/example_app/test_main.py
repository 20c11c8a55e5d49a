"""``python -m example_app``: its settings, and a real run on free ports."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from example_app.__main__ import Options, options_from
from example_app.server import ChatServer
from tests.support import CONNECTION_STRING, free_ports

ROOT = Path(__file__).parents[2]


def test_defaults() -> None:
    assert options_from({}) == Options("127.0.0.1", 5000, 8080, None)


def test_everything_is_set_from_the_environment() -> None:
    environ = {
        "EXAMPLE_HOST": "192.0.2.1",
        "EXAMPLE_PORT": "5001",
        "EMULATOR_PORT": "8081",
        "WEBPUBSUB_CONNECTION_STRING": CONNECTION_STRING,
    }
    assert options_from(environ) == Options("192.0.2.1", 5001, 8081, CONNECTION_STRING)


@pytest.mark.parametrize("value", ["http", "-1", "65536", "80.5"])
def test_bad_ports_are_named(value: str) -> None:
    with pytest.raises(ValueError, match="EMULATOR_PORT must be a port number"):
        options_from({"EMULATOR_PORT": value})


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


def test_one_command_runs_the_chat_on_the_emulator() -> None:
    port, emulator_port = free_ports(2)
    environ = {k: v for k, v in os.environ.items() if k != "WEBPUBSUB_CONNECTION_STRING"}
    environ.update(EXAMPLE_PORT=str(port), EMULATOR_PORT=str(emulator_port),
                   PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        [sys.executable, "-m", "example_app"],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
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
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(timeout=20) == 0
        finally:
            if process.poll() is None:  # it did not stop: do not leave it running
                process.kill()
                process.wait()
            assert process.stdout is not None
            process.stdout.close()
