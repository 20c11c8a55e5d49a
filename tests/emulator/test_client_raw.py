"""Plain WebSocket clients in both modes the service offers (concept-client-protocols.md):
``sendEvent`` (the default: every frame is a ``message`` user event) and ``sendToGroup``
(``?webpubsub_mode=sendToGroup&group=<g>[&noEcho=true]``: every frame is a message to that
group, with the permission to send to it)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from flask_webpubsub.emulator import EmulatorThread
from tests.support import wait_for

from .conftest import HUB, JSON, Stack, bare_url, read_until_closed, subprotocols

SEND_TO_ROOM = "webpubsub_mode=sendToGroup&group=room"


def test_send_event_mode_is_the_default_and_can_be_named(stack: Stack) -> None:
    with connect(stack.negotiate("e", webpubsub_mode="sendEvent")) as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "echo: hello"


@pytest.mark.parametrize("role", ["webpubsub.sendToGroup", "webpubsub.sendToGroup.room",
                                  "webpubsub.sendToGroups.r*"])
def test_send_to_group_mode_publishes_every_frame(stack: Stack, role: str) -> None:
    sender_url = stack.client_url("raw", [role], ["room"]) + "&" + SEND_TO_ROOM
    with (
        connect(stack.client_url("json", groups=["room"]), subprotocols=subprotocols(JSON)) as j,
        connect(stack.client_url("plain", groups=["room"])) as plain,
        connect(sender_url) as sender,
    ):
        json.loads(j.recv(timeout=5))
        sender.send("text frame")
        sender.send(b"\x00\x01")
        assert [json.loads(j.recv(timeout=5)) for _ in range(2)] == [
            {"type": "message", "from": "group", "group": "room", "fromUserId": "raw",
             "dataType": "text", "data": "text frame"},
            {"type": "message", "from": "group", "group": "room", "fromUserId": "raw",
             "dataType": "binary", "data": "AAE="},
        ]
        assert [plain.recv(timeout=5) for _ in range(2)] == ["text frame", b"\x00\x01"]
        # The sender is a member too, and without noEcho it gets its own messages.
        assert [sender.recv(timeout=5) for _ in range(2)] == ["text frame", b"\x00\x01"]
    # Nothing of it went upstream as a message event.
    assert stack.recorded.of("message") == []


def test_no_echo_keeps_a_senders_own_messages_from_it(bare: EmulatorThread) -> None:
    url = bare_url(bare, "quiet", ["webpubsub.sendToGroup"], ["room"])
    with (
        connect(f"{url}&{SEND_TO_ROOM}&noEcho=true") as quiet,
        connect(bare_url(bare, "listener", groups=["room"])) as listener,
    ):
        quiet.send("one")
        quiet.send("two")
        assert [listener.recv(timeout=5) for _ in range(2)] == ["one", "two"]
        with pytest.raises(TimeoutError):
            quiet.recv(timeout=0.3)


def test_a_sender_without_permission_is_closed(stack: Stack) -> None:
    url = stack.client_url("nobody", ["webpubsub.sendToGroup.elsewhere"], ["room"])
    with (
        connect(stack.client_url("listener", groups=["room"])) as listener,
        connect(f"{url}&{SEND_TO_ROOM}") as sender,
    ):
        sender.send("sneaky")
        code, _ = read_until_closed(lambda: sender.recv(timeout=5))
        assert code == 1008
        assert sender.close_reason == "The connection has no permission to send to group 'room'."
        with pytest.raises(TimeoutError):
            listener.recv(timeout=0.3)
    wait_for(lambda: stack.recorded.of("disconnected"), what="disconnected")


INVALID_MODES = {
    "unknown mode": {"webpubsub_mode": "broadcast"},
    "no group": {"webpubsub_mode": "sendToGroup"},
    "empty group": {"webpubsub_mode": "sendToGroup", "group": ""},
    "group too long": {"webpubsub_mode": "sendToGroup", "group": "g" * 1025},
    "bad noEcho": {"webpubsub_mode": "sendToGroup", "group": "g", "noEcho": "yes"},
}


@pytest.mark.parametrize("query", INVALID_MODES.values(), ids=INVALID_MODES.keys())
def test_invalid_modes_are_refused_before_the_upstream_hears(
    stack: Stack, query: dict[str, str]
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(stack.client_url("bad") + "&" + urlencode(query))
    assert refused.value.response.status_code == 400
    assert stack.recorded.of("connect") == []


def test_one_group_only_and_the_mode_in_any_case(bare: EmulatorThread) -> None:
    url = bare_url(bare, "x", ["webpubsub.sendToGroup"])
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{url}&{SEND_TO_ROOM}&group=other")
    assert refused.value.response.status_code == 400
    assert b"once" in refused.value.response.body
    with connect(f"{url}&webpubsub_mode=SENDTOGROUP&group=room&noEcho=TRUE"):
        wait_for(lambda: bare.emulator.hubs[HUB].connections, what="the connection")


def test_a_subprotocol_client_ignores_the_mode(bare: EmulatorThread) -> None:
    url = bare_url(bare, "j", ["webpubsub.sendToGroup"]) + "&webpubsub_mode=anything"
    with connect(url, subprotocols=subprotocols(JSON)) as ws:
        assert json.loads(ws.recv(timeout=5))["event"] == "connected"
