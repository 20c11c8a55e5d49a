"""What an unauthenticated caller cannot do: grow the app's memory, buy much CPU per request,
or make a handler's state break the connection. (Figures under load: docs/hardening.md.)"""

from __future__ import annotations

import logging

import pytest
from flask import Flask

from flask_webpubsub import ConnectEvent, UserEvent, WebPubSub
from flask_webpubsub.core import signature
from flask_webpubsub.core.service import build_event_headers
from flask_webpubsub.core.signature import MAX_SIGNATURE_ENTRIES, MAX_SIGNATURE_LENGTH, sign, verify
from flask_webpubsub.core.state import MAX_STATE_BYTES, encode_state
from flask_webpubsub.testing import WebPubSubTestClient
from tests.support import PRIMARY_KEY, SECONDARY_KEY, make_app

KEYS = (PRIMARY_KEY, SECONDARY_KEY)


def test_unsigned_requests_leave_nothing_behind() -> None:
    before = len(signature._verified)
    for n in range(200):
        assert not verify(f"{n}-" + "x" * 10_000, ["sha256=" + "0" * 64], KEYS)
    assert len(signature._verified) == before


def test_verified_connections_are_remembered_up_to_a_bound() -> None:
    for n in range(signature._REMEMBERED + 50):
        connection_id = f"remembered-{n}"
        assert verify(connection_id, [sign(connection_id, KEYS)], KEYS)
    assert len(signature._verified) == signature._REMEMBERED
    # A remembered connection still verifies, and only with its own signature.
    last = f"remembered-{signature._REMEMBERED + 49}"
    assert verify(last, [sign(last, KEYS)], KEYS)
    assert not verify(last, [sign("another", KEYS)], KEYS)


def test_a_header_longer_than_the_service_sends_is_refused_unread() -> None:
    good = sign("c1", KEYS)
    assert verify("c1", [good], KEYS)
    assert not verify("c1", ["," * 300_000 + good], KEYS)
    assert not verify("c1", [good + " " * MAX_SIGNATURE_LENGTH], KEYS)


def test_at_most_a_few_entries_are_compared() -> None:
    """Short entries fit many in the length: the count is bounded too."""
    good = sign("c1", [PRIMARY_KEY])
    filler = "," * MAX_SIGNATURE_ENTRIES
    assert len(filler + good) <= MAX_SIGNATURE_LENGTH
    assert not verify("c1", [filler + good], KEYS)
    assert verify("c1", [filler[1:] + good], KEYS)


def test_several_header_lines_share_the_bounds() -> None:
    good = sign("c1", [PRIMARY_KEY])
    lines = ["x"] * MAX_SIGNATURE_ENTRIES
    assert not verify("c1", [*lines, good], KEYS)
    assert verify("c1", [*lines[:-1], good], KEYS)


# --- connection state --------------------------------------------------------------------------


def state_app() -> tuple[Flask, WebPubSubTestClient]:
    app = make_app()
    webpubsub = WebPubSub(app)

    @webpubsub.on_connect
    def connect(event: ConnectEvent) -> None:
        event.state["big"] = "x" * int(event.query.get("size", ["0"])[0])

    @webpubsub.on_user_event("grow")
    def grow(event: UserEvent) -> str:
        event.state["big"] = "x" * int(str(event.data))
        return "ok"

    return app, WebPubSubTestClient(app)


def largest_fitting_value() -> int:
    size = MAX_STATE_BYTES
    while len(encode_state({"big": "x" * size})) > MAX_STATE_BYTES:
        size -= 1
    return size


def test_a_state_within_the_limit_is_sent() -> None:
    _, events = state_app()
    size = largest_fitting_value()
    connection = events.connect(query={"size": [str(size)]})
    assert connection.accepted
    assert connection.state == {"big": "x" * size}
    assert len(connection.result.state_header or "") <= MAX_STATE_BYTES  # type: ignore[union-attr]


@pytest.mark.parametrize("where", ["connect", "user event"])
def test_a_state_over_the_limit_is_a_clear_logged_error(
    where: str, caplog: pytest.LogCaptureFixture
) -> None:
    _, events = state_app()
    size = largest_fitting_value() + 1
    with caplog.at_level(logging.ERROR, "flask_webpubsub"):
        if where == "connect":
            result = events.connect(query={"size": [str(size)]}).result
            assert result is not None
            status, header = result.status, result.state_header
        else:
            reply = events.connect().user_event("grow", str(size))
            status, header = reply.status, reply.state_header
    assert status == 500
    assert header is None
    message = caplog.text
    assert f"over the limit of {MAX_STATE_BYTES}" in message
    assert "bytes as a header" in message


def test_the_header_the_service_would_send_stays_readable() -> None:
    headers = build_event_headers(
        "echo", hub="chat", connection_id="c1", keys=[PRIMARY_KEY],
        state={"big": "x" * largest_fitting_value()},
    )
    assert len(headers["ce-connectionState"]) <= MAX_STATE_BYTES
