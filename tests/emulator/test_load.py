"""1,000 concurrent reliable clients on loopback (the short form of the churn test): every
acknowledged group message reaches every member exactly once, and the emulator forgets them all
when they leave."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

from websockets.asyncio.client import ClientConnection, connect

from flask_webpubsub.emulator import EmulatorThread
from tests.support import wait_for

from .conftest import ALL_ROLES, KEY, RELIABLE, bare_url, subprotocols

CLIENTS = 1000
GROUPS = 40
MESSAGES_EACH = 2
HUB = "load"


class LoadClient:
    def __init__(self, index: int, ws: ClientConnection) -> None:
        self.index = index
        self.group = f"g{index % GROUPS}"
        self.ws = ws
        self.received: Counter[str] = Counter()
        self.acks: dict[int, asyncio.Future[dict[str, object]]] = {}
        self.last_sequence_id = 0
        self.connection_id = ""

    async def read(self) -> None:
        async for frame in self.ws:
            message = json.loads(frame)
            if message["type"] == "ack":
                self.acks.pop(message["ackId"]).set_result(message)
            elif message["type"] == "message":
                self.received[message["data"]] += 1
                self.last_sequence_id = message["sequenceId"]
                if self.last_sequence_id % 20 == 0:
                    await self.ws.send(json.dumps(
                        {"type": "sequenceAck", "sequenceId": self.last_sequence_id}
                    ))
            elif message["event"] == "connected":
                self.connection_id = message["connectionId"]

    async def request(self, ack_id: int, **fields: object) -> dict[str, object]:
        future = asyncio.get_running_loop().create_future()
        self.acks[ack_id] = future
        await self.ws.send(json.dumps({"ackId": ack_id, **fields}))
        return await asyncio.wait_for(future, 30)


async def _run(emulator: EmulatorThread) -> list[LoadClient]:
    limit = asyncio.Semaphore(100)
    clients: list[LoadClient] = []
    readers: list[asyncio.Task[None]] = []

    async def open_one(index: int) -> None:
        async with limit:
            ws = await connect(bare_url(emulator, f"user{index}", ALL_ROLES, hub=HUB),
                               subprotocols=subprotocols(RELIABLE), compression=None,
                               open_timeout=30)
        client = LoadClient(index, ws)
        clients.append(client)
        readers.append(asyncio.create_task(client.read()))
        assert (await client.request(1, type="joinGroup", group=client.group))["success"]

    await asyncio.gather(*(open_one(i) for i in range(CLIENTS)))

    async def publish(client: LoadClient) -> None:
        for n in range(MESSAGES_EACH):
            ack = await client.request(2 + n, type="sendToGroup", group=client.group,
                                       dataType="text", data=f"{client.index}:{n}")
            assert ack["success"], ack

    await asyncio.gather(*(publish(c) for c in clients))
    expected = (CLIENTS // GROUPS) * MESSAGES_EACH
    deadline = time.monotonic() + 60
    while sum(sum(c.received.values()) for c in clients) < expected * CLIENTS:
        assert time.monotonic() < deadline, "messages are missing"
        await asyncio.sleep(0.05)
    # Half leave with a close frame; the other half vanish without one.
    await asyncio.gather(*(c.ws.close() for c in clients[: CLIENTS // 2]))
    for client in clients[CLIENTS // 2 :]:
        client.ws.transport.abort()
    await asyncio.gather(*readers, return_exceptions=True)
    return clients


def test_a_thousand_reliable_clients() -> None:
    with EmulatorThread(access_key=KEY, recovery_timeout=0.5, ack_delay=0) as emulator:
        started = time.monotonic()
        clients = asyncio.run(_run(emulator))
        elapsed = time.monotonic() - started
        members: dict[str, list[LoadClient]] = {}
        for client in clients:
            members.setdefault(client.group, []).append(client)
        for client in clients:
            expected = {f"{m.index}:{n}" for m in members[client.group]
                        for n in range(MESSAGES_EACH)}
            assert set(client.received) == expected
            assert set(client.received.values()) == {1}  # exactly once
        hub = emulator.emulator.hubs[HUB]
        # The vanished half waits out the recovery window, then everything is forgotten.
        wait_for(lambda: not hub.connections and not hub.groups and not hub.users,
                 timeout=20, what="every connection to be cleaned up")
        wait_for(lambda: emulator.emulator.service.tasks == 0, what="background tasks to end")
    assert elapsed < 120
