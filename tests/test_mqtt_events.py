"""An MQTT client's ``connect``: the password reaches the handler as sent (base64) and decoded,
whatever its form; the connect is never refused for it before the handler decides."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest
from flask import abort

from flask_webpubsub import ConnectEvent, ConnectResponse, MqttConnectProperties, WebPubSub
from flask_webpubsub.core.service import build_event_headers
from flask_webpubsub.testing import HTTPResult, WebPubSubTestClient
from tests.support import PRIMARY_KEY

SECRET = b"\x00s3cr3t-device-password\xff"


@pytest.fixture
def passwords(webpubsub: WebPubSub) -> list[MqttConnectProperties]:
    """Every MQTT connect's properties; a client whose password's bytes are not ``SECRET`` is
    refused with 401, as an app that checks passwords would."""
    seen: list[MqttConnectProperties] = []

    @webpubsub.on_connect
    def connect(event: ConnectEvent) -> ConnectResponse:
        assert event.mqtt is not None
        seen.append(event.mqtt)
        if event.mqtt.password is not None and event.mqtt.password_bytes != SECRET:
            abort(401, "wrong password")
        return ConnectResponse(user_id=event.mqtt.username)

    return seen


def mqtt_connect(client: WebPubSubTestClient, mqtt: Any, version: int = 5) -> HTTPResult:
    headers = build_event_headers(
        "connect", hub="chat", connection_id="device-1", keys=[PRIMARY_KEY],
        subprotocol="mqtt", physical_connection_id="p1", content_type="application/json",
    )
    body: dict[str, Any] = {"mqtt": mqtt}
    if isinstance(mqtt, dict):
        mqtt.setdefault("protocolVersion", version)
    return client.post(headers, json.dumps(body).encode())


def test_a_valid_password_is_there_as_sent_and_decoded(
    webpubsub_client: WebPubSubTestClient, passwords: list[MqttConnectProperties]
) -> None:
    sent = base64.b64encode(SECRET).decode()
    result = mqtt_connect(webpubsub_client, {"username": "d1", "password": sent})
    assert result.status == 200
    assert passwords[0].password == sent
    assert passwords[0].password_bytes == SECRET


def test_an_empty_password_is_empty_bytes(
    webpubsub_client: WebPubSubTestClient, passwords: list[MqttConnectProperties]
) -> None:
    assert mqtt_connect(webpubsub_client, {"password": ""}).status == 401
    assert (passwords[0].password, passwords[0].password_bytes) == ("", b"")


@pytest.mark.parametrize(
    "sent",
    ["not base64!", "c2VjcmV0", "c2VjcmV", "Zg=", "c2Vj\ncmV0", "ü", "=" * 4 + "AAAA"],
)
def test_a_password_that_is_not_base64_reaches_the_handler(
    webpubsub_client: WebPubSubTestClient, passwords: list[MqttConnectProperties], sent: str
) -> None:
    """The handler decides: here it refuses with 401, so the MQTT 5 client gets 135."""
    result = mqtt_connect(webpubsub_client, {"password": sent})
    assert (result.status, result.reason) == (401, "wrong password")
    assert json.loads(result.body)["mqtt"]["code"] == 135
    assert passwords[0].password == sent
    if sent == "c2VjcmV0":  # valid base64, just the wrong password
        assert passwords[0].password_bytes == b"secret"
    else:
        assert passwords[0].password_bytes is None


def test_an_app_that_authenticates_by_token_never_looks_at_the_password(
    webpubsub: WebPubSub, webpubsub_client: WebPubSubTestClient
) -> None:
    webpubsub.on_connect(lambda event: ConnectResponse(user_id="by-token"))
    result = mqtt_connect(webpubsub_client, {"password": "%%% not base64 %%%"}, version=4)
    assert result.status == 200
    assert json.loads(result.body) == {"userId": "by-token"}


@pytest.mark.parametrize("mqtt", [{}, {"password": None}, {"username": "u", "password": None}])
def test_a_missing_or_null_password_is_none(
    webpubsub_client: WebPubSubTestClient, passwords: list[MqttConnectProperties],
    mqtt: dict[str, Any],
) -> None:
    assert mqtt_connect(webpubsub_client, mqtt).status in (200, 204)
    assert (passwords[0].password, passwords[0].password_bytes) == (None, None)


@pytest.mark.parametrize("sent", [12, True, ["a"], {"b": 1}])
def test_a_password_that_is_not_a_string_is_none_and_logged(
    webpubsub_client: WebPubSubTestClient, passwords: list[MqttConnectProperties], sent: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, "flask_webpubsub"):
        result = mqtt_connect(webpubsub_client, {"password": sent})
    assert result.status in (200, 204)
    assert (passwords[0].password, passwords[0].password_bytes) == (None, None)
    assert f"mqtt.password is a JSON {type(sent).__name__}, not a string" in caplog.text


def test_the_password_is_never_shown(
    webpubsub_client: WebPubSubTestClient, passwords: list[MqttConnectProperties],
    caplog: pytest.LogCaptureFixture,
) -> None:
    sent = base64.b64encode(SECRET).decode()
    with caplog.at_level(logging.DEBUG):
        mqtt_connect(webpubsub_client, {"username": "d1", "password": sent})
        mqtt_connect(webpubsub_client, {"username": "d1", "password": "wrong-" + sent})
    for shown in (repr(passwords[0]), repr(passwords[1]), caplog.text):
        assert sent not in shown
        assert "s3cr3t" not in shown
    assert "password" not in repr(passwords[0])


def test_the_properties_built_by_hand_decode_too() -> None:
    properties = MqttConnectProperties("p1", password=base64.b64encode(b"pw").decode())
    assert properties.password_bytes == b"pw"
    assert MqttConnectProperties("p1").password_bytes is None
    assert MqttConnectProperties("p1", password="***").password_bytes is None
