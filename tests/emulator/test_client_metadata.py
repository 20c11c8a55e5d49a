"""Message metadata (a preview feature of the service): ``metadata`` on a client's
``sendToGroup``, ``event`` and ``invoke``, delivered with the message to the group's JSON
clients, sent upstream as ``x-webpubsub-metadata-*`` headers, and taken from the upstream's
reply headers onto the reply; within the limits Microsoft's emulator enforces."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Response, request
from websockets.sync.client import connect

from flask_webpubsub import UserEvent, WebPubSub
from flask_webpubsub.emulator import EmulatorThread
from tests.support import free_port

from .conftest import (
    ALL_ROLES,
    JSON,
    KEY,
    RELIABLE,
    AppServer,
    Recorded,
    Stack,
    bare_url,
    create_chat_app,
    read_until_closed,
    subprotocols,
)

JSONS = subprotocols(JSON)
RELIABLES = subprotocols(RELIABLE)


@pytest.fixture
def meta_stack() -> Iterator[Stack]:
    """The chat app with a ``meta`` event that records the metadata headers it got and answers
    with metadata of its own (the app starts as in :func:`.conftest.start_stack`, set up first:
    Flask takes no ``after_request`` once it has served)."""
    recorded = Recorded()
    port = free_port()
    app = create_chat_app(f"Endpoint=http://127.0.0.1:{port};AccessKey={KEY};Version=1.0;",
                          recorded)
    webpubsub: WebPubSub = app.extensions["webpubsub"].extension

    @webpubsub.on_user_event("meta")
    def meta(event: UserEvent) -> str | None:
        headers = {k.lower(): v for k, v in request.headers.items()
                   if k.lower().startswith("x-webpubsub-metadata-")}
        recorded.add("meta", event.connection_id, (event.data, headers))
        return None if event.data == "" else "answer"

    @app.after_request
    def reply_metadata(response: Response) -> Response:
        if request.headers.get("ce-eventName") == "meta":
            response.headers["x-webpubsub-metadata-answered-by"] = "app"
        return response

    server = AppServer(app)
    emulator = EmulatorThread(port=port, access_key=KEY, upstream=f"{server.url}/eventhandler")
    emulator.start()
    stack = Stack(emulator, app, server, recorded)
    try:
        yield stack
    finally:
        stack.emulator.stop()
        stack.server.stop()


def test_group_members_get_the_metadata(bare: EmulatorThread) -> None:
    with (
        connect(bare_url(bare, "a", ALL_ROLES, ["room"]), subprotocols=JSONS) as a,
        connect(bare_url(bare, "b", groups=["room"]), subprotocols=RELIABLES) as b,
        connect(bare_url(bare, "s", groups=["room"])) as simple,
    ):
        json.loads(a.recv(timeout=5))
        json.loads(b.recv(timeout=5))
        a.send(json.dumps({"type": "sendToGroup", "group": "room", "dataType": "text",
                           "data": "hi", "metadata": {"Trace-Id": "t1", "lang": "en"}}))
        expected = {"type": "message", "from": "group", "group": "room", "fromUserId": "a",
                    "dataType": "text", "data": "hi",
                    "metadata": {"Trace-Id": "t1", "lang": "en"}}
        assert json.loads(a.recv(timeout=5)) == expected
        assert json.loads(b.recv(timeout=5)) == {**expected, "sequenceId": 1}
        assert simple.recv(timeout=5) == "hi"  # plain clients get the data only
        # Metadata alone is a message: empty text.
        a.send(json.dumps({"type": "sendToGroup", "group": "room", "metadata": {"k": "v"}}))
        assert json.loads(a.recv(timeout=5)) == {
            **expected, "data": "", "metadata": {"k": "v"}
        }
        assert simple.recv(timeout=5) == ""


def test_events_and_invocations_carry_metadata_both_ways(meta_stack: Stack) -> None:
    with connect(meta_stack.negotiate("m"), subprotocols=JSONS) as ws:
        connection_id = json.loads(ws.recv(timeout=5))["connectionId"]
        ws.send(json.dumps({"type": "event", "event": "meta", "dataType": "text", "data": "q",
                            "metadata": {"Trace-Id": "t1"}, "ackId": 1}))
        assert json.loads(ws.recv(timeout=5)) == {
            "type": "message", "from": "server", "dataType": "text", "data": "answer",
            "metadata": {"answered-by": "app"},
        }
        assert json.loads(ws.recv(timeout=5))["success"] is True
        # An event with metadata and no data: the upstream gets an empty body; its reply has
        # no data either, so the client gets the reply's metadata alone.
        ws.send(json.dumps({"type": "event", "event": "meta", "metadata": {"only": "this"}}))
        assert json.loads(ws.recv(timeout=5)) == {
            "type": "message", "from": "server", "dataType": "text", "data": "",
            "metadata": {"answered-by": "app"},
        }
        ws.send(json.dumps({"type": "invoke", "invocationId": "1", "event": "meta",
                            "dataType": "text", "data": "i", "metadata": {"via": "invoke"}}))
        assert json.loads(ws.recv(timeout=5))["data"] == "answer"
    # Keys go upstream lower-cased, as HTTP header names.
    assert meta_stack.recorded.of("meta", connection_id) == [
        ("q", {"x-webpubsub-metadata-trace-id": "t1"}),
        ("", {"x-webpubsub-metadata-only": "this"}),
        ("i", {"x-webpubsub-metadata-via": "invoke"}),
    ]


INVALID_METADATA: dict[str, Any] = {
    "not an object": ["a"],
    "a value not a string": {"n": 1},
    "a key that is no header name": {"a b": "x"},
    "a key over 256 characters": {"k" * 257: "x"},
    "a value over 1024 characters": {"k": "v" * 1025},
    "a value beyond ASCII": {"k": "é"},
    "over 8 KiB in all": {f"k{n}": "v" * 1000 for n in range(9)},
}


@pytest.mark.parametrize("metadata", INVALID_METADATA.values(), ids=INVALID_METADATA.keys())
@pytest.mark.parametrize("request_type", ["sendToGroup", "event", "invoke"])
def test_metadata_beyond_the_limits_is_refused(
    bare: EmulatorThread, metadata: Any, request_type: str
) -> None:
    frame = {"type": request_type, "group": "room", "event": "e", "invocationId": "1",
             "data": "x", "metadata": metadata}
    with connect(bare_url(bare, "x", ALL_ROLES), subprotocols=JSONS) as ws:
        json.loads(ws.recv(timeout=5))
        ws.send(json.dumps(frame))
        code, seen = read_until_closed(lambda: json.loads(ws.recv(timeout=5)))
    assert code == 1008
    assert seen[-1]["message"].startswith("Invalid message:")


def test_metadata_at_the_limits_is_taken(bare: EmulatorThread) -> None:
    metadata = {"k" * 256: "v" * 1024, **{f"k{n}": "v" * 1000 for n in range(6)}}
    with connect(bare_url(bare, "x", ALL_ROLES, ["room"]), subprotocols=JSONS) as ws:
        json.loads(ws.recv(timeout=5))
        ws.send(json.dumps({"type": "sendToGroup", "group": "room", "data": 1,
                            "metadata": metadata}))
        assert json.loads(ws.recv(timeout=5))["metadata"] == metadata
