"""The testing helpers' MQTT client: sessions across network connections, the events the
service sends for each packet, user events on ``$webpubsub/server/events/{name}`` and their
replies, and the CONNACK codes of rejections, for MQTT 3.1.1 and 5."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, abort

from flask_webpubsub import (
    ConnectedEvent,
    ConnectEvent,
    ConnectRejection,
    ConnectResponse,
    DisconnectedEvent,
    GroupJoinedEvent,
    GroupLeftEvent,
    MqttDisconnectProperties,
    MqttMessageProperties,
    MqttUserProperty,
    UserEvent,
    UserEventResponse,
    WebPubSub,
)
from flask_webpubsub.testing import MqttMessage, MqttTestClient, WebPubSubTestClient
from tests.support import PRIMARY_KEY, base_url, make_app, serve


def device_app(seen: list[Any]) -> Flask:
    """An app for devices: ``connect`` accepts with a user id, groups, roles and CONNACK user
    properties, or refuses by the user name; ``reading`` answers with user properties of its
    own; every event is recorded."""
    app = make_app()
    webpubsub = WebPubSub(app)

    @webpubsub.on_connect
    def connect(event: ConnectEvent) -> ConnectResponse:
        seen.append(event)
        assert event.mqtt is not None
        username = event.mqtt.username or ""
        if username.startswith("refuse-"):
            status = int(username.split("-")[1])
            if len(username.split("-")) > 2:
                raise ConnectRejection(status, "refused", mqtt_code=int(username.split("-")[2]))
            abort(status, "refused")
        event.state["connects"] = int(event.state.get("connects", 0)) + 1
        return ConnectResponse(
            user_id=f"user-of-{username}", groups=["devices"], roles=["webpubsub.sendToGroup"],
            mqtt_user_properties=[MqttUserProperty("welcome", username)],
        )

    @webpubsub.on_connected
    def connected(event: ConnectedEvent) -> None:
        seen.append(event)

    @webpubsub.on_disconnected
    def disconnected(event: DisconnectedEvent) -> None:
        seen.append(event)

    @webpubsub.on_group_joined
    def joined(event: GroupJoinedEvent) -> None:
        seen.append(event)

    @webpubsub.on_group_left
    def left(event: GroupLeftEvent) -> None:
        seen.append(event)

    @webpubsub.on_user_event("reading")
    def reading(event: UserEvent) -> UserEventResponse | None:
        seen.append(event)
        if event.data == b"bad":
            abort(400, "bad reading")
        if event.data == b"quiet":
            return None
        return UserEventResponse(
            f"got {event.data!r} as {event.content_type}".encode(),
            mqtt_user_properties=[MqttUserProperty("unit", "celsius")],
        )

    @webpubsub.on_user_event("json")
    def json_reply(event: UserEvent) -> UserEventResponse:
        return UserEventResponse({"ok": True})

    return app


@pytest.fixture
def seen() -> list[Any]:
    return []


@pytest.fixture
def client(seen: list[Any]) -> WebPubSubTestClient:
    return WebPubSubTestClient(device_app(seen))


def names(seen: list[Any]) -> list[str]:
    return [event.event_name for event in seen]


def test_a_new_session_sends_connect_and_connected(
    client: WebPubSubTestClient, seen: list[Any]
) -> None:
    device = client.mqtt_client("device1", user_id="token-user", roles=["r0"], groups=["g0"])
    result = device.connect(username="d1", password="pw", user_properties=[("model", "x1")])
    assert (result.accepted, result.connack_code, result.session_present) == (True, 0, False)
    assert result.user_properties == [MqttUserProperty("welcome", "d1")]
    connect, connected = seen
    assert names(seen) == ["connect", "connected"]
    assert connect.connection_id == "device1"
    assert connect.user_id == "token-user"
    assert connect.claims["sub"] == ["token-user"]
    assert connect.subprotocol == "mqtt"
    assert connect.subprotocols == ["mqtt"]
    assert connect.cloudevent.data["mqtt"] == {
        "protocolVersion": 5, "cleanStart": True, "username": "d1", "password": "cHc=",
        "userProperties": [{"name": "model", "value": "x1"}],
    }
    assert connect.mqtt.password_bytes == b"pw"
    assert connect.mqtt.session_id is None  # not on connect
    assert connect.mqtt.physical_connection_id == device.physical_connection_id
    # The reply's identity applies to the new session; the token's roles and groups stay.
    assert connected.user_id == "user-of-d1"
    assert connected.mqtt.session_id == device.session_id
    assert connected.state == {"connects": 1}
    assert (device.user_id, device.groups, device.roles) == (
        "user-of-d1", ["g0", "devices"], ["r0", "webpubsub.sendToGroup"]
    )
    assert device.online
    assert "device1" in repr(device)
    assert "pw" not in repr(device)
    assert "online" in repr(device)


def test_a_resumed_session_sends_no_connected_and_keeps_its_identity(
    client: WebPubSubTestClient, seen: list[Any]
) -> None:
    device = client.mqtt_client("device2")
    device.connect(username="first", session_expiry=300)
    assert device.session_expiry == 30  # the service keeps a session 30 s at most
    first_physical, session_id = device.physical_connection_id, device.session_id
    assert device.drop() is None  # the session is kept
    assert not device.online
    assert "session kept" in repr(device)
    seen.clear()
    result = device.connect(clean_start=False, username="second")
    assert (result.accepted, result.session_present) == (True, True)
    assert names(seen) == ["connect"]
    assert seen[0].cloudevent.data["mqtt"]["cleanStart"] is False
    assert seen[0].user_id == "user-of-first"  # the session's user goes with its events
    assert device.physical_connection_id not in (None, first_physical)
    assert seen[0].mqtt.physical_connection_id == device.physical_connection_id
    assert device.session_id == session_id
    assert device.user_id == "user-of-first"  # the reply's user id is not applied
    assert device.groups == ["devices"]
    assert device.state == {"connects": 2}
    device.publish("$webpubsub/server/events/reading", b"1")
    assert seen[-1].mqtt.session_id == session_id


def test_resuming_without_a_session_starts_a_new_one(
    client: WebPubSubTestClient, seen: list[Any]
) -> None:
    result = client.mqtt_client("device3").connect(clean_start=False, username="d")
    assert result.session_present is False
    assert names(seen) == ["connect", "connected"]


def test_a_clean_start_replaces_a_kept_session(
    client: WebPubSubTestClient, seen: list[Any]
) -> None:
    device = client.mqtt_client("device4")
    device.connect(username="old", session_expiry=10)
    old_session = device.session_id
    device.drop()
    seen.clear()
    result = device.connect(username="new")
    assert result.session_present is False
    assert names(seen) == ["connect", "disconnected", "connected"]
    assert seen[1].mqtt.session_id == old_session
    assert seen[1].mqtt.initiated_by_client is False
    assert seen[1].reason == "The session was replaced by a clean start."
    assert seen[2].mqtt.session_id == device.session_id != old_session
    assert device.user_id == "user-of-new"


def test_a_second_connect_takes_an_online_session_over(
    client: WebPubSubTestClient, seen: list[Any]
) -> None:
    device = client.mqtt_client("device5")
    device.connect(username="a", session_expiry=5)
    first = device.physical_connection_id
    seen.clear()
    assert device.connect(clean_start=False, username="a").session_present
    assert names(seen) == ["connect"]
    assert device.physical_connection_id != first


def test_disconnect_ends_a_session_with_its_packet(
    client: WebPubSubTestClient, seen: list[Any]
) -> None:
    device = client.mqtt_client("device6")
    device.connect(username="d")
    session_id = device.session_id
    result = device.disconnect(0x04, user_properties=[MqttUserProperty("bye", "now")],
                               reason="done")
    assert result is not None
    assert result.status == 200
    event = seen[-1]
    assert isinstance(event, DisconnectedEvent)
    assert isinstance(event.mqtt, MqttDisconnectProperties)
    assert event.reason == "done"
    assert event.mqtt.session_id == session_id
    assert event.mqtt.initiated_by_client is True
    assert event.mqtt.disconnect_packet == {
        "code": 4, "userProperties": [{"name": "bye", "value": "now"}]
    }
    assert device.session is None
    assert (device.user_id, device.groups, device.state, device.session_id) == (
        None, [], {}, None
    )
    assert "no session" in repr(device)


def test_a_drop_ends_a_session_that_does_not_outlive_it(
    client: WebPubSubTestClient, seen: list[Any]
) -> None:
    device = client.mqtt_client("device7")
    device.connect(username="d")
    assert device.drop("network lost") is not None
    assert seen[-1].reason == "network lost"
    assert seen[-1].mqtt.initiated_by_client is False
    assert seen[-1].mqtt.disconnect_packet is None


def test_a_kept_session_ends_when_it_expires(
    client: WebPubSubTestClient, seen: list[Any]
) -> None:
    device = client.mqtt_client("device8")
    device.connect(username="d", session_expiry=30)
    assert device.disconnect(user_properties=[("k", "v")]) is None
    assert names(seen) == ["connect", "connected"]
    expired = device.expire()
    assert expired.status == 200
    assert seen[-1].mqtt.initiated_by_client is True
    assert seen[-1].mqtt.disconnect_packet == {
        "code": 0, "userProperties": [{"name": "k", "value": "v"}]
    }
    assert device.session is None
    # A DISCONNECT may shorten the expiry to 0: the session ends with it.
    device.connect(username="d", session_expiry=30)
    assert device.disconnect(session_expiry=0) is not None
    # A drop of a kept session, then its expiry: not initiated by the client.
    device.connect(username="d", session_expiry=30)
    device.drop()
    device.expire()
    assert seen[-1].mqtt.initiated_by_client is False
    assert seen[-1].mqtt.disconnect_packet is None


def test_mqtt_3_1_1_sessions(client: WebPubSubTestClient, seen: list[Any]) -> None:
    device = client.mqtt_client("old1", protocol_version=4)
    result = device.connect(clean_start=False, username="d", password=b"\x00\xff")
    assert result.user_properties == [MqttUserProperty("welcome", "d")]
    assert seen[0].cloudevent.data["mqtt"] == {
        "protocolVersion": 4, "cleanStart": False, "username": "d", "password": "AP8=",
        "userProperties": None,
    }
    assert seen[0].mqtt.protocol_version == 4
    assert device.session_expiry == 30  # no clean session: the service keeps it
    assert device.disconnect() is None
    device.expire()
    assert seen[-1].mqtt.disconnect_packet == {"code": 0, "userProperties": []}
    device.connect(username="d")  # clean session: ends with the network connection
    assert device.disconnect() is not None


def test_publish_to_an_event_topic_is_a_user_event_with_the_reply_mapped(
    client: WebPubSubTestClient, seen: list[Any]
) -> None:
    device = client.mqtt_client("device9")
    device.connect(username="d")
    reply = device.publish(
        "$webpubsub/server/events/reading", b"21.5", qos=1, content_type="text/x-celsius",
        user_properties=[("sensor", "t1"), MqttUserProperty("room", "kitchen")],
        correlation_data=b"req-1",
    )
    event = seen[-1]
    assert isinstance(event, UserEvent)
    assert isinstance(event.mqtt, MqttMessageProperties)
    assert (event.event_name, event.data, event.content_type) == (
        "reading", b"21.5", "text/x-celsius"
    )
    assert event.mqtt.user_properties == [
        MqttUserProperty("sensor", "t1"), MqttUserProperty("room", "kitchen")
    ]
    assert event.mqtt.session_id == device.session_id
    assert reply == MqttMessage(
        topic="$webpubsub/server/events/reading/succeeded",
        payload=b"got b'21.5' as text/x-celsius",
        qos=1,
        content_type="application/octet-stream",
        user_properties=(MqttUserProperty("unit", "celsius"),
                         MqttUserProperty("azure-status-code", "200")),
        correlation_data=b"req-1",
    )
    assert (reply.succeeded, reply.status_code) == (True, 200)
    assert reply.text == "got b'21.5' as text/x-celsius"
    assert reply.http is not None
    assert reply.http.status == 200


def test_a_payload_without_content_type_is_binary_and_str_is_utf8(
    client: WebPubSubTestClient, seen: list[Any]
) -> None:
    device = client.mqtt_client("device10")
    device.connect(username="d")
    device.publish("$webpubsub/server/events/reading", "é")
    assert (seen[-1].data, seen[-1].content_type) == ("é".encode(), "application/octet-stream")


def test_a_failed_event_replies_on_the_failed_topic(
    client: WebPubSubTestClient, seen: list[Any]
) -> None:
    device = client.mqtt_client("device11")
    device.connect(username="d")
    reply = device.publish("$webpubsub/server/events/reading", b"bad")
    assert reply.topic == "$webpubsub/server/events/reading/failed"
    assert (reply.succeeded, reply.status_code, reply.payload) == (False, 400, b"bad reading")
    assert device.online  # the client stays connected
    missing = device.publish("$webpubsub/server/events/nothing-handles-this")
    assert missing.topic == "$webpubsub/server/events/nothing-handles-this/succeeded"
    assert (missing.status_code, missing.payload) == (204, b"")


def test_a_reply_with_nothing_and_a_json_reply(
    client: WebPubSubTestClient, seen: list[Any]
) -> None:
    device = client.mqtt_client("device12")
    device.connect(username="d")
    quiet = device.publish("$webpubsub/server/events/reading", b"quiet")
    assert (quiet.succeeded, quiet.status_code, quiet.payload, quiet.content_type) == (
        True, 204, b"", None
    )
    data = device.publish("$webpubsub/server/events/json")
    assert (data.payload, data.content_type) == (b'{"ok":true}', "application/json; charset=utf-8")


def test_mqtt_3_1_1_replies_have_no_properties(
    client: WebPubSubTestClient, seen: list[Any]
) -> None:
    device = client.mqtt_client("old2", protocol_version=4)
    device.connect(username="d")
    reply = device.publish("$webpubsub/server/events/reading", b"1", qos=2)
    assert reply == MqttMessage("$webpubsub/server/events/reading/succeeded",
                                b"got b'1' as application/octet-stream", 2)
    assert reply.http is not None
    assert reply.http.headers["mqtt-unit"] == "celsius"  # 3.1.1 cannot carry it
    assert reply.status_code is None


@pytest.mark.parametrize(
    ("username", "version", "status", "code"),
    [
        ("refuse-400", 4, 400, 4), ("refuse-401", 4, 401, 5), ("refuse-403", 4, 403, 5),
        ("refuse-404", 4, 404, 5), ("refuse-500", 4, 500, 3), ("refuse-503", 4, 503, 3),
        ("refuse-400", 5, 400, 134), ("refuse-401", 5, 401, 135), ("refuse-403", 5, 403, 135),
        ("refuse-429", 5, 429, 135), ("refuse-500", 5, 500, 128),
        ("refuse-403-151", 5, 403, 151),  # an explicit MQTT 5 code (quota exceeded)
        ("refuse-403-7", 5, 403, 128),  # not a CONNACK code: unspecified error
        ("refuse-403-2", 4, 403, 2),  # an explicit 3.1.1 code (identifier rejected)
        ("refuse-403-151", 4, 403, 5),  # not a 3.1.1 code: the status's
    ],
)
def test_a_refused_connect_gives_the_connack_code_the_service_sends(
    client: WebPubSubTestClient, seen: list[Any], username: str, version: int, status: int,
    code: int,
) -> None:
    device = client.mqtt_client("device13", protocol_version=version)
    result = device.connect(username=username)
    assert (result.accepted, result.status, result.connack_code) == (False, status, code)
    assert result.session_present is False
    assert result.user_properties == []
    assert names(seen) == ["connect"]
    assert not device.online
    assert device.session is None


def test_a_refused_connect_leaves_a_kept_session_as_it_was(
    client: WebPubSubTestClient, seen: list[Any]
) -> None:
    device = client.mqtt_client("device14")
    device.connect(username="d", session_expiry=30)
    physical, session = device.physical_connection_id, device.session_id
    device.drop()
    assert not device.connect(clean_start=False, username="refuse-403").accepted
    assert (device.session_id, device.physical_connection_id) == (session, physical)
    assert device.session is not None
    assert device.session.physical_connection_id == physical
    assert device.connect(clean_start=False, username="d").session_present


def test_subscriptions_join_and_leave_groups(
    client: WebPubSubTestClient, seen: list[Any]
) -> None:
    device = client.mqtt_client("device15")
    device.connect(username="d")
    joined = device.subscribe("rooms/kitchen")
    assert joined is not None
    assert joined.status == 200
    assert (seen[-1].event_name, seen[-1].group) == ("joined", "rooms/kitchen")
    assert device.groups == ["devices", "rooms/kitchen"]
    assert device.subscribe("$webpubsub/server/messages") is None
    assert device.unsubscribe("$webpubsub/server/messages") is None
    device.unsubscribe("rooms/kitchen")
    assert (seen[-1].event_name, seen[-1].group) == ("left", "rooms/kitchen")
    assert device.groups == ["devices"]


@pytest.mark.parametrize("topic", ["rooms/+", "rooms/#", "#", "$share/g/rooms", ""])
def test_wildcard_and_shared_subscriptions_are_refused(
    client: WebPubSubTestClient, topic: str
) -> None:
    device = client.mqtt_client("device16")
    device.connect(username="d")
    with pytest.raises(ValueError, match="no wildcard or shared subscriptions"):
        device.subscribe(topic)
    with pytest.raises(ValueError, match="no wildcard or shared subscriptions"):
        device.unsubscribe(topic)


@pytest.mark.parametrize("client_id", ["", "has-dash", "é", "x" * 129, "a b"])
def test_client_ids_the_service_refuses(client: WebPubSubTestClient, client_id: str) -> None:
    with pytest.raises(ValueError, match="use 1 to 128 letters and digits"):
        client.mqtt_client(client_id)


def test_misuse_is_a_clear_error(client: WebPubSubTestClient, seen: list[Any]) -> None:
    with pytest.raises(ValueError, match=r"must be 4 \(MQTT 3\.1\.1\) or 5"):
        client.mqtt_client(protocol_version=3)
    device = client.mqtt_client()
    assert device.client_id.isalnum()
    for call in (
        lambda: device.publish("$webpubsub/server/events/reading"),
        lambda: device.subscribe("a"),
        lambda: device.unsubscribe("a"),
        device.disconnect,
        device.drop,
    ):
        with pytest.raises(RuntimeError, match="the client is not connected"):
            call()
    with pytest.raises(RuntimeError, match="only a session kept while its client is offline"):
        device.expire()
    device.connect(username="d")
    with pytest.raises(RuntimeError, match="only a session kept while its client is offline"):
        device.expire()
    for topic in ("rooms/kitchen", "$webpubsub/server/events/", "$webpubsub/server/events/a/b"):
        with pytest.raises(ValueError, match="is not an event topic"):
            device.publish(topic)
    with pytest.raises(ValueError, match="qos must be 0, 1 or 2"):
        device.publish("$webpubsub/server/events/reading", qos=3)
    assert names(seen) == ["connect", "connected"]


def test_mqtt_3_1_1_has_no_properties(client: WebPubSubTestClient, seen: list[Any]) -> None:
    device = client.mqtt_client(protocol_version=4)
    with pytest.raises(ValueError, match="no user properties and no session expiry"):
        device.connect(user_properties=[("a", "b")])
    with pytest.raises(ValueError, match="no user properties and no session expiry"):
        device.connect(session_expiry=10)
    device.connect(username="d")
    for kwargs in ({"content_type": "text/plain"}, {"user_properties": [("a", "b")]},
                   {"correlation_data": b"c"}):
        with pytest.raises(ValueError, match=r"MQTT 3\.1\.1 has no content type"):
            device.publish("$webpubsub/server/events/reading", **kwargs)
    with pytest.raises(ValueError, match="DISCONNECT has no reason code"):
        device.disconnect(4)
    assert names(seen) == ["connect", "connected"]


@pytest.fixture
def live(seen: list[Any]) -> Iterator[str]:
    with serve(device_app(seen)) as server:
        yield base_url(server)


def test_an_mqtt_client_over_real_http(live: str, seen: list[Any]) -> None:
    client = WebPubSubTestClient(base_url=live, access_key=PRIMARY_KEY, hub="chat")
    device: MqttTestClient = client.mqtt_client("live1")
    assert device.connect(username="d", session_expiry=30).user_properties == [
        MqttUserProperty("welcome", "d")
    ]
    reply = device.publish("$webpubsub/server/events/reading", b"7",
                           user_properties=[("a", "1")])
    assert reply.user_properties[0] == MqttUserProperty("unit", "celsius")
    assert reply.status_code == 200
    device.drop()
    assert device.connect(clean_start=False).session_present
    device.disconnect(session_expiry=0)
    assert names(seen) == ["connect", "connected", "reading", "connect", "disconnected"]


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ([MqttUserProperty("a b", "v")], "the MQTT user property name 'a b' cannot be a header"),
        ([MqttUserProperty("", "v")], "the MQTT user property name '' cannot be a header"),
        ([MqttUserProperty("k", "é")], "the value of the MQTT user property 'k' is not printable"),
        ([MqttUserProperty("k", "a\r\nb")], "the value of the MQTT user property 'k' is not"),
        ([("k", "v")], "must be a list of MqttUserProperty, not tuple"),
        (MqttUserProperty("k", "v"), "mqtt_user_properties must be a list of MqttUserProperty."),
        ("kv", "must be a list of MqttUserProperty"),
    ],
)
def test_reply_user_properties_that_cannot_travel_are_a_logged_500(
    seen: list[Any], properties: Any, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = device_app(seen)
    webpubsub: WebPubSub = app.extensions["webpubsub"].extension
    webpubsub.on_user_event("bad")(
        lambda event: UserEventResponse(b"x", mqtt_user_properties=properties)
    )
    device = WebPubSubTestClient(app).mqtt_client("device17")
    device.connect(username="d")
    reply = device.publish("$webpubsub/server/events/bad")
    assert (reply.topic, reply.status_code) == ("$webpubsub/server/events/bad/failed", 500)
    assert reply.payload == b"Internal server error."
    assert message in caplog.text


def test_reply_user_properties_may_repeat_a_name(client: WebPubSubTestClient) -> None:
    app = client.application
    assert app is not None
    webpubsub: WebPubSub = app.extensions["webpubsub"].extension
    webpubsub.on_user_event("twice")(lambda event: UserEventResponse(
        "x", mqtt_user_properties=[MqttUserProperty("k", "1"), MqttUserProperty("k", "2")],
        metadata={"m": "1"},
    ))
    device = client.mqtt_client("device18")
    device.connect(username="d")
    reply = device.publish("$webpubsub/server/events/twice")
    assert reply.user_properties == (
        MqttUserProperty("k", "1"), MqttUserProperty("k", "2"),
        MqttUserProperty("azure-status-code", "200"),
    )
    assert reply.http is not None
    assert reply.http.headers["x-webpubsub-metadata-m"] == "1"
