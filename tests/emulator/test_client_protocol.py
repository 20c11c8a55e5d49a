"""Raw WebSocket clients (the websockets library): simple clients, the JSON subprotocols frame by
frame, tokens, malformed and oversized frames, and reliable recovery."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from flask_webpubsub.core.endpoint import ServiceEndpoint
from flask_webpubsub.core.tokens import build_client_token, build_service_token
from flask_webpubsub.emulator import EmulatorThread
from tests.support import wait_for

from .conftest import (
    ALL_ROLES,
    HUB,
    JSON,
    KEY,
    OTHER_KEY,
    RELIABLE,
    Stack,
    bare_url,
    read_until_closed,
    subprotocols,
)


@pytest.fixture
def sockets() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def open_ws(sockets: ExitStack, url: str, subprotocol: str | None = None) -> ClientConnection:
    return sockets.enter_context(connect(url, subprotocols=subprotocols(subprotocol),
                                         max_size=None))


def frames(ws: ClientConnection) -> Iterator[dict[str, Any]]:
    while True:
        yield json.loads(ws.recv(timeout=5))


def closed_with(ws: ClientConnection) -> tuple[int, list[dict[str, Any]]]:
    """Read to the end: the close code, and the JSON frames before it."""
    return read_until_closed(lambda: json.loads(ws.recv(timeout=5)))


def test_simple_client_messages_go_upstream_and_replies_come_back(
    stack: Stack, sockets: ExitStack
) -> None:
    ws = open_ws(sockets, stack.negotiate("sam"))
    ws.send("hello")
    assert ws.recv(timeout=5) == "echo: hello"
    ws.send(b"abc")
    assert ws.recv(timeout=5) == b"cba"
    connection_id = wait_for(lambda: stack.recorded.of("message") and stack.recorded.events[0][1])
    ws.close()
    assert wait_for(lambda: stack.recorded.of("disconnected", connection_id)) == [None]
    assert stack.recorded.of("message", connection_id) == ["hello", b"abc"]


def test_connect_rejected_by_the_app_fails_the_handshake(stack: Stack) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(stack.negotiate("mallory", reject="1"))
    assert refused.value.response.status_code == 403
    assert refused.value.response.body == b"Rejected by the app."


@pytest.mark.parametrize("case", ["expired", "wrong key", "wrong audience", "other hub",
                                  "REST token", "no token", "garbage"])
def test_bad_tokens_are_401(bare: EmulatorThread, case: str) -> None:
    endpoint = ServiceEndpoint(bare.url, KEY)
    tokens = {
        "expired": build_client_token(endpoint, HUB, now=time.time() - 7200),
        "wrong key": build_client_token(ServiceEndpoint(bare.url, OTHER_KEY), HUB),
        "wrong audience": build_client_token(ServiceEndpoint("http://elsewhere:1", KEY), HUB),
        "other hub": build_client_token(endpoint, "other"),
        "REST token": build_service_token(f"{bare.url}/api/hubs/{HUB}/:send", KEY),
        "no token": "",
        "garbage": "not-a-jwt",
    }
    base = bare.url.replace("http", "ws", 1)
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{base}/client/hubs/{HUB}?access_token={tokens[case]}")
    assert refused.value.response.status_code == 401


def test_token_in_the_authorization_header_and_hub_in_the_query(bare: EmulatorThread) -> None:
    token = build_client_token(ServiceEndpoint(bare.url, KEY), HUB, user_id="h")
    base = bare.url.replace("http", "ws", 1)
    with connect(f"{base}/client/?hub={HUB}", subprotocols=subprotocols(JSON),
                 additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        assert json.loads(ws.recv(timeout=5))["userId"] == "h"


def test_json_client_acks_duplicates_permissions_and_no_echo(
    bare: EmulatorThread, sockets: ExitStack
) -> None:
    a = open_ws(sockets, bare_url(bare, "a", ALL_ROLES), JSON)
    b = open_ws(sockets, bare_url(bare, "b"), JSON)  # no roles
    connected = json.loads(a.recv(timeout=5))
    assert connected["type"] == "system"
    assert "reconnectionToken" not in connected
    json.loads(b.recv(timeout=5))
    a.send(json.dumps({"type": "joinGroup", "group": "g", "ackId": 1}))
    assert json.loads(a.recv(timeout=5)) == {"type": "ack", "ackId": 1, "success": True}
    a.send(json.dumps({"type": "joinGroup", "group": "g", "ackId": 1}))
    assert json.loads(a.recv(timeout=5))["error"] == {
        "name": "Duplicate", "message": "Message with ack-id: 1 has been processed"
    }
    b.send(json.dumps({"type": "sendToGroup", "group": "g", "ackId": 7, "data": "x"}))
    assert json.loads(b.recv(timeout=5))["error"]["name"] == "Forbidden"
    # Forbidden is not recorded: a retry with the same ackId is checked again.
    b.send(json.dumps({"type": "sendToGroup", "group": "g", "ackId": 7, "data": "x"}))
    assert json.loads(b.recv(timeout=5))["error"]["name"] == "Forbidden"

    a.send(json.dumps({"type": "sendToGroup", "group": "g", "noEcho": True, "data": "quiet"}))
    a.send(json.dumps({"type": "sendToGroup", "group": "g", "dataType": "text", "data": "loud"}))
    assert json.loads(a.recv(timeout=5)) == {
        "type": "message", "from": "group", "group": "g", "fromUserId": "a",
        "dataType": "text", "data": "loud",
    }
    # An event with no upstream: the service drops the connection.
    a.send(json.dumps({"type": "event", "event": "ping", "ackId": 2, "data": {}}))
    code, seen = closed_with(a)
    assert code == 1008
    assert seen[0]["error"]["name"] == "InternalServerError"
    assert seen[-1]["event"] == "disconnected"


def test_reliable_sequence_ids_acks_and_recovery(bare: EmulatorThread, sockets: ExitStack) -> None:
    url = bare_url(bare, "r", ALL_ROLES, ["g"])
    ws = open_ws(sockets, url, RELIABLE)
    connected = json.loads(ws.recv(timeout=5))
    connection_id, token = connected["connectionId"], connected["reconnectionToken"]
    service = bare.emulator
    sender = open_ws(sockets, bare_url(bare, "s", ALL_ROLES), JSON)
    json.loads(sender.recv(timeout=5))
    for n in range(1, 4):
        sender.send(json.dumps({"type": "sendToGroup", "group": "g", "data": n, "ackId": n}))
        assert json.loads(sender.recv(timeout=5))["success"]
    received = [json.loads(ws.recv(timeout=5)) for _ in range(3)]
    assert [(m["sequenceId"], m["data"]) for m in received] == [(1, 1), (2, 2), (3, 3)]
    ws.send(json.dumps({"type": "sequenceAck", "sequenceId": 2}))
    time.sleep(0.1)

    assert bare.drop(connection_id)
    base = bare.url.replace("http", "ws", 1)
    recovery = (f"{base}/client/hubs/{HUB}?awps_connection_id={connection_id}"
                "&awps_reconnection_token=")
    # A connection that cannot be recovered is a 404: the client gives up and starts anew.
    with pytest.raises(InvalidStatus) as refused:
        open_ws(sockets, recovery + "wrong", RELIABLE)
    assert refused.value.response.status_code == 404
    assert b"cannot be recovered" in refused.value.response.body

    again = open_ws(sockets, recovery + token, RELIABLE)
    assert json.loads(again.recv(timeout=5))["connectionId"] == connection_id
    # Only what was not acknowledged comes again, then new messages continue the sequence.
    assert json.loads(again.recv(timeout=5))["sequenceId"] == 3
    sender.send(json.dumps({"type": "sendToGroup", "group": "g", "data": 4}))
    assert json.loads(again.recv(timeout=5))["sequenceId"] == 4
    assert len(service.hubs[HUB].connections) == 2


def test_unrecovered_connection_expires(sockets: ExitStack) -> None:
    with EmulatorThread(access_key=KEY, recovery_timeout=0.3) as emulator:
        ws = open_ws(sockets, bare_url(emulator, "x"), RELIABLE)
        connected = json.loads(ws.recv(timeout=5))
        assert emulator.drop(connected["connectionId"])
        wait_for(lambda: not emulator.emulator.hubs[HUB].connections, what="the expiry")
        # Too late: the service answers 404, and the client opens a new connection instead.
        base = emulator.url.replace("http", "ws", 1)
        with pytest.raises(InvalidStatus) as refused:
            open_ws(sockets, f"{base}/client/hubs/{HUB}?awps_connection_id="
                             f"{connected['connectionId']}&awps_reconnection_token="
                             f"{connected['reconnectionToken']}", RELIABLE)
        assert refused.value.response.status_code == 404


INVALID_FRAMES = {
    "not JSON": "{nope",
    "not an object": "[1, 2]",
    "unknown type": '{"type": "dance"}',
    "no group": '{"type": "joinGroup"}',
    "bad ackId": '{"type": "joinGroup", "group": "g", "ackId": "1"}',
    "bad dataType": '{"type": "sendToGroup", "group": "g", "dataType": "xml", "data": ""}',
    "bad base64": '{"type": "sendToGroup", "group": "g", "dataType": "binary", "data": "!!"}',
    "text not a string": '{"type": "event", "event": "e", "dataType": "text", "data": 1}',
    "NaN": '{"type": "sendToGroup", "group": "g", "data": NaN}',
    # Nothing to send: never a data-less message to the whole group.
    "no data": '{"type": "sendToGroup", "group": "g"}',
    "null data": '{"type": "sendToGroup", "group": "g", "dataType": "json", "data": null}',
    "event without data": '{"type": "event", "event": "e", "ackId": 1}',
    "deep": "[" * 100_000 + "]" * 100_000,
    "binary frame": b"\x00\x01",
}


@pytest.mark.parametrize("frame", INVALID_FRAMES.values(), ids=INVALID_FRAMES.keys())
def test_invalid_frames_close_only_that_connection(
    bare: EmulatorThread, sockets: ExitStack, frame: str | bytes
) -> None:
    bystander = open_ws(sockets, bare_url(bare, "ok", ALL_ROLES, ["g"]), JSON)
    json.loads(bystander.recv(timeout=5))
    ws = open_ws(sockets, bare_url(bare, "bad", ALL_ROLES), JSON)
    json.loads(ws.recv(timeout=5))
    ws.send(frame)
    code, seen = closed_with(ws)
    assert code == 1008
    assert seen[-1]["event"] == "disconnected"
    assert seen[-1]["message"].startswith("Invalid message:")
    bystander.send(json.dumps({"type": "sendToGroup", "group": "g", "data": "still here"}))
    assert json.loads(bystander.recv(timeout=5))["data"] == "still here"


@pytest.mark.parametrize("subprotocol", [None, JSON])
def test_oversized_frames_are_closed_with_1009(
    bare: EmulatorThread, sockets: ExitStack, subprotocol: str | None
) -> None:
    ws = open_ws(sockets, bare_url(bare, "big"), subprotocol)
    if subprotocol:
        json.loads(ws.recv(timeout=5))
    # Only the header of a text frame one byte over the limit: the service refuses it from its
    # length alone (and nothing the client still sends can race the close frame).
    size = 1024 * 1024 + 1
    ws.socket.sendall(bytes([0x81, 0x80 | 127]) + size.to_bytes(8, "big") + b"\x00" * 4 + b"x")
    code, _ = read_until_closed(lambda: ws.recv(timeout=5))
    assert code == 1009
    wait_for(lambda: not bare.emulator.hubs[HUB].connections, what="the cleanup")


def test_a_failed_user_event_closes_the_connection(stack: Stack, sockets: ExitStack) -> None:
    ws = open_ws(sockets, stack.negotiate("f"), JSON)
    connection_id = json.loads(ws.recv(timeout=5))["connectionId"]
    ws.send(json.dumps({"type": "event", "event": "silent", "dataType": "text", "data": "s",
                        "ackId": 1}))
    # No reply (204): just the ack.
    assert json.loads(ws.recv(timeout=5)) == {"type": "ack", "ackId": 1, "success": True}
    ws.send(json.dumps({"type": "event", "event": "fail", "data": {}, "ackId": 2}))
    code, seen = closed_with(ws)
    assert code == 1008
    assert seen[0]["error"]["name"] == "InternalServerError"
    reason = wait_for(lambda: stack.recorded.of("disconnected", connection_id))[0]
    assert "400" in reason
