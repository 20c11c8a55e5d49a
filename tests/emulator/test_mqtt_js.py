"""mqtt.js (the MQTT client of Node and browsers, pinned in tests/js) against the emulator, with
the real extension as the upstream, in MQTT 3.1.1 and 5.0: each scenario is a Node script in
tests/js/mqtt that reports what its clients saw as JSON lines, and waits on its stdin for the
steps this side takes (paho and WebSocket clients' sends, REST sends, dropping a connection)."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import pytest
from azure.messaging.webpubsubclient import WebPubSubClient, WebPubSubClientCredential
from azure.messaging.webpubsubclient.models import (
    CallbackType,
    OnGroupDataMessageArgs,
    WebPubSubDataType,
)

from tests.support import ROOT, wait_for

from .mqtt_support import ALL_ROLES, V5, V311, Client, MqttStack, mqtt_stack

JS = ROOT / "tests" / "js"
SCRIPTS = JS / "mqtt"
#: Each scenario's protocol version, as mqtt.js's ``protocolVersion`` names it.
VERSIONS = [4, 5]
EVENTS = "$webpubsub/server/events"
SERVER_MESSAGES = "$webpubsub/server/messages"
#: The app's refusals (by username) and the CONNACK code each sends: (3.1.1, 5.0).
REFUSALS = {
    "reject-401": (5, 0x87),
    "reject-403": (5, 0x87),
    "reject-400": (4, 0x86),
    "reject-500": (3, 0x80),
    "reject-code-2": (2, 0x80),
    "reject-code-156": (5, 0x9C),
}

versions = pytest.mark.parametrize("version", VERSIONS, ids=["3.1.1", "5.0"])


@pytest.fixture
def stack() -> Iterator[MqttStack]:
    # No upstream retries: a connect event answered with 500 is refused at once.
    with mqtt_stack(upstream_retry_delays=()) as stack:
        yield stack


class Scenario:
    """A running Node scenario: the lines it reports, read in order, and steps told to it."""

    def __init__(self, stack: MqttStack, script: str, version: int, **env: str) -> None:
        node = shutil.which("node")
        if node is None or not (JS / "node_modules" / "mqtt").is_dir():
            pytest.fail("mqtt.js is missing: run .ci/install-node-packages.sh (Node 20)")
        url: str = stack.service.get_client_access_token(
            client_protocol="MQTT", roles=ALL_ROLES
        )["url"]
        self.script = script
        self.process = subprocess.Popen(
            [node, str(SCRIPTS / script)],
            cwd=JS,
            env={**os.environ, "WPS_MQTT_URL": url, "WPS_MQTT_VERSION": str(version), **env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.stderr: list[str] = []
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self.readers = [
            threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True),
            threading.Thread(target=self._drain, args=(self.process.stderr,), daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            if line.startswith("{"):
                self.lines.put(json.loads(line))
        self.lines.put(None)

    def _drain(self, stream: IO[str]) -> None:
        self.stderr.extend(stream)

    def _fail(self, why: str) -> AssertionError:
        return AssertionError(f"{self.script}: {why}\n{''.join(self.stderr)[-4000:]}")

    def expect(self, kind: str, timeout: float = 20) -> dict[str, Any]:
        """The next line the scenario reports (after the steps it waits for): it must be
        ``kind``."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise self._fail(f"reported no {kind!r} within {timeout:g} s") from None
            if line is None:
                raise self._fail(f"ended before reporting {kind!r}")
            if line["kind"] == "failed":
                raise self._fail(f"failed: {line['error']}")
            if line["kind"] != "waiting":
                break
        assert line["kind"] == kind, f"{self.script} reported {line} instead of {kind!r}"
        return line

    def tell(self, step: str, **fields: Any) -> None:
        """Announce that this side did ``step``."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"step": step, **fields}) + "\n")
        self.process.stdin.flush()

    def finish(self, timeout: float = 20) -> None:
        """The scenario must end, successfully, having reported nothing more."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise self._fail(f"did not end within {timeout:g} s") from None
        for reader in self.readers:
            reader.join(5)
        rest = []
        while not self.lines.empty():
            line = self.lines.get()
            if line is not None and line["kind"] != "waiting":
                rest.append(line)
        assert not rest, f"{self.script} reported more: {rest}"
        if code != 0:
            raise self._fail(f"exited with {code}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        for reader in self.readers:
            reader.join(5)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def scenario(stack: MqttStack, script: str, version: int, **env: str) -> Iterator[Scenario]:
    running = Scenario(stack, script, version, **env)
    try:
        yield running
    finally:
        running.close()


def user_properties(message: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = message["userProperties"] or {}
    return properties


@versions
def test_mqtt_js_connects_and_sees_the_code_of_each_refusal(
    stack: MqttStack, version: int
) -> None:
    with scenario(stack, "connect.mjs", version, WPS_REJECT=",".join(REFUSALS)) as node:
        connack = node.expect("accepted")["connack"]
        assert (connack["code"], connack["sessionPresent"]) == (0, False)
        if version == 5:
            properties = connack["properties"]
            assert properties["userProperties"] == {"greeting": "hello"}
            assert properties["retainAvailable"] is False
            assert properties["wildcardSubscriptionAvailable"] is False
            assert properties["sharedSubscriptionAvailable"] is False
        else:
            assert connack["properties"] is None
        for username, (v311, v5) in REFUSALS.items():
            refused = node.expect("refused")
            code = v5 if version == 5 else v311
            assert refused["username"] == username
            assert refused["connected"] is False
            assert [c["code"] for c in refused["connacks"]] == [code]
            assert [e["code"] for e in refused["errors"]] == [code]
            if version == 5 and username != "reject-500":
                expected = "Refused with a code." if "code" in username else "Refused by the app."
                assert refused["connacks"][0]["properties"]["reasonString"] == expected
        node.finish()
    connect = stack.recorded.of("connect", "device1")
    assert len(connect) == 1
    assert connect[0]["protocol_version"] == version
    assert (connect[0]["username"], connect[0]["password"]) == ("dev", b"\xffsecret")
    assert connect[0]["user_properties"] == ([("model", "x1")] if version == 5 else [])
    assert connect[0]["subprotocol"] == "mqtt"
    assert len(stack.recorded.of("connected", "device1")) == 1
    _reason, mqtt = wait_for(lambda: stack.recorded.of("disconnected", "device1"))[0]
    assert mqtt.initiated_by_client is True
    assert [c["username"] for c in stack.recorded.of("connect", "refused")] == list(REFUSALS)
    assert not stack.recorded.of("connected", "refused")


@versions
def test_mqtt_js_paho_and_websocket_clients_share_a_topic(
    stack: MqttStack, version: int
) -> None:
    paho = stack.client("pahopeer", V311 if version == 5 else V5)  # the other version
    paho.connect()
    assert [c.value for c in paho.subscribe("room", qos=1)] == [1]
    seen: list[tuple[str, object]] = []

    def on_group_message(event: OnGroupDataMessageArgs) -> None:
        seen.append((event.data_type, event.data))

    url = stack.service.get_client_access_token(roles=ALL_ROLES, user_id="browser")["url"]
    ws = WebPubSubClient(WebPubSubClientCredential(lambda: url))
    ws.subscribe(CallbackType.GROUP_MESSAGE, on_group_message)
    with ws:
        ws.join_group("room")
        exchange_with_mqtt_js(stack, version, paho, ws, seen)
    assert json.loads(paho.next_message().payload) == {"from": "browser"}


def exchange_with_mqtt_js(stack: MqttStack, version: int, paho: Client, ws: WebPubSubClient,
                          seen: list[tuple[str, object]]) -> None:
    """The messaging scenario, with a paho client and a WebSocket client (whose group
    messages ``seen`` gets) in the group "room" already."""
    with scenario(stack, "messaging.mjs", version) as node:
        assert node.expect("subscribed")["granted"] == [2]
        published = node.expect("published")
        assert published["acks"] == [
            {"cmd": cmd, "reasonCode": 0} for cmd in ("puback", "puback", "pubrec", "pubcomp")
        ]
        got = published["messages"]
        assert [(m["topic"], m["bytes"], m["qos"]) for m in got] == [
            ("room", list(b'{"t":1}'), 1), ("room", list(b"plain"), 1), ("room", [0, 1], 2)
        ]
        # Content types travel to MQTT 5 listeners and make the WebSocket client's data types.
        if version == 5:
            assert [m["contentType"] for m in got] == ["application/json", "text/plain", None]
        else:
            assert [m["contentType"] for m in got] == [None, None, None]
        from_js = [paho.next_message() for _ in range(3)]
        assert [(m.topic, m.payload, m.qos) for m in from_js] == [
            ("room", b'{"t":1}', 1), ("room", b"plain", 1), ("room", b"\x00\x01", 1)
        ]
        if version == 4:  # 3.1.1 messages are binary data, and have its content type in 5.0
            assert {m.properties.ContentType for m in from_js} == {"application/octet-stream"}
        wait_for(lambda: len(seen) == 3, what="the WebSocket client's messages")
        if version == 5:
            assert seen == [("json", {"t": 1}), ("text", "plain"), ("binary", b"\x00\x01")]
        else:
            assert seen == [("binary", b'{"t":1}'), ("binary", b"plain"),
                            ("binary", b"\x00\x01")]
        paho.publish("room", b"from paho", qos=1, content_type="text/plain")
        assert paho.next_message().payload == b"from paho"  # it is subscribed too
        ws.send_to_group("room", {"from": "browser"}, WebPubSubDataType.JSON)
        node.tell("sent")
        result = node.expect("result")
        assert [(m["topic"], m["text"], m["qos"]) for m in result["messages"]] == [
            ("room", "from paho", 1), ("room", '{"from":"browser"}', 1)
        ]
        if version == 5:
            # From a 3.1.1 client: binary; from a JSON client: JSON.
            assert [m["contentType"] for m in result["messages"]] == [
                "application/octet-stream", "application/json"
            ]
        assert result["sender"] == []  # not subscribed
        node.finish()


@versions
def test_mqtt_js_server_events_rest_sends_and_a_close(stack: MqttStack, version: int) -> None:
    with scenario(stack, "server.mjs", version) as node:
        events = node.expect("events")
        assert events["granted"] == [0]
        succeeded, failed = events["messages"]
        assert (succeeded["topic"], succeeded["text"], succeeded["qos"]) == (
            f"{EVENTS}/echo/succeeded", "ping", 1
        )
        assert (failed["topic"], failed["qos"]) == (f"{EVENTS}/fail/failed", 0)
        data, data_type, mqtt = wait_for(lambda: stack.recorded.of("echo", "caller"))[0]
        if version == 5:
            assert (data, data_type) == ("ping", "text")
            assert [(p.name, p.value) for p in mqtt.user_properties] == [("a", "b")]
            assert succeeded["correlationData"] == "r1"
            assert succeeded["contentType"].startswith("text/plain")  # the app's reply's
            assert user_properties(succeeded)["azure-status-code"] == "200"
            assert failed["correlationData"] == "r2"
            assert user_properties(failed)["azure-status-code"] == "400"
        else:
            assert (data, data_type) == (b"ping", "binary")
            assert succeeded["userProperties"] is None
        service = stack.service
        service.send_to_all("to all", content_type="text/plain")
        service.send_to_user("alice", "to alice", content_type="text/plain")
        service.send_to_connection("caller", {"to": "caller"})
        service.send_to_group("news", "in news", content_type="text/plain")
        service.add_connection_to_group("extra", "caller")
        service.send_to_group("extra", "added by REST", content_type="text/plain")
        node.tell("sent")
        rest = node.expect("rest")["messages"]
        assert [(m["topic"], m["text"], m["qos"]) for m in rest] == [
            (SERVER_MESSAGES, "to all", 1),
            (SERVER_MESSAGES, "to alice", 1),
            (SERVER_MESSAGES, '{"to": "caller"}', 1),
            ("news", "in news", 0),  # its subscription's QoS
            ("extra", "added by REST", 1),  # a group the REST API added it to: QoS 1
        ]
        if version == 5:
            assert [m["contentType"] for m in rest] == [
                "text/plain", "text/plain", "application/json", "text/plain", "text/plain"
            ]
        assert service.connection_exists("caller")
        service.close_connection("caller", reason="bye")
        closed = node.expect("closed")
        if version == 5:
            assert [(d["reasonCode"], d["properties"]["reasonString"])
                    for d in closed["disconnects"]] == [(0x98, "bye")]
        else:
            assert closed["disconnects"] == []  # MQTT 3.1.1 has no DISCONNECT from servers
        node.finish()
    wait_for(lambda: stack.recorded.of("disconnected", "caller"), what="disconnected")
    assert not stack.service.connection_exists("caller")


@versions
def test_mqtt_js_session_survives_a_drop(stack: MqttStack, version: int) -> None:
    with scenario(stack, "session.mjs", version) as node:
        subscribed = node.expect("subscribed")
        assert subscribed["connack"]["sessionPresent"] is False
        assert subscribed["granted"] == [1]
        wait_for(lambda: stack.recorded.of("connected", "device"), what="connected")
        assert stack.emulator.drop("device")
        assert node.expect("dropped")["disconnects"] == []  # cut, not closed
        stack.service.send_to_group("room", "while away", content_type="text/plain")
        node.tell("sent")
        resumed = node.expect("resumed")
        assert (resumed["connack"]["code"], resumed["connack"]["sessionPresent"]) == (0, True)
        got = resumed["messages"]
        assert [(m["topic"], m["text"], m["qos"], m["dup"]) for m in got] == [
            ("room", "while away", 1, False)
        ] + ([("room", "long-lived", 1, False)] if version == 5 else [])
        if version == 5:  # the short-lived one expired while it waited
            assert 55 <= got[1]["messageExpiry"] < 60
        node.finish()
    assert len(stack.recorded.of("connect", "device")) == 2
    assert len(stack.recorded.of("connected", "device")) == 1
    if version == 5:
        (_reason, mqtt), = wait_for(lambda: stack.recorded.of("disconnected", "device"))
        assert mqtt.initiated_by_client is True
        assert not stack.service.connection_exists("device")
    else:
        assert stack.service.connection_exists("device")  # a 3.1.1 session outlives DISCONNECT
        assert not stack.recorded.of("disconnected", "device")


@versions
def test_mqtt_js_last_will_and_delivery_guarantees(stack: MqttStack, version: int) -> None:
    with scenario(stack, "delivery.mjs", version) as node:
        wills = node.expect("wills")
        assert [(m["topic"], m["text"], m["qos"]) for m in wills["messages"]] == [
            ("status", "device gone", 1)  # and not "polite gone"
        ]
        qos2 = node.expect("qos2")
        assert qos2["granted"] == [2]
        assert [(m["text"], m["qos"], m["dup"]) for m in qos2["messages"]] == [
            (f"m{n}", 2, False) for n in range(5)
        ]
        assert sorted(ack["cmd"] for ack in qos2["acks"]) == ["pubcomp"] * 5 + ["pubrec"] * 5
        assert {ack["reasonCode"] for ack in qos2["acks"]} == {0}
        redelivered = node.expect("redelivered")
        assert redelivered["connack"]["sessionPresent"] is True
        assert [(m["text"], m["qos"], m["dup"]) for m in redelivered["messages"]] == [
            ("important", 1, False), ("important", 1, True)  # not a third time: acknowledged
        ]
        node.finish()
    (_reason, broken), = stack.recorded.of("disconnected", "broken")
    assert broken.initiated_by_client is False
    (_reason, polite), = stack.recorded.of("disconnected", "polite")
    assert polite.initiated_by_client is True


@versions
def test_mqtt_js_is_refused_what_the_service_does_not_support(
    stack: MqttStack, version: int
) -> None:
    with scenario(stack, "unsupported.mjs", version) as node:
        subscribed = node.expect("subscribed")
        subacks = subscribed["subacks"]
        wildcard, shared = (0xA2, 0x9E) if version == 5 else (0x80, 0x80)
        assert {topic: s["granted"] for topic, s in subacks.items()} == {
            "a/+": [wildcard], "a/#": [wildcard], "$share/g/a": [shared], "plain": [1]
        }
        assert all(subacks[topic]["error"] for topic in ("a/+", "a/#", "$share/g/a"))
        assert subacks["plain"]["error"] is None  # the connection goes on
        if version == 5:
            assert subscribed["unsubacks"] == {"plain": [0], "never": [0x11]}
            assert subscribed["reserved"]["code"] == 0x90  # the service's topic
            assert subscribed["plain"] is None  # 0x10, no subscribers: not an error
            assert subscribed["acks"] == [{"cmd": "puback", "reasonCode": 0x90},
                                          {"cmd": "puback", "reasonCode": 0x10}]
        else:  # MQTT 3.1.1 has no codes in UNSUBACK and PUBACK
            assert subscribed["reserved"] is None
            assert subscribed["acks"] == [{"cmd": "puback", "reasonCode": 0}] * 2
        closed = node.expect("closed")
        if version == 5:
            assert [d["reasonCode"] for d in closed["disconnects"]] == [0x9A]
            assert closed["disconnects"][0]["properties"]["reasonString"]
        else:
            assert closed["disconnects"] == []
        assert closed["messages"] == []  # the retained message went nowhere
        node.finish()
    assert stack.recorded.of("connected", "device")
