"""The typed events handlers receive: context, connect fields, MQTT properties, and
``event.cloudevent``."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from flask_webpubsub import (
    ClientCertificate,
    ConnectedEvent,
    ConnectEvent,
    DisconnectedEvent,
    MqttConnectProperties,
    MqttDisconnectProperties,
    MqttMessageProperties,
    MqttProperties,
    MqttUserProperty,
    UserEvent,
)
from flask_webpubsub.core.service import build_event_headers
from flask_webpubsub.core.signature import sign
from flask_webpubsub.testing import WebPubSubTestClient
from tests.support import HOST, PRIMARY_KEY


def test_every_event_carries_the_connection_context(
    webpubsub_client: WebPubSubTestClient, seen: list[Any]
) -> None:
    conn = webpubsub_client.connection(user_id="alice", connection_id="conn-42",
                                       subprotocol="json.webpubsub.azure.v1")
    conn.state = {"k": "v"}
    conn.connected()
    conn.user_event("chat", "hi")
    conn.group_joined("g")
    conn.group_left("g")
    conn.disconnected("bye")
    assert [e.event_name for e in seen] == ["connected", "chat", "joined", "left", "disconnected"]
    assert [e.type for e in seen] == [
        "azure.webpubsub.sys.connected", "azure.webpubsub.user.chat", "azure.webpubsub.gp.joined",
        "azure.webpubsub.gp.left", "azure.webpubsub.sys.disconnected",
    ]
    for event in seen:
        assert (event.hub, event.connection_id, event.user_id) == ("chat", "conn-42", "alice")
        assert event.subprotocol == "json.webpubsub.azure.v1"
        assert event.state == {"k": "v"}
        assert event.origin == HOST
        assert event.id
        assert event.time
        assert (event.mqtt, event.is_mqtt) == (None, False)
    assert isinstance(seen[0], ConnectedEvent)
    assert isinstance(seen[-1], DisconnectedEvent)
    assert seen[-1].reason == "bye"


def test_anonymous_connections_have_no_user_id(
    webpubsub_client: WebPubSubTestClient, seen: list[Any]
) -> None:
    webpubsub_client.connection().user_event("m")
    headers = build_event_headers("m", hub="chat", connection_id="c", keys=[PRIMARY_KEY])
    headers["ce-userId"] = ""
    webpubsub_client.post(headers, b"")
    assert [e.user_id for e in seen] == [None, None]
    assert seen[0].subprotocol is None


def test_the_connect_event_fields(webpubsub_client: WebPubSubTestClient, seen: list[Any]) -> None:
    conn = webpubsub_client.connection(user_id="alice")
    conn.connect(
        claims={"role": ["admin", "user"], "iat": ["1"]},
        query={"access_token": ["t"], "room": ["a", "b"]},
        headers={"User-Agent": ["test"]},
        subprotocols=["json.webpubsub.azure.v1", "protobuf.webpubsub.azure.v1"],
        client_certificates=[{"thumbprint": "ABC123", "content": "-----BEGIN CERT..."}],
    )
    event = seen[0]
    assert isinstance(event, ConnectEvent)
    assert (event.event_name, event.type) == ("connect", "azure.webpubsub.sys.connect")
    assert event.claims == {"role": ["admin", "user"], "iat": ["1"], "sub": ["alice"]}
    assert event.query == {"access_token": ["t"], "room": ["a", "b"]}
    assert event.headers == {"User-Agent": ["test"]}
    assert event.subprotocols == ["json.webpubsub.azure.v1", "protobuf.webpubsub.azure.v1"]
    assert event.client_certificates == [ClientCertificate("ABC123", "-----BEGIN CERT...")]
    assert "BEGIN CERT" not in repr(event)
    assert "access_token" not in repr(event)


def test_lone_strings_in_connect_maps_read_as_one_item_lists(
    webpubsub_client: WebPubSubTestClient, seen: list[Any]
) -> None:
    headers = build_event_headers("connect", hub="chat", connection_id="c", keys=[PRIMARY_KEY])
    body = b'{"claims":{"sub":"bob"},"query":{"a":"1"},"headers":{},"clientCertificates":null}'
    assert webpubsub_client.post(headers, body).status == 204
    assert (seen[0].claims, seen[0].query, seen[0].client_certificates) == (
        {"sub": ["bob"]}, {"a": ["1"]}, []
    )


def test_the_mqtt_connect_event(webpubsub_client: WebPubSubTestClient, seen: list[Any]) -> None:
    conn = webpubsub_client.connection(mqtt=True)
    conn.connect(mqtt={
        "protocol_version": 5,
        "username": "device-1",
        "password": b"\x00secret\xff",
        "user_properties": [MqttUserProperty("model", "x1"), MqttUserProperty("model", "x2")],
    })
    event = seen[0]
    assert event.is_mqtt
    assert isinstance(event.mqtt, MqttConnectProperties)
    assert event.mqtt.protocol_version == 5
    assert event.mqtt.username == "device-1"
    assert event.mqtt.password == base64.b64encode(b"\x00secret\xff").decode()
    assert event.mqtt.password_bytes == b"\x00secret\xff"
    assert event.mqtt.user_properties == [
        MqttUserProperty("model", "x1"), MqttUserProperty("model", "x2")
    ]
    assert event.mqtt.physical_connection_id == conn.physical_connection_id
    assert event.mqtt.session_id is None  # not sent on connect
    assert "secret" not in repr(event)


def test_an_mqtt_connect_without_an_mqtt_object_defaults_to_3_1_1(
    webpubsub_client: WebPubSubTestClient, seen: list[Any]
) -> None:
    headers = build_event_headers(
        "connect", hub="chat", connection_id="c", keys=[PRIMARY_KEY], subprotocol="mqtt",
        physical_connection_id="p",
    )
    assert webpubsub_client.post(headers, b"{}").status == 204
    assert seen[0].mqtt == MqttConnectProperties(physical_connection_id="p")


def test_mqtt_user_event_properties_come_from_mqtt_headers(
    webpubsub_client: WebPubSubTestClient, seen: list[Any]
) -> None:
    conn = webpubsub_client.connection(mqtt=True)
    conn.user_event("telemetry", b"\x01", content_type="application/cbor",
                    mqtt_user_properties=[MqttUserProperty("unit", "celsius"),
                                          MqttUserProperty("Sensor-ID", "42")])
    event = seen[0]
    assert isinstance(event, UserEvent)
    assert isinstance(event.mqtt, MqttMessageProperties)
    assert event.mqtt.physical_connection_id == conn.physical_connection_id
    assert event.mqtt.session_id == conn.session_id
    # WSGI keeps no header name's case: names arrive lower-cased.
    assert event.mqtt.user_properties == [
        MqttUserProperty("unit", "celsius"), MqttUserProperty("sensor-id", "42")
    ]


def test_mqtt_notification_events(webpubsub_client: WebPubSubTestClient, seen: list[Any]) -> None:
    conn = webpubsub_client.connection(mqtt=True)
    conn.connected()
    conn.group_joined("t")
    headers = build_event_headers(
        "disconnected", hub="chat", connection_id=conn.connection_id, keys=[PRIMARY_KEY],
        subprotocol="mqtt", physical_connection_id="phys", session_id="sess",
    )
    packet = {"code": 4, "userProperties": [{"name": "a", "value": "b"}]}
    body = json.dumps(
        {"reason": "client closed", "mqtt": {"initiatedByClient": True, "disconnectPacket": packet}}
    ).encode()
    assert webpubsub_client.post(headers, body).status == 200
    connected, joined, disconnected = seen
    assert type(connected.mqtt) is MqttProperties
    assert connected.mqtt.session_id == conn.session_id
    assert type(joined.mqtt) is MqttProperties
    assert isinstance(disconnected.mqtt, MqttDisconnectProperties)
    assert disconnected.reason == "client closed"
    assert disconnected.mqtt == MqttDisconnectProperties(
        physical_connection_id="phys", session_id="sess", initiated_by_client=True,
        disconnect_packet=packet,
    )


def test_mqtt_disconnect_fields_of_the_wrong_type_read_as_none(
    webpubsub_client: WebPubSubTestClient, seen: list[Any]
) -> None:
    headers = build_event_headers(
        "disconnected", hub="chat", connection_id="c", keys=[PRIMARY_KEY], subprotocol="mqtt",
        physical_connection_id="p",
    )
    body = b'{"reason":null,"mqtt":{"initiatedByClient":"yes","disconnectPacket":[1]}}'
    assert webpubsub_client.post(headers, body).status == 200
    assert seen[0].mqtt.initiated_by_client is None
    assert seen[0].mqtt.disconnect_packet is None
    assert seen[0].reason is None


# CloudEvents ---------------------------------------------------------------------------------


def event_headers(event: str, **fields: Any) -> dict[str, str]:
    return build_event_headers(
        event, hub="chat", connection_id="conn1", keys=[PRIMARY_KEY], user_id="alice",
        event_id="evt-1", time="2024-05-01T10:00:00Z", origin=HOST, **fields,
    )


@pytest.mark.parametrize(
    ("content_type", "body", "data"),
    [
        ("text/plain", "h\u00e9".encode(), "h\u00e9"),
        ("application/json", b'{"a":[1,2]}', {"a": [1, 2]}),
        ("application/octet-stream", b"utf-8 looking bytes", b"utf-8 looking bytes"),
        ("application/octet-stream", b"\xff\x00", b"\xff\x00"),
    ],
)
def test_the_cloudevent_of_a_user_event(
    webpubsub_client: WebPubSubTestClient, seen: list[Any], content_type: str, body: bytes,
    data: Any
) -> None:
    headers = event_headers("message", content_type=content_type)
    assert webpubsub_client.post(headers, body).status == 204
    cloudevent = seen[0].cloudevent
    assert cloudevent is seen[0].cloudevent  # built once
    assert cloudevent["type"] == "azure.webpubsub.user.message"
    assert cloudevent["source"] == "/hubs/chat/client/conn1"
    assert cloudevent["id"] == "evt-1"
    assert cloudevent["time"] == "2024-05-01T10:00:00Z"
    assert cloudevent["specversion"] == "1.0"
    assert cloudevent["awpsversion"] == "1.0"
    assert cloudevent["hub"] == "chat"
    assert cloudevent["connectionid"] == "conn1"
    assert cloudevent["userid"] == "alice"
    assert cloudevent["eventname"] == "message"
    assert cloudevent.data == data
    assert type(cloudevent.data) is type(data)


def test_the_cloudevent_of_connect_and_notifications(
    webpubsub_client: WebPubSubTestClient, seen: list[Any]
) -> None:
    connect_body = {"claims": {"a": ["b"]}, "query": {}, "extra": 1}
    webpubsub_client.post(event_headers("connect"), json.dumps(connect_body).encode())
    webpubsub_client.post(event_headers("disconnected"), b'{"reason":"gone"}')
    webpubsub_client.post(event_headers("joined"), b'{"group":"g"}')
    connect, disconnected, joined = (e.cloudevent for e in seen)
    assert connect["type"] == "azure.webpubsub.sys.connect"
    assert connect.data == connect_body
    assert disconnected.data == {"reason": "gone"}
    assert joined.data == {"group": "g"}


def test_attribute_values_are_read_as_the_cloudevents_binding_writes_them(
    webpubsub_client: WebPubSubTestClient, seen: list[Any]
) -> None:
    """Percent-encoded UTF-8 (docs/protocol.md section 2), in the event and its CloudEvent."""
    headers = event_headers("message", content_type="text/plain")
    headers["ce-userId"] = "a%20b%C3%A9"
    headers["ce-signature"] = sign("conn1", [PRIMARY_KEY])
    webpubsub_client.post(headers, b"x")
    assert seen[0].cloudevent["userid"] == "a bé"
    assert seen[0].user_id == "a bé"


def test_the_mqtt_password_is_exact_bytes(
    webpubsub_client: WebPubSubTestClient, seen: list[Any]
) -> None:
    headers = build_event_headers(
        "connect", hub="chat", connection_id="c", keys=[PRIMARY_KEY], subprotocol="mqtt",
        physical_connection_id="p",
    )
    password = base64.b64encode(bytes(range(256))).decode()
    body = json.dumps({"mqtt": {"protocolVersion": 4, "password": password}}).encode()
    webpubsub_client.post(headers, body)
    assert seen[0].mqtt.password == password
    assert seen[0].mqtt.password_bytes == bytes(range(256))
