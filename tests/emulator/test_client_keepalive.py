"""Keep-alive, both ways: a client's ``ping`` is answered ``pong`` in every subprotocol, the
emulator pings idle sockets (the hub's keep-alive interval) and ends those that do not answer."""

from __future__ import annotations

import base64
import json
import os
import socket
import time
from urllib.parse import urlsplit

import pytest
from websockets.sync.client import connect

from flask_webpubsub.emulator import EmulatorThread
from tests.support import wait_for

from .conftest import HUB, JSON, KEY, RELIABLE, Stack, bare_url, subprotocols


@pytest.mark.parametrize("subprotocol", [JSON, RELIABLE])
def test_ping_is_answered_with_pong(bare: EmulatorThread, subprotocol: str) -> None:
    with connect(bare_url(bare, "p"), subprotocols=subprotocols(subprotocol)) as ws:
        json.loads(ws.recv(timeout=5))
        for _ in range(3):
            ws.send('{"type":"ping"}')
            assert json.loads(ws.recv(timeout=5)) == {"type": "pong"}
        # A pong is no data message: a reliable client has nothing to acknowledge.
        connection = next(iter(bare.emulator.hubs[HUB].connections.values()))
        assert list(connection._resend or ()) == []


def test_a_simple_clients_ping_text_is_just_a_message(stack: Stack) -> None:
    with connect(stack.negotiate("s")) as ws:
        ws.send('{"type":"ping"}')
        assert ws.recv(timeout=5) == 'echo: {"type":"ping"}'


def silent_socket(url: str, subprotocol: str | None) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads again, so it answers
    no ping: a dead peer, as a vanished network leaves it."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {parts.path}?{parts.query} HTTP/1.1",
        f"Host: {parts.hostname}:{parts.port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if subprotocol:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert sock.recv(4096).startswith(b"HTTP/1.1 101")
    return sock


@pytest.mark.parametrize("subprotocol", [None, JSON, RELIABLE])
def test_a_peer_that_answers_no_ping_is_ended(subprotocol: str | None) -> None:
    with EmulatorThread(access_key=KEY, heartbeat=0.3, recovery_timeout=0.3) as emulator:
        sock = silent_socket(bare_url(emulator, "dead"), subprotocol)
        try:
            hub = emulator.emulator.hubs[HUB]
            connection = next(iter(hub.connections.values()))
            # A reliable connection waits for its client to recover, then expires too.
            wait_for(lambda: not hub.connections, timeout=5, what="the dead peer to be ended")
            assert connection.ended
            if subprotocol != RELIABLE:
                texts = [entry["text"] for entry in emulator.emulator.service.trace.since()]
                assert "disconnected: The client did not answer the keep-alive ping." in texts
        finally:
            sock.close()


def test_a_peer_that_answers_pings_stays() -> None:
    with (
        EmulatorThread(access_key=KEY, heartbeat=0.2) as emulator,
        connect(bare_url(emulator, "alive"), subprotocols=subprotocols(RELIABLE)) as ws,
    ):
        connection_id = json.loads(ws.recv(timeout=5))["connectionId"]
        time.sleep(1.5)  # several keep-alive intervals, silent on our side
        ws.send('{"type":"ping"}')
        assert json.loads(ws.recv(timeout=5)) == {"type": "pong"}
        assert list(emulator.emulator.hubs[HUB].connections) == [connection_id]
