"""The official client SDK (azure-messaging-webpubsubclient) against the emulator and the real
extension: negotiate, groups, events, server messages, recovery and reconnection."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import websocket
from azure.messaging.webpubsubclient import WebPubSubClient, WebPubSubClientCredential
from azure.messaging.webpubsubclient.models import (
    CallbackType,
    OnConnectedArgs,
    OnGroupDataMessageArgs,
    OnServerDataMessageArgs,
    WebPubSubDataType,
    WebPubSubProtocolType,
)

from tests.support import wait_for

from .conftest import Stack

PROTOCOLS = {
    "json": WebPubSubProtocolType.JSON,
    "reliable": WebPubSubProtocolType.JSON_RELIABLE,
}


class Inbox:
    """What one client received, in order."""

    def __init__(self, client: WebPubSubClient) -> None:
        self.client = client
        self.messages: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.connected: list[str] = []
        self._lock = threading.Lock()
        client.subscribe(CallbackType.CONNECTED, self._on_connected)
        client.subscribe(CallbackType.GROUP_MESSAGE, self._on_group)
        client.subscribe(CallbackType.SERVER_MESSAGE, self._on_server)

    def _on_connected(self, args: OnConnectedArgs) -> None:
        with self._lock:
            self.connected.append(args.connection_id)

    def _on_group(self, args: OnGroupDataMessageArgs) -> None:
        self.messages.put((f"group:{args.group}", args.data))

    def _on_server(self, args: OnServerDataMessageArgs) -> None:
        self.messages.put(("server", args.data))

    def next(self, timeout: float = 10.0) -> tuple[str, Any]:
        return self.messages.get(timeout=timeout)

    def nothing(self, wait: float = 0.3) -> bool:
        try:
            self.messages.get(timeout=wait)
        except queue.Empty:
            return True
        return False

    @property
    def connection_id(self) -> str:
        connection_id = self.client._connection_id
        assert connection_id is not None
        return connection_id


@contextmanager
def sdk_client(stack: Stack, protocol: str, user: str, **options: Any) -> Iterator[Inbox]:
    credential = WebPubSubClientCredential(lambda: stack.negotiate(user))
    client = WebPubSubClient(
        credential,
        protocol_type=PROTOCOLS[protocol],
        reconnect_retry_backoff_factor=0.1,
        message_retry_total=1,
        ack_timeout=10,
        **options,
    )
    inbox = Inbox(client)
    client.open()
    try:
        wait_for(lambda: inbox.connected, what="the connected callback")
        yield inbox
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _close_websocket_client_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """websocket-client, under the SDK, leaks its socket whenever the server closes first: it
    answers the close frame with ``send_close()``, which clears ``connected``, and then
    ``close()`` returns early without closing the socket, leaving a ResourceWarning to the
    garbage collector. Close it there, so that warnings stay errors for everything else."""
    original = websocket.WebSocket.close

    def close(self: websocket.WebSocket, *args: Any, **kwargs: Any) -> None:
        if not self.connected:
            self.shutdown()  # type: ignore[no-untyped-call]
            return
        original(self, *args, **kwargs)

    monkeypatch.setattr(websocket.WebSocket, "close", close)


@pytest.mark.parametrize("protocol", ["json", "reliable"])
def test_groups_events_and_server_messages(stack: Stack, protocol: str) -> None:
    with sdk_client(stack, protocol, "alice") as alice, sdk_client(stack, protocol, "bob") as bob:
        # The upstream saw the connect with the token's claims, then connected.
        connect = stack.recorded.of("connect", alice.connection_id)[0]
        assert connect["user"] == "alice"
        assert connect["subprotocols"] == [alice.client._protocol.name]
        assert connect["claims"]["sub"] == ["alice"]
        assert "access_token" not in connect["query"]
        wait_for(lambda: stack.recorded.of("connected", alice.connection_id), what="connected")

        alice.client.join_group("room")
        bob.client.join_group("room")
        alice.client.send_to_group("room", {"hello": "world"}, WebPubSubDataType.JSON)
        assert alice.next() == ("group:room", {"hello": "world"})
        assert bob.next() == ("group:room", {"hello": "world"})

        bob.client.send_to_group("room", "quiet", WebPubSubDataType.TEXT, no_echo=True)
        assert alice.next() == ("group:room", "quiet")
        assert bob.nothing()

        # A user event: the app's reply comes back as a server message.
        alice.client.send_event("echo", {"n": 1}, WebPubSubDataType.JSON)
        assert alice.next() == ("server", {"n": 1})
        alice.client.send_event("echo", "text", WebPubSubDataType.TEXT)
        assert alice.next() == ("server", "text")
        alice.client.send_event("echo", memoryview(b"\x00\x01"), WebPubSubDataType.BINARY)
        kind, data = alice.next()
        assert (kind, bytes(data)) == ("server", b"\x00\x01")

        # Connection state set by connect and changed by each event is kept by the emulator.
        alice.client.send_event("count", "", WebPubSubDataType.TEXT)
        assert alice.next() == ("server", {"count": 1})
        alice.client.send_event("count", "", WebPubSubDataType.TEXT)
        assert alice.next() == ("server", {"count": 2})
        assert stack.recorded.of("joined", alice.connection_id) == ["room"]

        # The app's service client talks to the emulator's REST API.
        service = stack.app.extensions["webpubsub"].client
        service.send_to_all({"to": "all"}, content_type="application/json")
        assert alice.next() == ("server", {"to": "all"})
        assert bob.next() == ("server", {"to": "all"})
        service.send_to_user("bob", "just bob", content_type="text/plain")
        assert bob.next() == ("server", "just bob")
        assert alice.nothing()
        alice_id = alice.connection_id
    wait_for(lambda: stack.recorded.of("disconnected", alice_id), what="disconnected")


def test_reliable_client_recovers_after_a_drop(stack: Stack) -> None:
    with sdk_client(stack, "reliable", "alice") as alice, sdk_client(stack, "json", "bob") as bob:
        alice.client.join_group("room")
        bob.client.join_group("room")
        connection_id = alice.connection_id
        service = stack.app.extensions["webpubsub"].client

        assert stack.emulator.drop(connection_id)
        # Sent while alice has no socket: kept and re-sent on recovery, once.
        for n in range(3):
            bob.client.send_to_group("room", f"m{n}", WebPubSubDataType.TEXT, no_echo=True)
        service.send_to_group("room", "from the server", content_type="text/plain")
        received = [alice.next()[1] for _ in range(4)]
        assert received == ["m0", "m1", "m2", "from the server"]
        assert alice.nothing(0.5)

        # Same connection, groups kept, and the app saw no new connect nor a disconnect.
        assert alice.connection_id == connection_id
        assert alice.connected == [connection_id]
        bob.client.send_to_group("room", "after", WebPubSubDataType.TEXT, no_echo=True)
        assert alice.next() == ("group:room", "after")
        assert len(stack.recorded.of("connect", connection_id)) == 1
        assert stack.recorded.of("disconnected", connection_id) == []


def test_json_client_reconnects_as_a_new_connection(stack: Stack) -> None:
    with sdk_client(stack, "json", "carol") as carol, sdk_client(stack, "json", "dave") as dave:
        carol.client.join_group("room")
        first = carol.connection_id
        assert stack.emulator.drop(first)
        # No recovery for the non-reliable protocol: a new connection, groups rejoined.
        wait_for(lambda: len(carol.connected) == 2, what="the reconnection")
        assert carol.connection_id != first
        wait_for(lambda: stack.recorded.of("disconnected", first), what="disconnected")
        wait_for(lambda: stack.recorded.of("joined", carol.connection_id), what="the rejoin")
        dave.client.send_to_group("room", "hi again", WebPubSubDataType.TEXT)
        assert carol.next() == ("group:room", "hi again")


def test_reliable_client_reconnects_when_recovery_is_refused(stack: Stack) -> None:
    with sdk_client(stack, "reliable", "erin") as erin:
        erin.client.join_group("room")
        first = erin.connection_id
        service = stack.app.extensions["webpubsub"].client
        service.close_connection(first, reason="bye")
        # The session is gone, so recovery fails (1008) and the client starts a new connection.
        wait_for(lambda: len(erin.connected) == 2, what="the reconnection")
        assert erin.connection_id != first
        assert stack.recorded.of("disconnected", first) == ["bye"]
        service.send_to_group("room", "rejoined", content_type="text/plain")
        assert erin.next() == ("server", "rejoined")
