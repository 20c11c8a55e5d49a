"""ce-signature, PROTOCOL.md section 3 and step 1 of section 2: the test vectors, key rotation,
several header lines, hex case, turning verification off, and no body read before the check."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from flask import Flask

from flask_webpubsub import ConfigurationError, UserEvent, WebPubSub
from flask_webpubsub.core.service import build_event_headers
from flask_webpubsub.core.signature import sign, verify
from flask_webpubsub.testing import WebPubSubTestClient
from tests.support import ENDPOINT, PRIMARY_KEY, SECONDARY_KEY, make_app

VECTORS = [
    (
        "primarykey",
        "conn1",
        "sha256=d784e4dad05e26fdb4ce36a5cf7dd790ff4182734a00fcac0a13051124b98a86",
    ),
    (
        "secondarykey",
        "conn1",
        "sha256=2ad6a047c82972e9f198ccda494103891528a6c502f2c714e9276288f5fce77d",
    ),
    (
        "7aab239577fd4f24bc919802fb629f5f",
        "0f9c97a2f0bf4706afe87a14e0797b11",
        "sha256=7767effcb3946f3e1de039df4b986ef02c110b1469d02c0a06f41b3b727ab561",
    ),
]
REJECTED = b"Signature validation failed."


def connection_string(key: str) -> str:
    return f"Endpoint={ENDPOINT};AccessKey={key};Version=1.0;"


def recording_app(**config: object) -> tuple[Flask, list[UserEvent]]:
    """An app whose catch-all user event handler records what reaches it."""
    app = make_app(**config)
    webpubsub = WebPubSub(app)
    seen: list[UserEvent] = []

    @webpubsub.on_user_event
    def record(event: UserEvent) -> str:
        seen.append(event)
        return "ok"

    return app, seen


def unsigned(connection_id: str = "conn1", **extra: str) -> dict[str, str]:
    headers = build_event_headers(
        "message", hub="chat", connection_id=connection_id, keys=[], content_type="text/plain"
    )
    headers.update(extra)
    return headers


@pytest.mark.parametrize(("key", "connection_id", "expected"), VECTORS)
def test_the_signature_vectors(key: str, connection_id: str, expected: str) -> None:
    assert sign(connection_id, [key]) == expected
    assert verify(connection_id, [expected], [key])
    assert verify(connection_id, [expected.upper()], [key])
    assert not verify(connection_id + "x", [expected], [key])
    assert not verify(connection_id, [expected], [key + "x"])


def test_sign_gives_one_entry_per_key() -> None:
    assert sign("conn1", ["primarykey", "secondarykey"]) == f"{VECTORS[0][2]},{VECTORS[1][2]}"


@pytest.mark.parametrize(("key", "connection_id", "expected"), VECTORS)
def test_the_signature_vectors_through_the_app(
    key: str, connection_id: str, expected: str
) -> None:
    app, seen = recording_app(WEBPUBSUB_CONNECTION_STRING=connection_string(key))
    wps = WebPubSubTestClient(app)
    accepted = wps.post(unsigned(connection_id, **{"ce-signature": expected}), b"hi")
    assert (accepted.status, accepted.body) == (200, b"ok")
    assert [event.connection_id for event in seen] == [connection_id]
    other = next(v[2] for v in VECTORS if v[2] != expected)
    rejected = wps.post(unsigned(connection_id, **{"ce-signature": other}), b"hi")
    assert (rejected.status, rejected.body) == (401, REJECTED)
    assert len(seen) == 1


def test_the_service_header_with_both_keys_passes_when_only_the_secondary_is_known() -> None:
    app, seen = recording_app(WEBPUBSUB_CONNECTION_STRING=connection_string("secondarykey"))
    both = f"{VECTORS[0][2]},{VECTORS[1][2]}"
    result = WebPubSubTestClient(app).post(unsigned(**{"ce-signature": both}), b"hi")
    assert result.status == 200
    assert len(seen) == 1


def test_a_signature_made_with_the_secondary_key_only() -> None:
    app, seen = recording_app(WEBPUBSUB_ACCESS_KEYS=[SECONDARY_KEY])
    assert WebPubSubTestClient(app, access_key=SECONDARY_KEY).connect().user_event("m").ok
    assert WebPubSubTestClient(app, access_key=PRIMARY_KEY).connect().user_event("m").ok
    assert len(seen) == 2


def test_a_key_known_only_from_access_keys() -> None:
    app, seen = recording_app(
        WEBPUBSUB_CONNECTION_STRING=connection_string("old-key"),
        WEBPUBSUB_ACCESS_KEYS=["rotated-in-key", "another-key"],
    )
    for key in ("rotated-in-key", "another-key", "old-key"):
        assert WebPubSubTestClient(app, access_key=key).connection().user_event("m").ok
    wps = WebPubSubTestClient(app, access_key="unknown-key")
    assert wps.connection().user_event("m").status == 401
    assert len(seen) == 3


@pytest.mark.parametrize(
    "lines",
    [
        ["sha256=00", "GOOD"],
        ["GOOD", "sha256=00"],
        ["sha256=00,sha256=11", "sha256=22, GOOD"],
        ["", "GOOD"],
        ["garbage", "md5=GOOD,GOOD"],
    ],
)
def test_several_signature_header_lines(lines: list[str]) -> None:
    app, seen = recording_app()
    good = sign("conn1", [PRIMARY_KEY])
    headers = list(unsigned().items()) + [
        ("ce-signature", line.replace("GOOD", good)) for line in lines
    ]
    answer = app.test_client().post("/eventhandler", headers=headers, data=b"hi")
    assert answer.status_code == 200
    assert len(seen) == 1


@pytest.mark.parametrize(
    "transform",
    [
        str.upper,
        lambda s: "sha256=" + s[7:].upper(),
        lambda s: f"  {s}  ",
        lambda s: f"sha256=0, {s} ,",
    ],
)
def test_hex_case_and_spacing_do_not_matter(transform: Any) -> None:
    app, seen = recording_app()
    signature = transform(sign("conn1", [PRIMARY_KEY]))
    result = WebPubSubTestClient(app).post(unsigned(**{"ce-signature": signature}), b"hi")
    assert result.status == 200
    assert len(seen) == 1


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "sha256=",
        "sha256",
        "d784e4dad05e26fdb4ce36a5cf7dd790ff4182734a00fcac0a13051124b98a86",
        "sha1=" + "0" * 40,
        "sha256=" + "0" * 64,
        "sha256=zz" + "0" * 62,
        "sha256=\u00e9" + "0" * 63,
        ",,,",
    ],
)
def test_missing_or_wrong_signatures_are_401_and_reach_no_handler(
    signature: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    app, seen = recording_app()
    headers = unsigned()
    if signature is not None:
        headers["ce-signature"] = signature
    with caplog.at_level(logging.WARNING, "flask_webpubsub"):
        result = WebPubSubTestClient(app).post(headers, b"hi")
    assert (result.status, result.body) == (401, REJECTED)
    assert result.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert seen == []
    assert "ce-signature matches no access key" in caplog.text
    assert PRIMARY_KEY not in caplog.text
    if signature:
        assert signature not in caplog.text


def test_a_signature_for_another_connection_is_rejected() -> None:
    app, seen = recording_app()
    stolen = sign("someone-else", [PRIMARY_KEY])
    result = WebPubSubTestClient(app).post(unsigned(**{"ce-signature": stolen}), b"hi")
    assert result.status == 401
    assert seen == []


def test_every_event_type_is_checked(app: Flask, webpubsub: WebPubSub) -> None:
    calls: list[str] = []
    for register in (
        webpubsub.on_connect,
        webpubsub.on_connected,
        webpubsub.on_disconnected,
        webpubsub.on_group_joined,
        webpubsub.on_group_left,
        webpubsub.on_user_event,
    ):
        register(lambda event: calls.append(event.event_name))
    wps = WebPubSubTestClient(app, access_key="wrong")
    conn = wps.connection()
    results = [
        conn.connect(),
        conn.connected(),
        conn.user_event("m", "x"),
        conn.group_joined("g"),
        conn.group_left("g"),
        conn.disconnected(),
    ]
    assert [r.status for r in results] == [401] * 6
    assert calls == []


def test_verification_is_off_only_when_explicitly_false(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, "flask_webpubsub"):
        app, seen = recording_app(WEBPUBSUB_VERIFY_SIGNATURE=False)
    assert "WEBPUBSUB_VERIFY_SIGNATURE is False" in caplog.text
    assert WebPubSubTestClient(app).post(unsigned(), b"hi").status == 200
    assert len(seen) == 1
    for setting in (None, True):
        app, seen = recording_app(WEBPUBSUB_VERIFY_SIGNATURE=setting)
        assert WebPubSubTestClient(app).post(unsigned(), b"hi").status == 401
        assert seen == []


def test_without_any_key_the_app_fails_closed(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing to verify with refuses to start; only the explicit opt-out serves unsigned
    events, with a warning."""
    with pytest.raises(ConfigurationError, match="cannot authenticate the Web PubSub service"):
        recording_app(WEBPUBSUB_CONNECTION_STRING=None, WEBPUBSUB_ENDPOINT=ENDPOINT)
    with caplog.at_level(logging.WARNING, "flask_webpubsub"):
        app, seen = recording_app(
            WEBPUBSUB_CONNECTION_STRING=None,
            WEBPUBSUB_ENDPOINT=ENDPOINT,
            WEBPUBSUB_VERIFY_SIGNATURE=False,
        )
    assert "ce-signature is not verified" in caplog.text
    assert WebPubSubTestClient(app).post(unsigned(), b"hi").status == 200
    assert len(seen) == 1


class CountingStream(io.BytesIO):
    """A request body that counts how often the app read it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads = 0

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        return super().read(size)

    def readinto(self, buffer: Any) -> int:
        self.reads += 1
        return super().readinto(buffer)


@pytest.mark.parametrize(
    "body",
    [b"hi", b"{not json", b"\xff\xfe", b"x" * 2_000_000],
    ids=["ok", "bad", "undecodable", "huge"],
)
def test_the_body_is_not_read_before_the_signature_is_checked(body: bytes) -> None:
    app, seen = recording_app()
    headers = unsigned(**{"ce-signature": "sha256=" + "0" * 64, "Content-Type": "application/json"})
    stream = CountingStream(body)
    answer = app.test_client().post(
        "/eventhandler", headers=headers, input_stream=stream, content_length=len(body)
    )
    assert answer.status_code == 401
    assert stream.reads == 0
    assert seen == []


def test_a_valid_signature_then_reads_the_body() -> None:
    app, seen = recording_app()
    headers = unsigned(**{"ce-signature": sign("conn1", [PRIMARY_KEY])})
    stream = CountingStream(b"hi")
    answer = app.test_client().post(
        "/eventhandler", headers=headers, input_stream=stream, content_length=2
    )
    assert answer.status_code == 200
    assert stream.reads > 0
    assert seen[0].data == "hi"
