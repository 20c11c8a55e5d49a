"""Group streams (client spec 3.6; the JSON subprotocol's "Start streaming messages"), frame by
frame as the protocol reference writes them (the pinned JavaScript client has no streaming yet):
start, fragments and their acks, duplicates, gaps, keep-alives, the publisher's end with or
without its own error, idle timeouts, permissions, and the publisher's connection ending."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from typing import Any

import pytest
from azure.messaging.webpubsubservice import WebPubSubServiceClient
from websockets.sync.client import ClientConnection, connect

from flask_webpubsub.emulator import EmulatorThread, dispatch

from .conftest import HUB, JSON, RELIABLE, bare_url, read_until_closed, subprotocols


class Client:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.connected = json.loads(ws.recv(timeout=5))

    def send(self, **fields: Any) -> None:
        self.ws.send(json.dumps(fields))

    def next(self, timeout: float = 5) -> Any:
        return json.loads(self.ws.recv(timeout=timeout))

    def nothing(self, wait: float = 0.3) -> bool:
        try:
            self.ws.recv(timeout=wait)
        except TimeoutError:
            return True
        return False


@pytest.fixture
def clients(bare: EmulatorThread) -> Iterator[dict[str, Any]]:
    """A publisher (with a role, not in the group), and subscribers in the group: a JSON, a
    reliable and a plain one."""
    with ExitStack() as stack:
        def open_client(user: str, subprotocol: str | None, roles: Sequence[str] = ()) -> Any:
            url = bare_url(bare, user, list(roles), [] if roles else ["room"])
            ws = stack.enter_context(connect(url, subprotocols=subprotocols(subprotocol)))
            return Client(ws) if subprotocol else ws

        yield {
            "publisher": open_client("pub", JSON, ["webpubsub.sendToGroups.ro*"]),
            "json": open_client("j", JSON),
            "reliable": open_client("r", RELIABLE),
            "plain": open_client("p", None),
        }


def start(publisher: Client, stream_id: str = "s1", **stream: Any) -> None:
    publisher.send(type="sendToGroup", group="room", stream={"streamId": stream_id, **stream})


def fragment(publisher: Client, sequence_id: int, data: Any, stream_id: str = "s1") -> None:
    publisher.send(type="streamData", streamId=stream_id, streamSequenceId=sequence_id,
                   dataType="json", data=data)


def test_a_stream_from_start_to_end(clients: dict[str, Any]) -> None:
    publisher, subscriber, reliable = clients["publisher"], clients["json"], clients["reliable"]
    start(publisher)
    assert publisher.next() == {"type": "streamAck", "streamId": "s1", "expectedSequenceId": 1}
    for n in (1, 2):
        fragment(publisher, n, {"n": n})
        assert publisher.next() == {"type": "streamAck", "streamId": "s1",
                                    "expectedSequenceId": n + 1}
    publisher.send(type="streamEnd", streamId="s1")
    assert publisher.next() == {"type": "streamClosed", "streamId": "s1"}
    frames = [subscriber.next() for _ in range(3)]
    assert frames == [
        {"type": "message", "from": "group", "group": "room", "fromUserId": "pub",
         "dataType": "json", "data": {"n": 1}, "stream": {"streamId": "s1", "streamSequenceId": 1}},
        {"type": "message", "from": "group", "group": "room", "fromUserId": "pub",
         "dataType": "json", "data": {"n": 2}, "stream": {"streamId": "s1", "streamSequenceId": 2}},
        {"type": "message", "from": "group", "group": "room", "fromUserId": "pub",
         "dataType": "text", "data": "",
         "stream": {"streamId": "s1", "streamSequenceId": 3, "endOfStream": True}},
    ]
    # A reliable subscriber gets its own connection-scoped sequence ids besides.
    assert [(m["sequenceId"], m["stream"]["streamSequenceId"]) for m in
            (reliable.next() for _ in range(3))] == [(1, 1), (2, 2), (3, 3)]
    # A plain subscriber gets the data, and no empty frame for the end.
    assert [clients["plain"].recv(timeout=5) for _ in range(2)] == ['{"n":1}', '{"n":2}']
    with pytest.raises(TimeoutError):
        clients["plain"].recv(timeout=0.3)
    # The same id may be used again once the stream is closed.
    start(publisher)
    assert publisher.next()["expectedSequenceId"] == 1


def test_duplicates_are_acknowledged_and_gaps_refused(clients: dict[str, Any]) -> None:
    publisher, subscriber = clients["publisher"], clients["json"]
    start(publisher)
    publisher.next()
    fragment(publisher, 1, "a")
    assert publisher.next()["expectedSequenceId"] == 2
    fragment(publisher, 1, "a again")
    assert publisher.next() == {"type": "streamAck", "streamId": "s1", "expectedSequenceId": 2}
    fragment(publisher, 3, "c")
    assert publisher.next() == {
        "type": "streamNack", "streamId": "s1", "expectedSequenceId": 2,
        "name": "InvalidSequenceId", "message": "Fragment 3 came before 2.",
    }
    fragment(publisher, 2, "b")
    assert publisher.next()["expectedSequenceId"] == 3
    assert [subscriber.next()["data"] for _ in range(2)] == ["a", "b"]
    assert subscriber.nothing()


def test_keep_alives_hold_an_idle_stream_open_and_silence_ends_it(
    clients: dict[str, Any]
) -> None:
    publisher, subscriber = clients["publisher"], clients["json"]
    start(publisher, idleTimeoutMs=300)
    publisher.next()
    for _ in range(6):
        time.sleep(0.1)
        publisher.send(type="streamData", streamId="s1")  # a keep-alive: no answer
    fragment(publisher, 1, "still open")
    assert publisher.next()["expectedSequenceId"] == 2
    assert subscriber.next()["data"] == "still open"
    closed = publisher.next(timeout=2)
    assert (closed["type"], closed["error"]["name"]) == ("streamClosed", "IdleTimeout")
    terminal = subscriber.next()["stream"]
    assert terminal["endOfStream"] is True
    assert terminal["error"]["name"] == "IdleTimeout"
    publisher.send(type="streamData", streamId="s1")
    assert publisher.next()["error"]["name"] == "StreamNotFound"


def test_the_publishers_own_error_reaches_the_group(clients: dict[str, Any]) -> None:
    publisher, subscriber = clients["publisher"], clients["json"]
    start(publisher)
    publisher.next()
    publisher.send(type="streamEnd", streamId="s1",
                   error={"message": "model overloaded", "userErrorCode": "E42"})
    # For the publisher it is a normal end: the service took it.
    assert publisher.next() == {"type": "streamClosed", "streamId": "s1"}
    assert subscriber.next()["stream"] == {
        "streamId": "s1", "streamSequenceId": 1, "endOfStream": True,
        "error": {"name": "UserError", "message": "model overloaded", "userErrorCode": "E42"},
    }


def test_unknown_streams_and_refused_starts(clients: dict[str, Any]) -> None:
    publisher, subscriber = clients["publisher"], clients["json"]
    fragment(publisher, 1, "x", stream_id="nope")
    assert publisher.next()["error"]["name"] == "StreamNotFound"
    publisher.send(type="streamEnd", streamId="nope")
    assert publisher.next() == {
        "type": "streamClosed", "streamId": "nope",
        "error": {"name": "StreamNotFound",
                  "message": "No stream 'nope' is open on this connection."},
    }
    publisher.send(type="sendToGroup", group="elsewhere", stream={"streamId": "f"})
    assert publisher.next()["error"]["name"] == "Forbidden"
    for bad in ({"streamId": "b", "idleTimeoutMs": 0}, {"streamId": "b", "idleTimeoutMs": "1"}):
        publisher.send(type="sendToGroup", group="room", stream=bad)
        assert publisher.next()["error"]["name"] == "BadRequest"
    publisher.send(type="sendToGroup", group="room", stream={"streamId": "b"}, data="x")
    assert publisher.next()["error"]["name"] == "BadRequest"
    publisher.send(type="sendToGroup", group="room", stream={"streamId": "b"}, ackId=1)
    assert publisher.next()["error"]["name"] == "BadRequest"
    # A start of a stream that is open already is refused; the open one goes on.
    start(publisher)
    publisher.next()
    start(publisher)
    assert publisher.next()["error"] == {"name": "BadRequest",
                                         "message": "Stream 's1' is open already."}
    fragment(publisher, 1, "fine")
    assert publisher.next()["expectedSequenceId"] == 2
    assert subscriber.next()["data"] == "fine"
    assert subscriber.nothing()


def test_a_malformed_fragment_ends_its_stream(clients: dict[str, Any]) -> None:
    publisher, subscriber = clients["publisher"], clients["json"]
    start(publisher)
    publisher.next()
    publisher.send(type="streamData", streamId="s1", streamSequenceId=1, data="no type")
    closed = publisher.next()
    assert closed["error"]["name"] == "BadRequest"
    assert subscriber.next()["stream"]["error"]["name"] == "Cancelled"


def test_no_echo_and_the_end_of_the_publishers_connection(bare: EmulatorThread) -> None:
    url = bare_url(bare, "pub", ["webpubsub.sendToGroup"], ["room"])
    with (
        connect(bare_url(bare, "sub", groups=["room"]), subprotocols=subprotocols(JSON)) as s,
        connect(url, subprotocols=subprotocols(JSON)) as p,
    ):
        subscriber, publisher = Client(s), Client(p)
        publisher.send(type="sendToGroup", group="room", noEcho=True, stream={"streamId": "s1"})
        publisher.next()
        fragment(publisher, 1, "x")
        assert publisher.next()["type"] == "streamAck"  # and not its own fragment
        assert subscriber.next()["data"] == "x"
        p.close()
        terminal = subscriber.next()["stream"]
        assert (terminal["endOfStream"], terminal["error"]["name"]) == (True, "Cancelled")


def test_a_revoked_permission_ends_the_stream(bare: EmulatorThread) -> None:
    url = bare_url(bare, "pub", ["webpubsub.sendToGroup.room"])
    with (
        connect(bare_url(bare, "sub", groups=["room"]), subprotocols=subprotocols(JSON)) as s,
        connect(url, subprotocols=subprotocols(JSON)) as p,
    ):
        subscriber, publisher = Client(s), Client(p)
        start(publisher)
        publisher.next()
        service = WebPubSubServiceClient.from_connection_string(bare.connection_string, HUB)
        service.revoke_permission("sendToGroup", publisher.connected["connectionId"],
                                  target_name="room")
        service.close()
        fragment(publisher, 1, "too late")
        assert publisher.next()["error"]["name"] == "Forbidden"
        assert subscriber.next()["stream"]["error"]["name"] == "Forbidden"


def test_a_connection_has_a_bounded_number_of_streams(
    clients: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatch, "MAX_STREAMS", 2)
    publisher = clients["publisher"]
    for n in range(3):
        start(publisher, f"s{n}")
    assert [publisher.next().get("error", {}).get("name") for _ in range(3)] == [
        None, None, "BadRequest"
    ]


INVALID = {
    "stream not an object": {"type": "sendToGroup", "group": "room", "stream": "s"},
    "no stream id": {"type": "sendToGroup", "group": "room", "stream": {}},
    "data without stream id": {"type": "streamData", "streamSequenceId": 1},
    "end without stream id": {"type": "streamEnd"},
}


@pytest.mark.parametrize("frame", INVALID.values(), ids=INVALID.keys())
def test_stream_frames_that_name_no_stream_close_the_connection(
    clients: dict[str, Any], frame: dict[str, Any]
) -> None:
    publisher = clients["publisher"]
    publisher.send(**frame)
    code, seen = read_until_closed(publisher.next)
    assert code == 1008
    assert seen[-1]["message"].startswith("Invalid message:")


def test_a_stream_outlives_a_dropped_reliable_publisher(bare: EmulatorThread) -> None:
    url = bare_url(bare, "pub", ["webpubsub.sendToGroup"])
    with (
        connect(bare_url(bare, "sub", groups=["room"]), subprotocols=subprotocols(JSON)) as s,
        connect(url, subprotocols=subprotocols(RELIABLE)) as p,
    ):
        subscriber, publisher = Client(s), Client(p)
        start(publisher)
        publisher.next()
        fragment(publisher, 1, "before")
        publisher.next()
        connection_id = publisher.connected["connectionId"]
        token = publisher.connected["reconnectionToken"]
        assert bare.drop(connection_id)
        base = bare.url.replace("http", "ws", 1)
        with connect(f"{base}/client/hubs/{HUB}?awps_connection_id={connection_id}"
                     f"&awps_reconnection_token={token}",
                     subprotocols=subprotocols(RELIABLE)) as again:
            recovered = Client(again)
            assert recovered.connected["connectionId"] == connection_id
            fragment(recovered, 2, "after")
            assert recovered.next() == {"type": "streamAck", "streamId": "s1",
                                        "expectedSequenceId": 3}
        assert [subscriber.next()["data"] for _ in range(2)] == ["before", "after"]
