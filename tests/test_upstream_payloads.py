"""Bodies, PROTOCOL.md section 2 (steps 4 and 5): every content type and charset of user events,
and malformed connect, user event and notification bodies."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from flask_webpubsub import DisconnectedEvent
from flask_webpubsub.core.service import build_event_headers
from flask_webpubsub.testing import TestConnection, WebPubSubTestClient
from tests.support import PRIMARY_KEY


@pytest.fixture
def conn(webpubsub_client: WebPubSubTestClient) -> TestConnection:
    return webpubsub_client.connection(user_id="alice")


def post(wps: WebPubSubTestClient, event: str, body: bytes, content_type: str | None) -> Any:
    headers = build_event_headers(
        event, hub="chat", connection_id="conn1", keys=[PRIMARY_KEY], content_type=content_type
    )
    return wps.post(headers, body)


@pytest.mark.parametrize(
    ("content_type", "body", "text"),
    [
        ("text/plain", "h\u00e9llo \u2713".encode(), "h\u00e9llo \u2713"),
        ("text/plain; charset=utf-8", "\u00e9".encode(), "\u00e9"),
        ("text/plain;charset=UTF-8", "\u00e9".encode(), "\u00e9"),
        ('text/plain; charset="utf-8"', "\u00e9".encode(), "\u00e9"),
        ("Text/Plain; Charset=ISO-8859-1", "caf\u00e9".encode("latin-1"), "caf\u00e9"),
        ("text/plain; charset=latin-1", b"\xe9\xff", "\u00e9\u00ff"),
        ("text/plain; charset=windows-1252", b"\x80", "\u20ac"),
        ("text/plain; charset=utf-16", "h\u00e9".encode("utf-16"), "h\u00e9"),
        ("text/plain; charset=utf-16le", "h\u00e9".encode("utf-16le"), "h\u00e9"),
        ("text/plain; charset=shift_jis", "\u65e5\u672c".encode("shift_jis"), "\u65e5\u672c"),
        ("text/plain; format=flowed; charset=ascii", b"abc", "abc"),
        ("text/plain", b"", ""),
    ],
)
def test_text_in_every_charset(
    webpubsub_client: WebPubSubTestClient, seen: list[Any], content_type: str, body: bytes,
    text: str
) -> None:
    assert post(webpubsub_client, "message", body, content_type).status == 204
    event = seen[0]
    assert (event.data, event.data_type, event.content_type) == (text, "text", "text/plain")


@pytest.mark.parametrize(
    ("content_type", "body", "value"),
    [
        ("application/json", b'{"a":[1,2.5,null,true]}', {"a": [1, 2.5, None, True]}),
        ("application/json; charset=utf-8", b"[]", []),
        ("application/json", b' "text" ', "text"),
        ("application/json", b"42", 42),
        ("application/json", b"false", False),
        ("application/json", b"null", None),
        ("application/json", '"\u00e9\U0001f600"'.encode(), "\u00e9\U0001f600"),
        ("application/json", b'"\\ud83d\\ude00"', "\U0001f600"),
        ("APPLICATION/JSON; charset=utf-16", '{"\u00e9":1}'.encode("utf-16"), {"\u00e9": 1}),
        ("application/json; charset=latin-1", '"\u00e9"'.encode("latin-1"), "\u00e9"),
    ],
)
def test_json_payloads(
    webpubsub_client: WebPubSubTestClient, seen: list[Any], content_type: str, body: bytes,
    value: Any
) -> None:
    assert post(webpubsub_client, "message", body, content_type).status == 204
    event = seen[0]
    assert (event.data, event.data_type, event.content_type) == (value, "json", "application/json")


@pytest.mark.parametrize(
    "body", [b"\x00\xff\xfe", b"plain utf-8 text", '{"looks":"json \u00e9"}'.encode(), b""]
)
@pytest.mark.parametrize("content_type", ["application/octet-stream", None, ""])
def test_binary_payloads_stay_bytes(
    webpubsub_client: WebPubSubTestClient, seen: list[Any], body: bytes, content_type: str | None
) -> None:
    assert post(webpubsub_client, "message", body, content_type).status == 204
    event = seen[0]
    assert type(event.data) is bytes
    assert (event.data, event.data_type, event.content_type) == (
        body, "binary", "application/octet-stream"
    )


@pytest.mark.parametrize(
    "content_type",
    [
        "application/cbor",
        "image/png",
        "application/xml; charset=utf-8",
        "text/csv; charset=latin-1",
        "text/html",
        "application/vnd.example+json",
        "Application/X-Protobuf",
    ],
)
def test_mqtt_media_types_arrive_as_bytes_with_the_media_type(
    webpubsub_client: WebPubSubTestClient, seen: list[Any], content_type: str
) -> None:
    conn = webpubsub_client.connection(mqtt=True)
    body = b"\x01\x02 payload \xe9"
    assert conn.user_event("telemetry", body, content_type=content_type).status == 204
    event = seen[0]
    assert event.is_mqtt
    assert (event.data, event.data_type) == (body, "binary")
    assert event.content_type == content_type.split(";")[0].lower()


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        ("text/plain", b"\xff\xfe\xfd", "The text payload does not match its charset."),
        ("text/plain; charset=ascii", b"\xc3\xa9", "The text payload does not match its charset."),
        ("text/plain; charset=utf-16", b"\x00", "The text payload does not match its charset."),
        ("text/plain; charset=utf-7", b"+2AA-", "The text payload does not match its charset."),
        ("text/plain; charset=klingon", b"x", "Unsupported charset 'klingon'."),
        ("text/plain; charset=base64", b"eA==", "Unsupported charset 'base64'."),
        ("text/plain; charset=rot13", b"x", "Unsupported charset 'rot13'."),
        ("text/plain; charset=", b"x", None),
        ("application/json", b"{", "The JSON payload is not valid JSON."),
        ("application/json", b"", "The JSON payload is not valid JSON."),
        ("application/json", b"NaN", "The JSON payload is not valid JSON."),
        ("application/json", b"[Infinity]", "The JSON payload is not valid JSON."),
        ("application/json", b"{'a': 1}", "The JSON payload is not valid JSON."),
        ("application/json", b"[" * 100_000, "The JSON payload is not valid JSON."),
        ("application/json", b"\xff", "The JSON payload does not match its charset."),
        ("application/json; charset=zlib", b"{}", "Unsupported charset 'zlib'."),
        ("application/json", b'"\\ud800"', "The JSON payload holds an unpaired surrogate."),
        ("application/json", b'{"a":["\\uDC00"]}', "The JSON payload holds an unpaired surrogate."),
    ],
)
def test_malformed_user_event_payloads_are_400(
    webpubsub_client: WebPubSubTestClient, seen: list[Any], content_type: str, body: bytes,
    reason: str | None
) -> None:
    result = post(webpubsub_client, "message", body, content_type)
    if reason is None:  # an empty charset parameter means the default, UTF-8
        assert result.status == 204
        return
    assert (result.status, result.reason) == (400, reason)
    assert result.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert seen == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[]", "The connect body must be a JSON object."),
        (b'"claims"', "The connect body must be a JSON object."),
        (b"1", "The connect body must be a JSON object."),
        (b"null", "The connect body must be a JSON object."),
        (b"{", "The connect body is not valid JSON."),
        (b"\xff", "The connect body is not valid JSON."),
        (b'{"a":NaN}', "The connect body is not valid JSON."),
        (b"{" * 50_000, "The connect body is not valid JSON."),
        (b'{"claims":[]}', "The connect body's claims must be an object."),
        (b'{"query":{"a":[1]}}', "The connect body's query values must be lists of strings."),
        (b'{"headers":{"a":{"b":"c"}}}', "The connect body's headers values must be lists of "
         "strings."),
        (b'{"subprotocols":"mqtt"}', "The connect body's subprotocols must be a list of strings."),
        (b'{"subprotocols":[1]}', "The connect body's subprotocols must be a list of strings."),
        (b'{"clientCertificates":{"a":1}}', "The connect body's clientCertificates must be a "
         "list of objects."),
        (b'{"clientCertificates":[{"content":"x"}]}', "The connect body's clientCertificates "
         "must be a list of objects."),
    ],
)
def test_malformed_connect_bodies_are_400(
    webpubsub_client: WebPubSubTestClient, seen: list[Any], body: bytes, reason: str
) -> None:
    result = post(webpubsub_client, "connect", body, "application/json")
    assert (result.status, result.reason) == (400, reason)
    assert seen == []


@pytest.mark.parametrize("body", [b"", b"  ", b"{}", b'{"unknownField": [1, {"x": 2}]}'])
def test_a_connect_body_with_no_known_fields_is_accepted(
    webpubsub_client: WebPubSubTestClient, seen: list[Any], body: bytes
) -> None:
    assert post(webpubsub_client, "connect", body, "application/json").status == 204
    event = seen[0]
    assert (event.claims, event.query, event.headers, event.subprotocols) == ({}, {}, {}, [])


@pytest.mark.parametrize(
    ("mqtt", "reason"),
    [
        ('"x"', "The connect body's mqtt must be an object."),
        ('{"protocolVersion":6}', "The connect body's mqtt.protocolVersion must be 4 or 5."),
        ('{"protocolVersion":"5"}', "The connect body's mqtt.protocolVersion must be 4 or 5."),
        ('{"protocolVersion":true}', "The connect body's mqtt.protocolVersion must be 4 or 5."),
        ('{"protocolVersion":5,"userProperties":[{"name":"a"}]}',
         "MQTT userProperties must be a list of {name, value} strings."),
        ('{"protocolVersion":5,"userProperties":{}}',
         "MQTT userProperties must be a list of {name, value} strings."),
    ],
)
def test_malformed_mqtt_connect_bodies_are_400(
    webpubsub_client: WebPubSubTestClient, seen: list[Any], mqtt: str, reason: str
) -> None:
    headers = build_event_headers(
        "connect", hub="chat", connection_id="c", keys=[PRIMARY_KEY], subprotocol="mqtt",
        physical_connection_id="p1", content_type="application/json",
    )
    result = webpubsub_client.post(headers, f'{{"mqtt":{mqtt}}}'.encode())
    assert (result.status, result.reason) == (400, reason)
    assert seen == []


@pytest.mark.parametrize("body", [b"{", b"[1]", b"\xff", b'"x"', b"[" * 50_000])
def test_malformed_notification_bodies_are_logged_never_an_error(
    conn: TestConnection, webpubsub_client: WebPubSubTestClient, seen: list[Any], body: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    headers = build_event_headers(
        "disconnected", hub="chat", connection_id="c", keys=[PRIMARY_KEY],
        content_type="application/json",
    )
    with caplog.at_level(logging.WARNING, "flask_webpubsub"):
        result = webpubsub_client.post(headers, body)
    assert (result.status, result.body) == (200, b"")
    assert [(type(e), e.reason) for e in seen] == [(DisconnectedEvent, None)]
    assert "Ignoring the" in caplog.text


def test_a_disconnected_reason_of_the_wrong_type_reads_as_none(
    webpubsub_client: WebPubSubTestClient, seen: list[Any]
) -> None:
    headers = build_event_headers(
        "disconnected", hub="chat", connection_id="c", keys=[PRIMARY_KEY],
        content_type="application/json",
    )
    assert webpubsub_client.post(headers, b'{"reason":{"nested":1}}').status == 200
    assert seen[0].reason is None
