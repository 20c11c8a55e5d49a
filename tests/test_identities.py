"""User ids beyond ASCII ("José", "山田") travel in ``ce-userId`` as the CloudEvents HTTP binding
writes attributes (percent-encoded UTF-8), and come out as the same text under werkzeug,
gunicorn and granian: negotiate, connect, a user event, and ``send_to_user(event.user_id)``
reaching exactly that user, with the emulator as the service."""

from __future__ import annotations

import contextlib
import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from flask_webpubsub.core.wire import decode_attribute, encode_attribute
from flask_webpubsub.emulator import EmulatorThread
from tests.support import WSGI_SERVERS, free_port, run_wsgi_server

USERS = ["José", "山田", "JosÃ©"]  # the last is what "José" became when read as Latin-1

APP = """
import os
from flask import Flask, request
from flask_webpubsub import NegotiateOptions, WebPubSub

app = Flask("identities")
app.config.update(
    WEBPUBSUB_CONNECTION_STRING=os.environ["WEBPUBSUB_CONNECTION_STRING"], WEBPUBSUB_HUB="chat"
)
webpubsub = WebPubSub(app)


@webpubsub.on_negotiate
def negotiate():
    return NegotiateOptions(user_id=request.args["user"])


@webpubsub.on_user_event("whoami")
def whoami(event):
    webpubsub.client.send_to_user(event.user_id, {"to": event.user_id})
    return {"you": event.user_id}
"""


@pytest.fixture(params=sorted(WSGI_SERVERS))
def app_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    (tmp_path / "identities.py").write_text(APP)
    port = free_port()
    with EmulatorThread(
        upstream=f"http://127.0.0.1:{port}/eventhandler", validate_upstream=False
    ) as emulator, run_wsgi_server(
        request.param, tmp_path, "identities:app",
        env={"WEBPUBSUB_CONNECTION_STRING": emulator.connection_string}, port=port,
    ):
        yield f"http://127.0.0.1:{port}"


def receive(client: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(client.recv(timeout=10))
    return message


def test_each_user_is_themselves_end_to_end(app_url: str) -> None:
    clients: dict[str, ClientConnection] = {}
    with contextlib.ExitStack() as stack:
        for user in USERS:
            query = urllib.parse.urlencode({"user": user})
            with urllib.request.urlopen(f"{app_url}/negotiate?{query}", timeout=10) as reply:
                url = json.load(reply)["url"]
            client = stack.enter_context(
                connect(url, subprotocols=[Subprotocol("json.webpubsub.azure.v1")])
            )
            clients[user] = client
            connected = receive(client)
            assert (connected["event"], connected["userId"]) == ("connected", user)
        for user, client in clients.items():
            client.send(json.dumps(
                {"type": "event", "event": "whoami", "dataType": "text", "data": "", "ackId": 1}
            ))
            seen = [receive(client) for _ in range(3)]
            data = sorted(json.dumps(m.get("data"), ensure_ascii=False) for m in seen)
            assert {"type": "ack", "ackId": 1, "success": True} in seen
            assert data == sorted(
                json.dumps(d, ensure_ascii=False) for d in ({"to": user}, {"you": user}, None)
            ), user
        for client in clients.values():  # nothing else arrived: no message reached another user
            with pytest.raises(TimeoutError):
                client.recv(timeout=0.3)


@pytest.mark.parametrize("value", ["José", "山田", "a b", '"quoted"', "100%", "plain-id_1.2~"])
def test_attribute_values_round_trip(value: str) -> None:
    wire = encode_attribute(value)
    assert wire.isascii()
    assert decode_attribute(wire) == value
    # Raw UTF-8 from a sender that does not encode, as a WSGI server hands it over.
    assert decode_attribute(value.encode().decode("latin-1")) == value or "%" in value
