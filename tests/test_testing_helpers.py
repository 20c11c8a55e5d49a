"""The testing helpers themselves: connections carry what the service carries, and the helper
reaches a real server through its base URL as well as an app through its test client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from flask_webpubsub import ConnectEvent, ConnectResponse, UserEvent, WebPubSub
from flask_webpubsub.core.signature import sign
from flask_webpubsub.testing import WebPubSubTestClient

from .support import CONNECTION_STRING, PRIMARY_KEY, SECONDARY_KEY, base_url, serve


def test_an_mqtt_connection_stays_mqtt_after_connect(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient
) -> None:
    @webpubsub.on_user_event("kind")
    def kind(event: UserEvent) -> str:
        return "mqtt" if event.is_mqtt else "websocket"

    connection = webpubsub_client.connect(
        mqtt={"protocol_version": 5, "username": "u", "password": "p"}
    )
    assert connection.accepted
    assert connection.user_event("kind").data == "mqtt"


def test_groups_and_state_follow_the_connection(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient
) -> None:
    @webpubsub.on_connect
    def connect(event: ConnectEvent) -> ConnectResponse:
        event.state["seen"] = []
        return ConnectResponse(user_id="bob", groups=["a"], roles=["r"])

    @webpubsub.on_user_event("remember")
    def remember(event: UserEvent) -> None:
        event.state["seen"].append(event.data)

    connection = webpubsub_client.connect()
    assert (connection.user_id, connection.groups, connection.roles) == ("bob", ["a"], ["r"])
    connection.group_joined("b")
    assert connection.groups == ["a", "b"]
    connection.group_left("a")
    assert connection.groups == ["b"]
    assert connection.user_event("remember", "x").status == 204
    connection.user_event("remember", "y")
    assert connection.state == {"seen": ["x", "y"]}


def test_repeated_headers_can_be_sent(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient
) -> None:
    webpubsub.on_user_event("echo")(lambda event: event.data)
    pairs = [
        ("ce-type", "azure.webpubsub.user.echo"),
        ("ce-hub", "chat"),
        ("ce-connectionId", "c1"),
        ("ce-signature", sign("c1", ["not-the-key-not-the-key-not-the-key-0000"])),
        ("ce-signature", sign("c1", [PRIMARY_KEY])),
        ("Content-Type", "text/plain"),
    ]
    result = webpubsub_client.post(pairs, b"twice")
    assert result.status == 200
    assert result.body == b"twice"


def test_wrong_keys_fail_signature(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient
) -> None:
    webpubsub_client.keys = [SECONDARY_KEY]
    result = webpubsub_client.connection().connect()
    assert result.status == 401
    assert result.reason == "Signature validation failed."


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    with serve(app) as server:
        yield base_url(server)


def test_base_url_mode_talks_real_http(
    webpubsub: WebPubSub, live_server: str
) -> None:
    webpubsub.on_user_event("echo")(lambda event: event.data)
    client = WebPubSubTestClient(
        base_url=live_server, connection_string=CONNECTION_STRING, hub="chat"
    )
    connection = client.connect(user_id="alice")
    assert connection.accepted
    reply = connection.user_event("echo", {"n": 1})
    assert (reply.status, reply.data, reply.data_type) == (200, {"n": 1}, "json")
    assert connection.user_event("echo", b"\x00").data == b"\x00"
    assert client.options().status == 200
    assert client.options("evil.example.com").status == 400
    client.keys = [SECONDARY_KEY]
    assert client.connection().user_event("echo", "x").status == 401


def test_needs_an_app_or_a_base_url(app: Flask) -> None:
    with pytest.raises(TypeError, match="either"):
        WebPubSubTestClient()
    with pytest.raises(TypeError, match="either"):
        WebPubSubTestClient(app, base_url="http://127.0.0.1:1")
    with pytest.raises(RuntimeError, match="init_app"):
        WebPubSubTestClient(Flask(__name__))
