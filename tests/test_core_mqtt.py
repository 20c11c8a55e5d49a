"""The MQTT facts the emulator and the testing helpers share (flask_webpubsub.core.mqtt)."""

from __future__ import annotations

import pytest

from flask_webpubsub.core import mqtt


@pytest.mark.parametrize(
    ("topic", "name"),
    [
        ("$webpubsub/server/events/chat", "chat"),
        ("$webpubsub/server/events/", None),
        ("$webpubsub/server/events/a/b", None),
        ("$webpubsub/server/messages", None),
        ("chat", None),
    ],
)
def test_event_topics_name_one_event(topic: str, name: str | None) -> None:
    assert mqtt.event_name_of(topic) == name


def test_reply_topics() -> None:
    assert mqtt.reply_topic("chat", True) == "$webpubsub/server/events/chat/succeeded"
    assert mqtt.reply_topic("chat", False) == "$webpubsub/server/events/chat/failed"


def test_user_properties_travel_as_headers_and_back() -> None:
    headers = mqtt.user_property_headers(
        [("a", "1"), ("b", "x y"), ("a", "2"), ("bad name", "v"), ("c", "line\nbreak")]
    )
    assert headers == {"mqtt-a": "1, 2", "mqtt-b": "x y"}
    back = mqtt.user_properties_from_headers(
        [("Content-Type", "text/plain"), ("MQTT-Colour", "red"), ("mqtt-", "x")]
    )
    assert back == [("Colour", "red")]


def test_connect_body_carries_the_password_as_base64() -> None:
    body = mqtt.connect_body(protocol_version=5, clean_start=True, username="u",
                             password=b"\xff\x00p", user_properties=[("k", "v")])
    assert body == {"protocolVersion": 5, "cleanStart": True, "username": "u",
                    "password": "/wBw", "userProperties": [{"name": "k", "value": "v"}]}
    assert mqtt.connect_body(protocol_version=4, clean_start=False, username=None,
                             password=None, user_properties=None)["password"] is None


def test_disconnected_body() -> None:
    assert mqtt.disconnected_body("gone", initiated_by_client=False) == {
        "reason": "gone", "mqtt": {"initiatedByClient": False, "disconnectPacket": None}}
    body = mqtt.disconnected_body(None, initiated_by_client=True, disconnect_code=4,
                                  user_properties=[("k", "v")])
    assert body["mqtt"]["disconnectPacket"] == {
        "code": 4, "userProperties": [{"name": "k", "value": "v"}]}


@pytest.mark.parametrize(
    ("status", "code", "version", "expected"),
    [
        (401, None, 4, 5), (400, None, 4, 4), (500, None, 4, 3), (403, 2, 4, 2), (403, 0x87, 4, 5),
        (401, None, 5, 0x87), (400, None, 5, 0x86), (500, None, 5, 0x80), (403, 0x9C, 5, 0x9C),
        (403, 7, 5, 0x80), (403, 0, 5, 0x80),
    ],
)
def test_connack_codes(status: int, code: int | None, version: int, expected: int) -> None:
    assert mqtt.connack_code(status, code, version) == expected


@pytest.mark.parametrize("client_id", ["a", "A1b2", "x" * 128])
def test_client_ids_the_service_takes(client_id: str) -> None:
    assert mqtt.CLIENT_ID.match(client_id)


@pytest.mark.parametrize("client_id", ["", "a-b", "x" * 129, "é", "a b"])
def test_client_ids_the_service_refuses(client_id: str) -> None:
    assert not mqtt.CLIENT_ID.match(client_id)
