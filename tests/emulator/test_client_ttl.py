"""A client's ``ttlSeconds`` on ``sendToGroup`` (0 to 300; 0 is no limit): a member that has not
received the message in time never does, whether it waited in a slow socket's queue or in a
reliable connection's buffer while its client was away."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from websockets.sync.client import connect

from flask_webpubsub.emulator import EmulatorThread
from flask_webpubsub.emulator.rawframe import OutgoingFrame
from flask_webpubsub.emulator.socket_writer import SocketWriter

from .conftest import ALL_ROLES, HUB, JSON, RELIABLE, bare_url, read_until_closed, subprotocols


def send(ws: Any, data: str, **fields: Any) -> None:
    ws.send(json.dumps({"type": "sendToGroup", "group": "room", "dataType": "text",
                        "data": data, **fields}))


def test_a_recovered_client_gets_only_what_is_still_alive(bare: EmulatorThread) -> None:
    with (
        connect(bare_url(bare, "r", groups=["room"]), subprotocols=subprotocols(RELIABLE)) as r,
        connect(bare_url(bare, "s", ALL_ROLES), subprotocols=subprotocols(JSON)) as sender,
    ):
        connected = json.loads(r.recv(timeout=5))
        json.loads(sender.recv(timeout=5))
        assert bare.drop(connected["connectionId"])
        send(sender, "short-lived", ttlSeconds=1, ackId=1)
        send(sender, "no limit", ttlSeconds=0, ackId=2)
        send(sender, "long-lived", ttlSeconds=300, ackId=3)
        assert [json.loads(sender.recv(timeout=5))["success"] for _ in range(3)] == [True] * 3
        time.sleep(1.3)
        base = bare.url.replace("http", "ws", 1)
        with connect(
            f"{base}/client/hubs/{HUB}?awps_connection_id={connected['connectionId']}"
            f"&awps_reconnection_token={connected['reconnectionToken']}",
            subprotocols=subprotocols(RELIABLE),
        ) as again:
            assert json.loads(again.recv(timeout=5))["event"] == "connected"
            received = [json.loads(again.recv(timeout=5)) for _ in range(2)]
    # The expired one is gone; its sequence id is simply skipped.
    assert [(m["sequenceId"], m["data"]) for m in received] == [(2, "no limit"), (3, "long-lived")]


def test_a_slow_sockets_queue_drops_what_expired_in_it() -> None:
    class Transport:
        backlog = 1

        def is_closing(self) -> bool:
            return False

        def get_write_buffer_size(self) -> int:
            return self.backlog

    class Socket:
        closed = False

        def __init__(self) -> None:
            self.sent: list[str | bytes] = []

        async def send_str(self, data: str) -> None:
            self.sent.append(data)

        async def send_bytes(self, data: bytes) -> None:
            self.sent.append(data)

    async def scenario() -> list[str | bytes]:
        transport, socket = Transport(), Socket()
        writer = SocketWriter(socket, transport, asyncio.get_running_loop().create_task)  # type: ignore[arg-type]
        past = time.monotonic() - 1
        for frame in (OutgoingFrame("late", past), OutgoingFrame("on time"),
                      OutgoingFrame(b"later", time.monotonic() + 60)):
            assert writer.send(frame) is False  # queued behind the backlog
        await asyncio.sleep(0.05)
        writer.stop()
        return socket.sent

    assert asyncio.run(scenario()) == ["on time", b"later"]


@pytest.mark.parametrize("ttl", [-1, 301, "5", True, 1.5])
def test_a_time_to_live_out_of_range_is_refused(bare: EmulatorThread, ttl: Any) -> None:
    with connect(bare_url(bare, "x", ALL_ROLES), subprotocols=subprotocols(JSON)) as ws:
        json.loads(ws.recv(timeout=5))
        send(ws, "x", ttlSeconds=ttl)
        code, seen = read_until_closed(lambda: json.loads(ws.recv(timeout=5)))
    assert code == 1008
    assert "ttlSeconds" in seen[-1]["message"]
