"""Every REST operation of PROTOCOL.md section 7 through the official, unmodified service SDK
(azure-messaging-webpubsubservice), checked by what raw WebSocket clients receive."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.core.rest import HttpRequest
from azure.messaging.webpubsubservice import WebPubSubServiceClient
from websockets.sync.client import ClientConnection, connect

from flask_webpubsub.core.service import verify_token
from flask_webpubsub.core.tokens import build_service_token
from flask_webpubsub.emulator import EmulatorThread
from tests.support import wait_for

from .conftest import (
    ALL_ROLES,
    HUB,
    JSON,
    KEY,
    OTHER_KEY,
    bare_url,
    read_until_closed,
    subprotocols,
)


@pytest.fixture
def service(bare: EmulatorThread) -> Iterator[WebPubSubServiceClient]:
    client = WebPubSubServiceClient.from_connection_string(bare.connection_string, hub=HUB)
    with client:
        yield client


class Client:
    """A raw JSON (or simple) client: its connection id and what it receives."""

    def __init__(self, emulator: EmulatorThread, user: str | None = None,
                 groups: list[str] | None = None, subprotocol: str | None = JSON) -> None:
        self.ws: ClientConnection = _open.enter_context(connect(
            bare_url(emulator, user, ALL_ROLES, groups),
            subprotocols=subprotocols(subprotocol),
        ))
        self.simple = subprotocol is None
        if self.simple:
            self.connection_id = wait_for(lambda: _newest(emulator, user), what="the connection")
        else:
            connected = json.loads(self.ws.recv(timeout=5))
            assert connected["event"] == "connected"
            self.connection_id = connected["connectionId"]

    def receive(self, timeout: float = 5) -> Any:
        frame = self.ws.recv(timeout=timeout)
        return frame if self.simple else json.loads(frame)

    def data(self) -> Any:
        message = self.receive()
        assert message["type"] == "message", message
        return message["data"]

    def nothing(self, timeout: float = 0.3) -> bool:
        try:
            frame = self.ws.recv(timeout=timeout)
        except TimeoutError:
            return True
        raise AssertionError(f"unexpected frame {frame!r}")


def _newest(emulator: EmulatorThread, user: str | None) -> str | None:
    hub = emulator.emulator.hubs.get(HUB)
    if hub is None:
        return None
    ids = [s.connection_id for s in hub.connections.values() if s.user_id == user]
    return ids[-1] if ids else None


#: The sockets a test opened, closed after it.
_open = ExitStack()


@pytest.fixture
def clients(bare: EmulatorThread) -> Iterator[list[Client]]:
    with _open:
        yield []


def test_send_to_all_in_every_content_type(
    bare: EmulatorThread, service: WebPubSubServiceClient, clients: list[Client]
) -> None:
    a, b = Client(bare, "a"), Client(bare, "b", subprotocol=None)
    clients += [a, b]
    service.send_to_all({"hello": "world"}, content_type="application/json")
    assert a.receive() == {"type": "message", "from": "server", "dataType": "json",
                           "data": {"hello": "world"}}
    assert json.loads(b.receive()) == {"hello": "world"}  # simple clients get the raw text

    service.send_to_all("plain", content_type="text/plain")
    assert a.receive()["dataType"] == "text"
    assert b.receive() == "plain"

    service.send_to_all(io.BytesIO(b"\x00\xff"), content_type="application/octet-stream")
    message = a.receive()
    assert (message["dataType"], base64.b64decode(message["data"])) == ("binary", b"\x00\xff")
    assert b.receive() == b"\x00\xff"

    service.send_to_all("skip a", content_type="text/plain", excluded=[a.connection_id])
    assert b.receive() == "skip a"
    assert a.nothing()


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 300_000])
def test_every_frame_length_arrives_whole(
    bare: EmulatorThread, service: WebPubSubServiceClient, clients: list[Client], size: int
) -> None:
    # The frame header has three length forms (RFC 6455 5.2): 7 bits, 16 bits and 64 bits.
    a, b = Client(bare, "a"), Client(bare, "b", subprotocol=None)
    clients += [a, b]
    text = "é" * (size // 2) + "x" * (size % 2)  # ``size`` bytes of UTF-8
    service.send_to_all(text, content_type="text/plain")
    assert a.data() == text
    assert b.receive() == text
    data = bytes(range(256)) * (size // 256) + b"\x07" * (size % 256)
    service.send_to_all(io.BytesIO(data), content_type="application/octet-stream")
    assert base64.b64decode(a.data()) == data
    assert b.receive() == data


def test_a_burst_arrives_in_order_while_the_client_falls_behind(
    bare: EmulatorThread, service: WebPubSubServiceClient, clients: list[Client]
) -> None:
    # 60 MB to a client that reads slowly: the kernel's buffers fill, later frames wait in the
    # emulator's queue while earlier ones drain, and every one still arrives once and in order.
    a = Client(bare, "a")
    clients.append(a)
    count, size = 120, 500_000
    received: list[str] = []

    def read_slowly() -> None:
        for _ in range(count):
            received.append(a.data()[:6])
            time.sleep(0.005)

    reader = threading.Thread(target=read_slowly)
    reader.start()
    for index in range(count):
        service.send_to_all(f"{index:06d}" + "x" * (size - 6), content_type="text/plain")
    reader.join(30)
    assert received == [f"{index:06d}" for index in range(count)]
    assert a.nothing()


def test_a_client_that_does_not_read_is_closed(
    bare: EmulatorThread,
    service: WebPubSubServiceClient,
    clients: list[Client],
    caplog: pytest.LogCaptureFixture,
) -> None:
    slow, fast = Client(bare, "slow", ["g"]), Client(bare, "fast")
    clients += [slow, fast]
    chunk = "x" * 60_000
    sent = 0
    while service.connection_exists(slow.connection_id):
        assert sent < 1000, "the emulator kept a client that reads nothing"
        service.send_to_group("g", chunk, content_type="text/plain")
        sent += 1
    assert "the client does not keep up" in caplog.text
    # What was queued is still sent, then why, then the close (1008: the session ends).
    code, seen = read_until_closed(slow.receive)
    assert code == 1008
    assert [m["data"] == chunk for m in seen[:-1]] == [True] * sent
    assert seen[-1]["event"] == "disconnected"
    assert "does not keep up" in seen[-1]["message"]
    # Everyone else is served as before.
    service.send_to_all("still here", content_type="text/plain")
    assert fast.data() == "still here"


def test_send_to_user_group_and_connection(
    bare: EmulatorThread, service: WebPubSubServiceClient, clients: list[Client]
) -> None:
    a1, a2, b = Client(bare, "a", ["g"]), Client(bare, "a"), Client(bare, "b", ["g"])
    clients += [a1, a2, b]
    service.send_to_user("a", "for a", content_type="text/plain")
    assert a1.data() == "for a"
    assert a2.data() == "for a"
    assert b.nothing()

    service.send_to_group("g", {"n": 1}, content_type="application/json",
                          excluded=[b.connection_id])
    assert a1.data() == {"n": 1}
    assert b.nothing()
    assert a2.nothing(0)

    service.send_to_connection(a2.connection_id, "only you", content_type="text/plain")
    assert a2.data() == "only you"
    assert a1.nothing()


@pytest.mark.parametrize(
    ("filter_text", "receivers"),
    [
        ("userId eq 'a'", {"a"}),
        ("userId ne 'a'", {"b", "c"}),
        ("'g1' in groups", {"a", "b"}),
        ("'g1' in groups and not ('g2' in groups)", {"a"}),
        ("userId in ('a', 'c') or 'g2' in groups", {"a", "b", "c"}),
        ("startswith(userId, 'b') or length(groups) eq 0", {"b", "c"}),
    ],
)
def test_send_with_a_filter(
    bare: EmulatorThread, service: WebPubSubServiceClient, clients: list[Client],
    filter_text: str, receivers: set[str],
) -> None:
    by_user = {"a": Client(bare, "a", ["g1"]), "b": Client(bare, "b", ["g1", "g2"]),
               "c": Client(bare, "c")}
    clients += by_user.values()
    service.send_to_all("filtered", content_type="text/plain", filter=filter_text)
    for user, client in by_user.items():
        if user in receivers:
            assert client.data() == "filtered", user
        else:
            assert client.nothing(0.1), user


def test_invalid_filter_and_bodies_are_400(service: WebPubSubServiceClient) -> None:
    with pytest.raises(HttpResponseError) as error:
        service.send_to_all("x", content_type="text/plain", filter="userId eq")
    assert error.value.status_code == 400
    response = service.send_request(HttpRequest(
        "POST", f"/api/hubs/{HUB}/:send", content=b"{not json",
        headers={"Content-Type": "application/json"}, params={"api-version": "2024-12-01"},
    ))
    assert (response.status_code, response.json()["code"]) == (400, "BadRequest")
    too_big = "x" * (1024 * 1024 + 1)
    with pytest.raises(HttpResponseError) as error:
        service.send_to_all(too_big, content_type="text/plain")
    assert error.value.status_code == 413
    assert error.value.response is not None
    assert json.loads(error.value.response.text())["code"] == "PayloadTooLarge"


def test_connection_groups(
    bare: EmulatorThread, service: WebPubSubServiceClient, clients: list[Client]
) -> None:
    a = Client(bare, "a")
    clients.append(a)
    assert not service.group_exists("g")
    service.add_connection_to_group("g", a.connection_id)
    assert service.group_exists("g")
    service.send_to_group("g", "in g", content_type="text/plain")
    assert a.data() == "in g"
    service.remove_connection_from_group("g", a.connection_id)
    assert not service.group_exists("g")

    service.add_connection_to_group("g1", a.connection_id)
    service.add_connection_to_group("g2", a.connection_id)
    service.remove_connection_from_all_groups(a.connection_id)
    assert not service.group_exists("g1")
    assert not service.group_exists("g2")
    with pytest.raises(HttpResponseError) as error:
        service.add_connection_to_group("g", "no-such-connection")
    assert error.value.status_code == 404
    service.remove_connection_from_group("g", "no-such-connection")  # 204 all the same


def test_user_groups_apply_to_later_connections(
    bare: EmulatorThread, service: WebPubSubServiceClient, clients: list[Client]
) -> None:
    a1 = Client(bare, "a")
    clients.append(a1)
    service.add_user_to_group("g", "a")
    a2 = Client(bare, "a")  # connects after: joins too
    clients.append(a2)
    service.send_to_group("g", "hi", content_type="text/plain")
    assert a1.data() == "hi"
    assert a2.data() == "hi"
    service.remove_user_from_group("g", "a")
    assert not service.group_exists("g")

    service.add_user_to_group("g1", "a")
    service.add_user_to_group("g2", "a")
    service.remove_user_from_all_groups("a")
    assert not service.group_exists("g1")
    assert not service.group_exists("g2")
    a3 = Client(bare, "a")
    clients.append(a3)
    assert not service.group_exists("g1")


def test_list_connections_pages(
    bare: EmulatorThread, service: WebPubSubServiceClient, clients: list[Client]
) -> None:
    clients += [Client(bare, f"u{n}", ["g"]) for n in range(5)]
    members = list(service.list_connections(group="g"))
    assert sorted(m.connection_id for m in members) == sorted(c.connection_id for c in clients)
    assert {m.user_id for m in members} == {f"u{n}" for n in range(5)}
    pages = list(service.list_connections(group="g", maxpagesize=2).by_page())
    assert [len(page) for page in (list(p) for p in pages)] == [2, 2, 1]
    assert len(list(service.list_connections(group="g", top=3))) == 3
    assert list(service.list_connections(group="empty")) == []


def test_existence_and_closing(
    bare: EmulatorThread, service: WebPubSubServiceClient, clients: list[Client]
) -> None:
    a, b, c, d = (Client(bare, "a", ["g"]), Client(bare, "b", ["g"]), Client(bare, "c"),
                  Client(bare, "d"))
    clients += [a, b, c, d]
    assert service.connection_exists(a.connection_id)
    assert service.user_exists("a")
    assert not service.user_exists("nobody")
    assert not service.connection_exists("nothing")

    service.close_connection(a.connection_id, reason="bye")
    assert a.receive() == {"type": "system", "event": "disconnected", "message": "bye"}
    # 1008: the service ended the connection, so a reliable client does not try to recover it.
    _assert_closed(a, 1008)
    assert not service.connection_exists(a.connection_id)
    assert not service.user_exists("a")

    service.close_group_connections("g", reason="group closed")
    assert b.receive()["message"] == "group closed"
    _assert_closed(b, 1008)
    service.close_user_connections("c")
    _assert_closed(c, 1008, skip_system=True)
    service.close_all_connections(excluded=[d.connection_id])
    assert service.connection_exists(d.connection_id)
    service.close_all_connections()
    _assert_closed(d, 1008, skip_system=True)


def _assert_closed(client: Client, code: int, skip_system: bool = False) -> None:
    received, seen = read_until_closed(client.receive)
    assert received == code
    assert all(skip_system and m["type"] == "system" for m in seen), seen


def test_permissions(
    bare: EmulatorThread, service: WebPubSubServiceClient, clients: list[Client]
) -> None:
    token = bare_url(bare, "p").split("access_token=")[1]  # no roles
    ws = connect(f"{bare.url.replace('http', 'ws')}/client/hubs/{HUB}?access_token={token}",
                 subprotocols=subprotocols(JSON))
    with ws:
        connection_id = json.loads(ws.recv(timeout=5))["connectionId"]
        ws.send(json.dumps({"type": "joinGroup", "group": "g", "ackId": 1}))
        assert json.loads(ws.recv(timeout=5))["error"]["name"] == "Forbidden"
        assert not service.has_permission("joinLeaveGroup", connection_id, target_name="g")

        service.grant_permission("joinLeaveGroup", connection_id, target_name="g")
        assert service.has_permission("joinLeaveGroup", connection_id, target_name="g")
        assert not service.has_permission("joinLeaveGroup", connection_id, target_name="h")
        ws.send(json.dumps({"type": "joinGroup", "group": "g", "ackId": 2}))
        assert json.loads(ws.recv(timeout=5)) == {"type": "ack", "ackId": 2, "success": True}
        ws.send(json.dumps({"type": "joinGroup", "group": "h", "ackId": 3}))
        assert json.loads(ws.recv(timeout=5))["success"] is False

        service.grant_permission("sendToGroup", connection_id)
        assert service.has_permission("sendToGroup", connection_id)
        assert service.has_permission("sendToGroup", connection_id, target_name="any")
        service.revoke_permission("sendToGroup", connection_id)
        assert not service.has_permission("sendToGroup", connection_id)
        service.revoke_permission("joinLeaveGroup", connection_id, target_name="g")
        ws.send(json.dumps({"type": "leaveGroup", "group": "g", "ackId": 4}))
        assert json.loads(ws.recv(timeout=5))["error"]["name"] == "Forbidden"
    with pytest.raises(HttpResponseError) as error:
        service.grant_permission("sendToGroup", "no-such-connection")
    assert error.value.status_code == 404


def test_the_group_limit_is_a_bad_request(
    bare: EmulatorThread, service: WebPubSubServiceClient, clients: list[Client]
) -> None:
    full, other = Client(bare, "full"), Client(bare, "other")
    clients += [full, other]

    def add_to_groups(body: dict[str, Any]) -> Any:
        return service.send_request(HttpRequest(
            "POST", f"/api/hubs/{HUB}/:addToGroups", json=body,
            params={"api-version": "2024-12-01"},
        ))

    groups = [f"g{i}" for i in range(1000)]
    assert add_to_groups({"groups": groups, "filter": "userId eq 'full'"}).status_code == 200
    service.add_connection_to_group("g0", full.connection_id)  # already in it: fine
    with pytest.raises(HttpResponseError) as error:
        service.add_connection_to_group("one-more", full.connection_id)
    assert error.value.status_code == 400
    assert error.value.response is not None
    answer = json.loads(error.value.response.text())
    assert answer == {"code": "BadRequest", "message": answer["message"]}
    assert f"connection {full.connection_id} is in 1000 groups" in answer["message"]

    with pytest.raises(HttpResponseError) as error:
        service.add_user_to_group("one-more", "full")
    assert error.value.status_code == 400
    assert error.value.response is not None
    assert json.loads(error.value.response.text())["code"] == "BadRequest"

    refused = add_to_groups({"groups": ["one-more"]})  # every connection, one of them full
    assert refused.status_code == 400
    assert refused.json()["code"] == "BadRequest"
    assert not service.group_exists("one-more")  # a bad request changes nothing
    assert other.nothing()
    assert add_to_groups({"groups": ["one-more"], "filter": "userId eq 'other'"}).status_code == 200
    assert [c.connection_id for c in service.list_connections(group="one-more")] == [
        other.connection_id
    ]


def test_filtered_group_changes_token_and_health(
    bare: EmulatorThread, service: WebPubSubServiceClient, clients: list[Client]
) -> None:
    a, b = Client(bare, "a"), Client(bare, "b")
    clients += [a, b]
    body = {"groups": ["x", "y"], "filter": "userId eq 'a'"}
    response = service.send_request(HttpRequest("POST", f"/api/hubs/{HUB}/:addToGroups",
                                                 json=body, params={"api-version": "2024-12-01"}))
    assert response.status_code == 200
    assert [m.user_id for m in service.list_connections(group="x")] == ["a"]
    response = service.send_request(HttpRequest(
        "POST", f"/api/hubs/{HUB}/:removeFromGroups", json={"groups": ["x"]},
        params={"api-version": "2024-12-01"},
    ))
    assert response.status_code == 200
    assert not service.group_exists("x")
    assert service.group_exists("y")

    # :generateToken, as the SDK calls it with Entra ID; the token works for the client URL.
    response = service.send_request(HttpRequest(
        "POST", f"/api/hubs/{HUB}/:generateToken",
        params={"userId": "t", "role": ["r1", "r2"], "group": "y", "minutesToExpire": 5,
                "api-version": "2024-12-01"},
    ))
    assert response.status_code == 200
    claims = verify_token(response.json()["token"], [KEY], f"{bare.url}/client/hubs/{HUB}")
    assert (claims["sub"], claims["role"], claims["webpubsub.group"]) == ("t", ["r1", "r2"], ["y"])
    local = service.get_client_access_token(user_id="t")
    with connect(local["url"], subprotocols=subprotocols(JSON)) as ws:
        assert json.loads(ws.recv(timeout=5))["userId"] == "t"

    for method in ("HEAD", "GET"):
        assert service.send_request(HttpRequest(method, "/api/health")).status_code == 200


def test_requests_need_a_valid_bearer_token(bare: EmulatorThread) -> None:
    wrong_key = WebPubSubServiceClient(bare.url, HUB, AzureKeyCredential(OTHER_KEY))
    with wrong_key, pytest.raises(ClientAuthenticationError) as error:
        wrong_key.send_to_all("x", content_type="text/plain")
    assert error.value.response is not None
    assert json.loads(error.value.response.text())["code"] == "Unauthorized"

    url = f"{bare.url}/api/hubs/{HUB}/:send?api-version=2024-12-01"
    client_token = bare_url(bare, "a").split("access_token=")[1]
    for authorization in (None, "Bearer nonsense", f"Bearer {client_token}",
                          "Bearer " + build_service_token(f"{bare.url}/api/hubs/other/:send", KEY)):
        request = urllib.request.Request(url, data=b"x", method="POST")
        if authorization:
            request.add_header("Authorization", authorization)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 401
        assert json.load(refused.value)["code"] == "Unauthorized"
        refused.value.close()


def test_sends_carry_metadata_headers_and_a_ttl(
    bare: EmulatorThread, service: WebPubSubServiceClient, clients: list[Client]
) -> None:
    a = Client(bare, "a")
    clients.append(a)
    # The SDK's send_to_all has no TTL keyword (1.3.0 drops it), so the query carries it.
    service.send_to_all("tagged", content_type="text/plain", params={"messageTtlSeconds": 300},
                        headers={"X-WebPubSub-Metadata-Trace": "t-1",
                                 "x-webpubsub-metadata-Kind": "note"})
    message = a.receive()
    assert (message["data"], message["metadata"]) == ("tagged", {"trace": "t-1", "kind": "note"})
    service.send_to_all("plain", content_type="text/plain", params={"messageTtlSeconds": 0})
    assert "metadata" not in a.receive()


@pytest.mark.parametrize(("headers", "ttl", "reason"), [
    ({"X-WebPubSub-Metadata-Trace": "é"}, None, "not ASCII"),
    ({"X-WebPubSub-Metadata-Trace": "x" * 1025}, None, "longer than 1024"),
    ({"X-WebPubSub-Metadata-" + "k" * 257: "v"}, None, "longer than 256"),
    ({f"X-WebPubSub-Metadata-k{i}": "v" * 1000 for i in range(9)}, None, "8192 characters"),
    ({}, 301, "messageTtlSeconds must be between 0 and 300"),
    ({}, -1, "messageTtlSeconds must be between 0 and 300"),
])
def test_invalid_metadata_or_ttl_is_400(
    service: WebPubSubServiceClient, headers: dict[str, str], ttl: int | None, reason: str
) -> None:
    with pytest.raises(HttpResponseError) as refused:
        service.send_to_all("x", content_type="text/plain", headers=headers,
                            params={} if ttl is None else {"messageTtlSeconds": ttl})
    assert refused.value.status_code == 400
    assert refused.value.response is not None
    assert reason in json.loads(refused.value.response.text())["message"]
