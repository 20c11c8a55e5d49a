"""Invocations (``invoke`` / ``invokeResponse`` / ``cancelInvocation``): a client's request that
the upstream answers, correlated by invocation id, while the client's other requests go on. With
the official JavaScript client's ``invokeEvent`` against the real extension, and frame by frame
for what that client never sends."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from flask_webpubsub import UserEvent, WebPubSub
from flask_webpubsub.emulator import dispatch
from tests.support import wait_for

from .conftest import JSON, RELIABLE, Stack, read_until_closed, start_stack, subprotocols
from .test_client_js import reported, run_node


@pytest.fixture
def invoke_stack() -> Iterator[Stack]:
    """The chat app with a slow handler too, an upstream timeout of 2 s, and no event handler
    setting for the user event ``unrouted``."""
    stack = start_stack(upstream_timeout=2.0, user_events="echo,silent,count,fail,slow")
    webpubsub: WebPubSub = stack.app.extensions["webpubsub"].extension

    @webpubsub.on_user_event("slow")
    def slow(event: UserEvent) -> str:
        stack.recorded.add("slow", event.connection_id, event.data)
        time.sleep(float(str(event.data)))
        return "late"

    try:
        yield stack
    finally:
        stack.emulator.stop()
        stack.server.stop()


def test_invoke_event_gets_the_handlers_reply_or_its_failure(invoke_stack: Stack) -> None:
    lines = run_node(invoke_stack, "invoke.mjs")
    result = reported(lines, "result")
    results = result["results"]
    assert results["json"] == {"ok": True, "dataType": "json", "data": {"n": 1}}
    assert results["text"] == {"ok": True, "dataType": "text", "data": "hi"}
    assert results["binary"] == {"ok": True, "dataType": "binary", "data": [0, 1, 255]}
    # A handler that returns nothing: success without data.
    assert results["silent"] == {"ok": True, "dataType": None, "data": None}
    # The connection state the handlers keep goes on across invocations.
    assert (results["count1"]["data"], results["count2"]["data"]) == ({"count": 1}, {"count": 2})
    fail = results["fail"]
    assert (fail["ok"], fail["name"]) == (False, "InvocationError")
    assert fail["detail"]["name"] == "InvocationFailed"
    assert "400" in fail["detail"]["message"]
    assert "The app refuses this event." in fail["detail"]["message"]
    assert results["unrouted"]["detail"] == {
        "name": "InvocationFailed",
        "message": "No event handler takes the user event 'unrouted'.",
    }
    assert results["timeout"]["detail"]["name"] == "InvocationFailed"
    assert "2 s" in results["timeout"]["detail"]["message"]
    assert results["meanwhile"]["data"] == "first"
    assert results["slow"]["data"] == "late"
    # Cancelled by the client: it gave up; the emulator stopped waiting and answered nothing.
    assert results["cancelled"] == {"ok": False, "name": "InvocationError", "detail": None}
    assert results["after"]["data"] == "after"
    # None of it cost the connection.
    assert len(result["connections"]) == 1
    assert result["disconnects"] == []
    connection_id = result["connections"][0]
    # The upstream saw each invocation as the user event it names.
    assert invoke_stack.recorded.of("echo", connection_id)[:3] == [{"n": 1}, "hi", b"\x00\x01\xff"]
    assert invoke_stack.recorded.of("silent", connection_id) == ["s"]
    trace = [entry["text"] for entry in invoke_stack.emulator.emulator.service.trace.since()]
    assert any(text.endswith("cancelled by the client") for text in trace)


@contextmanager
def invoker(stack: Stack, subprotocol: str = JSON) -> Iterator[ClientConnection]:
    with connect(stack.negotiate("raw"), subprotocols=subprotocols(subprotocol)) as ws:
        assert json.loads(ws.recv(timeout=5))["event"] == "connected"
        yield ws


def invoke(ws: ClientConnection, invocation_id: str, event: str, **fields: Any) -> None:
    ws.send(json.dumps({"type": "invoke", "invocationId": invocation_id, "target": "event",
                        "event": event, **fields}))


def test_an_invocation_without_data_sends_the_event_empty(invoke_stack: Stack) -> None:
    with invoker(invoke_stack) as ws:
        invoke(ws, "a", "silent")
        assert json.loads(ws.recv(timeout=5)) == {
            "type": "invokeResponse", "invocationId": "a", "success": True
        }
        assert invoke_stack.recorded.of("silent") == [""]


@pytest.mark.parametrize("subprotocol", [JSON, RELIABLE])
def test_refused_invocations_are_answered_and_leave_the_connection_open(
    invoke_stack: Stack, monkeypatch: pytest.MonkeyPatch, subprotocol: str
) -> None:
    monkeypatch.setattr(dispatch, "MAX_INVOCATIONS", 2)
    with invoker(invoke_stack, subprotocol) as ws:
        ws.send(json.dumps({"type": "invoke", "invocationId": "g", "target": "group",
                            "event": "room", "dataType": "text", "data": "x"}))
        refused = json.loads(ws.recv(timeout=5))
        assert (refused["invocationId"], refused["success"]) == ("g", False)
        assert refused["error"]["name"] == "BadRequest"
        assert "target 'group'" in refused["error"]["message"]
        invoke(ws, "1", "slow", dataType="text", data="1")
        invoke(ws, "1", "echo", dataType="text", data="same id")
        duplicate = json.loads(ws.recv(timeout=5))
        assert (duplicate["invocationId"], duplicate["error"]["name"]) == ("1", "BadRequest")
        invoke(ws, "2", "slow", dataType="text", data="1")
        invoke(ws, "3", "echo", dataType="text", data="one too many")
        too_many = json.loads(ws.recv(timeout=5))
        assert (too_many["invocationId"], too_many["error"]["name"]) == ("3", "BadRequest")
        answers = [json.loads(ws.recv(timeout=5)) for _ in range(2)]
        assert {(a["invocationId"], a["data"]) for a in answers} == {("1", "late"), ("2", "late")}
        # A reliable client acknowledges data messages; an invocation's answer is none.
        assert all("sequenceId" not in a for a in [refused, duplicate, too_many, *answers])
        invoke(ws, "3", "echo", dataType="text", data="room again")
        assert json.loads(ws.recv(timeout=5))["data"] == "room again"


def test_cancelling_stops_the_invocation_and_unknown_ids_are_ignored(invoke_stack: Stack) -> None:
    service = invoke_stack.emulator.emulator.service
    with invoker(invoke_stack) as ws:
        ws.send(json.dumps({"type": "cancelInvocation", "invocationId": "never"}))
        invoke(ws, "c", "slow", dataType="text", data="1")
        wait_for(lambda: invoke_stack.recorded.of("slow"), what="the upstream call")
        ws.send(json.dumps({"type": "cancelInvocation", "invocationId": "c"}))
        ws.send('{"type":"ping"}')
        assert json.loads(ws.recv(timeout=5)) == {"type": "pong"}
        time.sleep(1.5)  # the upstream would have answered by now: nothing comes
        ws.send('{"type":"ping"}')
        assert json.loads(ws.recv(timeout=5)) == {"type": "pong"}
        connection = next(iter(service.rosters["chat"].connections.values()))
        assert connection.invocations == 0


def test_a_closed_connection_stops_its_invocations(invoke_stack: Stack) -> None:
    service = invoke_stack.emulator.emulator.service
    with invoker(invoke_stack) as ws:
        invoke(ws, "x", "slow", dataType="text", data="1.5")
        wait_for(lambda: invoke_stack.recorded.of("slow"), what="the upstream call")
        connection = next(iter(service.rosters["chat"].connections.values()))
        assert connection.invocations == 1
    wait_for(lambda: connection.ended and connection.invocations == 0, what="the cancellation")


INVALID_INVOKES = {
    "no invocation id": {"type": "invoke", "event": "echo"},
    "empty invocation id": {"type": "invoke", "invocationId": "", "event": "echo"},
    "no event": {"type": "invoke", "invocationId": "1"},
    "target not a string": {"type": "invoke", "invocationId": "1", "event": "e", "target": 1},
    "bad data": {"type": "invoke", "invocationId": "1", "event": "e", "dataType": "binary",
                 "data": "!"},
    "cancel without id": {"type": "cancelInvocation"},
}


@pytest.mark.parametrize("frame", INVALID_INVOKES.values(), ids=INVALID_INVOKES.keys())
def test_malformed_invocations_close_the_connection(
    invoke_stack: Stack, frame: dict[str, Any]
) -> None:
    with invoker(invoke_stack) as ws:
        ws.send(json.dumps(frame))
        code, seen = read_until_closed(lambda: json.loads(ws.recv(timeout=5)))
        assert code == 1008
        assert seen[-1]["message"].startswith("Invalid message:")
