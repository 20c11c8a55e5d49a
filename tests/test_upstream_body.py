"""How the event handler reads bodies, over a real HTTP server and raw sockets: the common
Content-Length case straight from the server's stream, everything else through werkzeug."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from flask import Flask

from flask_webpubsub import UserEvent, WebPubSub
from flask_webpubsub.core.service import build_event_headers

from .support import PRIMARY_KEY, serve


@pytest.fixture
def server(app: Flask, webpubsub: WebPubSub) -> Iterator[int]:
    webpubsub.on_user_event("echo")(lambda event: event.data)
    with serve(app) as http:
        yield http.server_port


def raw_request(port: int, extra_headers: str, body: bytes, *, close_after: bool = False) -> str:
    """Send a hand-made request (``close_after``: then end the upload, as a client that
    disconnects); the status line and body of the reply."""
    headers = build_event_headers(
        "echo", hub="chat", connection_id="c1", keys=[PRIMARY_KEY], content_type="text/plain"
    )
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    request = (
        f"POST /eventhandler HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{head}"
        f"{extra_headers}\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request.encode() + body)
        if close_after:
            conn.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    status = reply.split(b"\r\n", 1)[0].decode()
    return status + "|" + reply.split(b"\r\n\r\n", 1)[1].decode(errors="replace")


def test_content_length_body(server: int) -> None:
    assert raw_request(server, "Content-Length: 5\r\n", b"hello") == (
        "HTTP/1.1 200 OK|hello"
    )


def test_a_body_shorter_than_its_content_length_is_a_400(server: int) -> None:
    reply = raw_request(server, "Content-Length: 50\r\n", b"only ten..", close_after=True)
    assert reply.startswith("HTTP/1.1 400")
    assert "ended before its Content-Length" in reply


def test_chunked_with_a_content_length_is_read_as_chunked(server: int) -> None:
    chunked = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    reply = raw_request(
        server,
        "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
        chunked,
        close_after=True,
    )
    assert reply == "HTTP/1.1 200 OK|hello world"


def test_the_limit_counts_for_content_length_bodies() -> None:
    app = Flask(__name__)
    app.config.update(
        WEBPUBSUB_CONNECTION_STRING=f"Endpoint=https://contoso.webpubsub.azure.com;"
        f"AccessKey={PRIMARY_KEY};Version=1.0;",
        WEBPUBSUB_HUB="chat",
        WEBPUBSUB_MAX_BODY_BYTES=10,
    )
    webpubsub = WebPubSub(app)
    seen: list[UserEvent] = []
    webpubsub.on_user_event("echo")(lambda event: seen.append(event))
    client = app.test_client()
    headers = build_event_headers(
        "echo", hub="chat", connection_id="c1", keys=[PRIMARY_KEY], content_type="text/plain"
    )
    assert client.post("/eventhandler", headers=headers, data=b"x" * 10).status_code == 204
    too_big = client.post("/eventhandler", headers=headers, data=b"x" * 11)
    assert too_big.status_code == 413
    assert too_big.get_data(as_text=True) == "The body is larger than 10 bytes."
    assert len(seen) == 1
