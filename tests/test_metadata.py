"""Message metadata: ``event.metadata`` from the ``x-webpubsub-metadata-*`` headers of a user
event, ``UserEventResponse(metadata=...)`` on the reply, over real HTTP and end to end through
the emulator with a raw JSON WebSocket client."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from flask import Flask, Response, request
from websockets.sync.client import connect

from flask_webpubsub import (
    InvalidMetadataError,
    UserEvent,
    UserEventResponse,
    WebPubSub,
)
from flask_webpubsub.core.payload import (
    MAX_METADATA_KEY_LENGTH,
    MAX_METADATA_LENGTH,
    MAX_METADATA_VALUE_LENGTH,
    read_metadata,
    validate_metadata,
)
from flask_webpubsub.core.service import build_event_headers
from flask_webpubsub.testing import WebPubSubTestClient
from tests.emulator.conftest import JSON, Stack, start_stack, subprotocols
from tests.support import PRIMARY_KEY, base_url, make_app, serve


@pytest.fixture
def recorded(webpubsub: WebPubSub) -> list[Mapping[str, str]]:
    """The metadata every ``meta`` event arrived with; the reply echoes it with one more key,
    and ``only-metadata`` replies with metadata and no payload."""
    seen: list[Mapping[str, str]] = []

    @webpubsub.on_user_event("meta")
    def meta(event: UserEvent) -> UserEventResponse:
        seen.append(event.metadata)
        return UserEventResponse(event.data, metadata={**event.metadata, "Answered-By": "app"})

    @webpubsub.on_user_event("only-metadata")
    def only_metadata(event: UserEvent) -> UserEventResponse:
        return UserEventResponse(metadata={"seen": "1"})

    return seen


def test_metadata_reaches_the_handler_and_comes_back_on_the_reply(
    webpubsub_client: WebPubSubTestClient, recorded: list[Mapping[str, str]]
) -> None:
    connection = webpubsub_client.connect(user_id="alice")
    reply = connection.user_event("meta", "hi", metadata={"Trace-Id": "t1", "lang": "en"})
    assert recorded == [{"trace-id": "t1", "lang": "en"}]
    assert (reply.status, reply.data) == (200, "hi")
    assert reply.metadata == {"trace-id": "t1", "lang": "en", "answered-by": "app"}
    assert reply.headers["x-webpubsub-metadata-answered-by"] == "app"


def test_an_event_without_metadata_has_an_empty_read_only_mapping(
    webpubsub_client: WebPubSubTestClient, recorded: list[Mapping[str, str]]
) -> None:
    reply = webpubsub_client.connect().user_event("meta", {"a": 1})
    assert recorded == [{}]
    with pytest.raises(TypeError):
        recorded[0]["k"] = "v"  # type: ignore[index]
    assert reply.data == {"a": 1}
    assert reply.metadata == {"answered-by": "app"}


def test_metadata_alone_is_a_204_with_the_headers(
    webpubsub_client: WebPubSubTestClient, recorded: list[Mapping[str, str]]
) -> None:
    reply = webpubsub_client.connect().user_event("only-metadata")
    assert (reply.status, reply.body, reply.data) == (204, b"", None)
    assert reply.metadata == {"seen": "1"}
    assert "Content-Type" not in reply.headers


def test_the_metadata_is_read_as_the_service_sends_it(
    webpubsub_client: WebPubSubTestClient, recorded: list[Mapping[str, str]]
) -> None:
    """Raw headers: any case, white space around values, a bare prefix (no key)."""
    headers = build_event_headers(
        "meta", hub="chat", connection_id="c1", keys=webpubsub_client.keys,
        content_type="text/plain",
    )
    headers.update({"X-WebPubSub-Metadata-Trace-ID": "  t2 ", "x-webpubsub-metadata-": "no",
                    "X-WEBPUBSUB-METADATA-A.B": "c"})
    assert webpubsub_client.post(headers, b"x").status == 200
    assert recorded == [{"trace-id": "t2", "a.b": "c"}]
    assert repr(recorded[0]) == repr(dict(recorded[0]))
    assert len(recorded[0]) == 2
    assert recorded[0]["a.b"] == "c"


def test_the_event_repr_shows_the_metadata(
    app: Flask, webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient
) -> None:
    reprs: list[str] = []
    webpubsub.on_user_event("r")(lambda event: reprs.append(repr(event)))
    webpubsub_client.connect().user_event("r", metadata={"k": "v"})
    assert "metadata={'k': 'v'}" in reprs[0]


def test_metadata_over_real_http(app: Flask, recorded: list[Mapping[str, str]]) -> None:
    with serve(app) as server:
        client = WebPubSubTestClient(base_url=base_url(server), access_key=PRIMARY_KEY, hub="chat")
        reply = client.connect().user_event("meta", b"\x01", metadata={"k": "v"})
    assert recorded == [{"k": "v"}]
    assert (reply.data, reply.metadata) == (b"\x01", {"k": "v", "answered-by": "app"})


def test_metadata_through_direct_dispatch() -> None:
    app = make_app(WEBPUBSUB_DIRECT_DISPATCH=True, TESTING=False)
    webpubsub = WebPubSub(app)

    @webpubsub.on_user_event("meta")
    def meta(event: UserEvent) -> UserEventResponse:
        return UserEventResponse(event.data, metadata={**event.metadata, "direct": "yes"})

    reply = WebPubSubTestClient(app).connect().user_event("meta", "x", metadata={"k": "v"})
    assert (reply.data, reply.metadata) == ("x", {"k": "v", "direct": "yes"})


def test_metadata_is_validated_where_it_is_built() -> None:
    response = UserEventResponse("x", metadata={"Key": "v"})
    assert dict(response.metadata) == {"key": "v"}
    with pytest.raises(TypeError):
        response.metadata["other"] = "v"  # type: ignore[index]
    assert UserEventResponse("x") == UserEventResponse("x", metadata={})
    assert UserEventResponse("x", metadata={"a": "b"}) == UserEventResponse(
        "x", metadata={"A": "b"}
    )


@pytest.mark.parametrize(
    ("metadata", "error", "message"),
    [
        ({"": "v"}, InvalidMetadataError, "is empty or has characters"),
        ({"a b": "v"}, InvalidMetadataError, "has characters a header name cannot have"),
        ({"a:b": "v"}, InvalidMetadataError, "has characters a header name cannot have"),
        ({"clé": "v"}, InvalidMetadataError, "has characters a header name cannot have"),
        ({"k" * (MAX_METADATA_KEY_LENGTH + 1): "v"}, InvalidMetadataError,
         f"longer than {MAX_METADATA_KEY_LENGTH} characters"),
        ({"k": "é"}, InvalidMetadataError, "is not printable ASCII"),
        ({"k": "a\r\nSet-Cookie: x=1"}, InvalidMetadataError, "is not printable ASCII"),
        ({"k": "a\tb"}, InvalidMetadataError, "is not printable ASCII"),
        ({"k": " v"}, InvalidMetadataError, "white space"),
        ({"k": "v" * (MAX_METADATA_VALUE_LENGTH + 1)}, InvalidMetadataError,
         f"longer than {MAX_METADATA_VALUE_LENGTH} characters"),
        ({f"k{i}": "v" * 1000 for i in range(9)}, InvalidMetadataError,
         f"longer than {MAX_METADATA_LENGTH} characters in all"),
        ({"Trace": "1", "trace": "2"}, InvalidMetadataError, "differs from another only in case"),
        ({"k": 1}, TypeError, "must be a string, not int"),
        ({1: "v"}, TypeError, "keys must be strings, not int"),
        ([("k", "v")], TypeError, "must be a mapping of strings, not list"),
    ],
)
def test_invalid_metadata_is_a_clear_error(
    metadata: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        UserEventResponse("x", metadata=metadata)
    with pytest.raises(error, match=message):
        validate_metadata(metadata)


def test_the_limits_themselves_are_allowed() -> None:
    key = "k" * MAX_METADATA_KEY_LENGTH
    value = "v" * MAX_METADATA_VALUE_LENGTH
    assert validate_metadata({key: value}) == {key: value}
    token_chars = "!#$%&'*+-.^_`|~09AZaz"
    assert validate_metadata({token_chars: ""}) == {token_chars.lower(): ""}
    exactly = {f"k{i:03}": "v" * (MAX_METADATA_LENGTH // 8 - 4) for i in range(8)}
    assert sum(len(k) + len(v) for k, v in exactly.items()) == MAX_METADATA_LENGTH
    assert validate_metadata(exactly) == exactly


def test_a_handler_with_invalid_metadata_fails_with_a_logged_500(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    @webpubsub.on_user_event("bad")
    def bad(event: UserEvent) -> UserEventResponse:
        return UserEventResponse("x", metadata={"k": "é"})

    with caplog.at_level(logging.ERROR, "flask_webpubsub"):
        reply = webpubsub_client.connect().user_event("bad")
    assert (reply.status, reply.reason) == (500, "Internal server error.")
    assert "the metadata value of 'k' is not printable ASCII" in caplog.text


def test_the_test_client_refuses_metadata_the_service_would_refuse(
    webpubsub_client: WebPubSubTestClient, recorded: list[Mapping[str, str]]
) -> None:
    connection = webpubsub_client.connect()
    with pytest.raises(InvalidMetadataError, match="not printable ASCII"):
        connection.user_event("meta", "x", metadata={"k": "\x00"})
    assert recorded == []


def test_the_test_client_refuses_a_reply_with_invalid_metadata(
    app: Flask, webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient
) -> None:
    webpubsub.on_user_event("raw")(lambda event: "x")

    @app.after_request
    def add_header(response: Response) -> Response:
        if request.headers.get("ce-eventName") == "raw":
            response.headers["x-webpubsub-metadata-a b"] = "v"
        return response

    with pytest.raises(AssertionError, match="the service refuses this reply's metadata"):
        webpubsub_client.connect().user_event("raw")


def test_read_metadata_keeps_the_last_of_a_repeated_key() -> None:
    headers = [("x-webpubsub-metadata-k", "1"), ("X-WebPubSub-Metadata-K", "2"),
               ("x-webpubsub-metadat-k", "no"), ("content-type", "text/plain")]
    assert read_metadata(headers) == {"k": "2"}


# -- end to end: a raw JSON WebSocket client, the emulator and the app ---------------------------


@pytest.fixture
def meta_stack() -> Iterator[Stack]:
    stack = start_stack()
    webpubsub: WebPubSub = stack.app.extensions["webpubsub"].extension
    seen = []

    @webpubsub.on_user_event("meta")
    def meta(event: UserEvent) -> UserEventResponse:
        seen.append(dict(event.metadata))
        if event.data == "":
            return UserEventResponse(metadata={"only": "metadata"})
        return UserEventResponse("got " + str(event.data),
                                 metadata={"Reply-Id": "r1", **event.metadata})

    stack.app.config["seen"] = seen
    try:
        yield stack
    finally:
        stack.emulator.stop()
        stack.server.stop()


def test_metadata_end_to_end_through_the_emulator(meta_stack: Stack) -> None:
    with connect(meta_stack.negotiate("m"), subprotocols=subprotocols(JSON)) as ws:
        assert json.loads(ws.recv(timeout=5))["event"] == "connected"
        ws.send(json.dumps({"type": "event", "event": "meta", "dataType": "text", "data": "q",
                            "metadata": {"Trace-Id": "t1"}, "ackId": 1}))
        assert json.loads(ws.recv(timeout=5)) == {
            "type": "message", "from": "server", "dataType": "text", "data": "got q",
            "metadata": {"reply-id": "r1", "trace-id": "t1"},
        }
        assert json.loads(ws.recv(timeout=5)) == {"type": "ack", "ackId": 1, "success": True}
        ws.send(json.dumps({"type": "event", "event": "meta", "dataType": "text", "data": "",
                            "metadata": {"k": "v"}, "ackId": 2}))
        assert json.loads(ws.recv(timeout=5)) == {
            "type": "message", "from": "server", "dataType": "text", "data": "",
            "metadata": {"only": "metadata"},
        }
        assert json.loads(ws.recv(timeout=5))["success"] is True
    assert meta_stack.app.config["seen"] == [{"trace-id": "t1"}, {"k": "v"}]
