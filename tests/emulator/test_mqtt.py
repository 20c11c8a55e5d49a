"""MQTT clients (paho-mqtt, 3.1.1 and 5.0) against the emulator, with the real extension as the
upstream: sessions, topics and groups, QoS 0/1/2, server events, REST sends, last will, and what
the service refuses."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
from azure.messaging.webpubsubclient import WebPubSubClient, WebPubSubClientCredential
from azure.messaging.webpubsubclient.models import CallbackType, WebPubSubDataType
from paho.mqtt.client import convert_connack_rc_to_reason_code
from paho.mqtt.enums import ConnackCode, MQTTProtocolVersion
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from flask_webpubsub.core.tokens import build_service_token
from tests.support import PRIMARY_KEY, wait_for

from .mqtt_support import ALL_ROLES, HUB, V5, V311, VERSIONS, MqttStack, mqtt_stack


@pytest.fixture
def stack() -> Iterator[MqttStack]:
    with mqtt_stack() as stack:
        yield stack


def version_id(version: MQTTProtocolVersion) -> str:
    return "3.1.1" if version == V311 else "5.0"


def connack(version: MQTTProtocolVersion, v311: int, v5: int) -> int:
    """The code a client of ``version`` is sent, as paho reports it (it reports an MQTT 3.1.1
    return code as the MQTT 5 reason code of the same meaning, one to one)."""
    if version == V311:
        return convert_connack_rc_to_reason_code(ConnackCode(v311)).value
    return v5


versions = pytest.mark.parametrize("version", VERSIONS, ids=version_id)


@versions
def test_a_client_connects_and_the_upstream_sees_its_connect(
    stack: MqttStack, version: MQTTProtocolVersion
) -> None:
    client = stack.client("device1", version, username="dev", password=b"\xffsecret",
                          user_properties=[("model", "x1")] if version == V5 else None)
    reason, present, properties = client.connect()
    assert reason.value == 0
    assert not present
    connect = wait_for(lambda: stack.recorded.of("connect", "device1"))[0]
    assert connect["protocol_version"] == (4 if version == V311 else 5)
    assert connect["username"] == "dev"
    assert connect["password"] == b"\xffsecret"
    assert connect["subprotocol"] == "mqtt"
    assert connect["physical"]
    if version == V5:
        assert connect["user_properties"] == [("model", "x1")]
        assert ("greeting", "hello") in properties.UserProperty
        assert properties.RetainAvailable == 0
        assert properties.WildcardSubscriptionAvailable == 0
        assert properties.SharedSubscriptionAvailable == 0
    assert wait_for(lambda: stack.recorded.of("connected", "device1"))


@pytest.mark.parametrize(
    ("username", "v311", "v5"),
    [("reject-401", 5, 0x87), ("reject-403", 5, 0x87), ("reject-400", 4, 0x86),
     ("reject-500", 3, 0x80), ("reject-code-2", 2, 0x80), ("reject-code-156", 5, 0x9C)],
)
@versions
def test_a_rejected_connect_is_the_connack_code_the_service_sends(
    stack: MqttStack, version: MQTTProtocolVersion, username: str, v311: int, v5: int
) -> None:
    client = stack.client("refused", version, username=username)
    reason, _present, properties = client.connect()
    assert reason.value == connack(version, v311, v5)
    if version == V5 and username != "reject-500":
        assert properties.ReasonString
    assert not stack.recorded.of("connected")


@versions
def test_mqtt_clients_publish_and_subscribe_across_versions(
    stack: MqttStack, version: MQTTProtocolVersion
) -> None:
    sender = stack.client("sender", version)
    v3, v5 = stack.client("listener3", V311), stack.client("listener5", V5)
    for client in (sender, v3, v5):
        assert client.connect()[0].value == 0
    assert [c.value for c in v3.subscribe("room", qos=1)] == [1]
    assert [c.value for c in v5.subscribe("room", qos=2)] == [2]
    sender.publish("room", b"hi", qos=1, content_type="text/plain")
    for listener in (v3, v5):
        message = listener.next_message()
        assert (message.topic, message.payload, message.qos) == ("room", b"hi", 1)
    sender.publish("room", b"two", qos=2)
    assert v3.next_message().qos == 1  # the lower of the message's and the subscription's
    assert v5.next_message().qos == 2


def test_content_types_and_properties_reach_mqtt_5_subscribers(stack: MqttStack) -> None:
    sender, listener = stack.client("sender"), stack.client("listener")
    for client in (sender, listener):
        client.connect()
    listener.subscribe("room")
    sender.publish("room", b'{"a":1}', qos=1, content_type="application/json",
                   correlation=b"c1", user_properties=[("k", "v")])
    message = listener.next_message()
    assert message.properties.ContentType == "application/json"
    assert message.properties.CorrelationData == b"c1"
    assert message.properties.UserProperty == [("k", "v")]


def test_mqtt_and_websocket_clients_share_groups(stack: MqttStack) -> None:
    mqtt = stack.client("device", V5)
    mqtt.connect()
    mqtt.subscribe("room", qos=1)
    seen: list[tuple[str, object]] = []
    url = stack.service.get_client_access_token(roles=ALL_ROLES, user_id="browser")["url"]
    ws = WebPubSubClient(WebPubSubClientCredential(lambda: url))
    ws.subscribe(CallbackType.GROUP_MESSAGE, lambda e: seen.append((e.data_type, e.data)))
    with ws:
        ws.join_group("room")
        mqtt.publish("room", b'{"t":1}', qos=1, content_type="application/json")
        mqtt.publish("room", b"plain", qos=1, content_type="text/plain")
        mqtt.publish("room", b"\x00\x01", qos=1)
        wait_for(lambda: len(seen) == 3)
        assert seen == [("json", {"t": 1}), ("text", "plain"), ("binary", b"\x00\x01")]
        ws.send_to_group("room", {"from": "browser"}, WebPubSubDataType.JSON)
        message = mqtt.next_message()
        while message.payload == b'{"t":1}' or message.payload in (b"plain", b"\x00\x01"):
            message = mqtt.next_message()  # its own publishes come back too
        assert json.loads(message.payload) == {"from": "browser"}
        assert message.qos == 1
        assert message.properties.ContentType == "application/json"


@versions
def test_server_events_reply_on_succeeded_and_failed(
    stack: MqttStack, version: MQTTProtocolVersion
) -> None:
    client = stack.client("caller", version)
    client.connect()
    client.publish("$webpubsub/server/events/echo", b"ping", qos=1,
                   content_type="text/plain", correlation=b"r1", user_properties=[("a", "b")])
    reply = client.next_message()
    assert reply.topic == "$webpubsub/server/events/echo/succeeded"
    assert reply.payload == b"ping"
    assert reply.qos == 1
    data, data_type, mqtt = wait_for(lambda: stack.recorded.of("echo", "caller"))[0]
    if version == V5:
        assert (data, data_type) == ("ping", "text")
        assert reply.properties.CorrelationData == b"r1"
        assert ("azure-status-code", "200") in reply.properties.UserProperty
        assert [(p.name, p.value) for p in mqtt.user_properties] == [("a", "b")]
    else:
        assert (data, data_type) == (b"ping", "binary")
    client.publish("$webpubsub/server/events/fail", b"x", qos=0)
    failed = client.next_message()
    assert failed.topic == "$webpubsub/server/events/fail/failed"
    if version == V5:
        assert ("azure-status-code", "400") in failed.properties.UserProperty


@versions
def test_rest_sends_reach_mqtt_clients(stack: MqttStack, version: MQTTProtocolVersion) -> None:
    client = stack.client("device", version, username="alice")
    client.connect()
    client.subscribe("news", qos=0)
    service = stack.service
    service.send_to_all("to all", content_type="text/plain")
    service.send_to_user("alice", "to alice", content_type="text/plain")
    service.send_to_connection("device", {"to": "device"})
    service.send_to_group("news", "in news", content_type="text/plain")
    got = [client.next_message() for _ in range(4)]
    assert [(m.topic, m.payload, m.qos) for m in got] == [
        ("$webpubsub/server/messages", b"to all", 1),
        ("$webpubsub/server/messages", b"to alice", 1),
        ("$webpubsub/server/messages", b'{"to": "device"}', 1),
        ("news", b"in news", 0),
    ]
    assert service.connection_exists("device")
    service.add_connection_to_group("extra", "device")
    service.send_to_group("extra", "added by REST", content_type="text/plain")
    assert client.next_message().topic == "extra"
    service.close_connection("device", reason="bye")
    if version == V5:
        reason, properties = client.disconnects.get(timeout=10)
        assert reason.value == 0x98
        assert properties.ReasonString == "bye"
    wait_for(lambda: stack.recorded.of("disconnected", "device"))
    assert not service.connection_exists("device")


@versions
def test_a_session_survives_a_drop(stack: MqttStack, version: MQTTProtocolVersion) -> None:
    client = stack.client("device", version, clean_start=False,
                          session_expiry=30 if version == V5 else None)
    assert client.connect()[1] is False
    client.subscribe("room", qos=1)
    wait_for(lambda: stack.recorded.of("connected", "device"))
    assert stack.emulator.drop("device")
    wait_for(lambda: not client.disconnects.empty())
    stack.service.send_to_group("room", "while away", content_type="text/plain")
    reason, present, _ = client.connect()
    assert reason.value == 0
    assert present
    message = client.next_message()
    assert (message.topic, message.payload, message.qos) == ("room", b"while away", 1)
    assert len(stack.recorded.of("connect", "device")) == 2
    assert len(stack.recorded.of("connected", "device")) == 1
    assert not stack.recorded.of("disconnected", "device")


def test_a_session_ends_with_a_clean_disconnect(stack: MqttStack) -> None:
    client = stack.client("device", V5)
    client.connect()
    client.disconnect()
    reason, mqtt = wait_for(lambda: stack.recorded.of("disconnected", "device"))[0]
    assert reason is None
    assert mqtt.initiated_by_client is True
    assert mqtt.disconnect_packet["code"] == 0
    assert not stack.service.connection_exists("device")


@versions
def test_the_last_will_goes_out_when_a_client_drops(
    stack: MqttStack, version: MQTTProtocolVersion
) -> None:
    listener = stack.client("listener", V5)
    listener.connect()
    listener.subscribe("status")
    device = stack.client("device", version, will=("status", b"device gone", 1))
    device.connect()
    assert stack.emulator.drop("device")
    message = listener.next_message()
    assert (message.topic, message.payload) == ("status", b"device gone")


def test_no_will_after_a_clean_disconnect(stack: MqttStack) -> None:
    listener = stack.client("listener", V5)
    listener.connect()
    listener.subscribe("status")
    device = stack.client("device", V5, will=("status", b"device gone", 1))
    device.connect()
    device.disconnect()
    wait_for(lambda: stack.recorded.of("disconnected", "device"))
    listener.no_message()


@versions
def test_qos_1_is_sent_again_until_acknowledged(
    stack: MqttStack, version: MQTTProtocolVersion
) -> None:
    device = stack.client("device", version, clean_start=False, manual_ack=True,
                          session_expiry=30 if version == V5 else None)
    device.connect()
    device.subscribe("room", qos=1)
    stack.service.send_to_group("room", "important", content_type="text/plain")
    first = device.next_message()
    assert (first.payload, first.dup) == (b"important", False)
    assert stack.emulator.drop("device")  # never acknowledged
    wait_for(lambda: not device.disconnects.empty())
    assert device.connect()[1] is True
    again = device.next_message()
    assert (again.payload, again.dup, again.qos) == (b"important", True, 1)
    device.paho.ack(again.mid, again.qos)


@versions
def test_qos_2_is_delivered_exactly_once(stack: MqttStack, version: MQTTProtocolVersion) -> None:
    sender, listener = stack.client("sender", version), stack.client("listener", version)
    sender.connect()
    listener.connect()
    listener.subscribe("room", qos=2)
    for n in range(5):
        sender.publish("room", f"m{n}".encode(), qos=2)
    got = [listener.next_message() for _ in range(5)]
    assert [m.payload for m in got] == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    assert {m.qos for m in got} == {2}
    listener.no_message()


@versions
def test_what_the_service_does_not_support_is_refused(
    stack: MqttStack, version: MQTTProtocolVersion
) -> None:
    client = stack.client("device", version)
    client.connect()
    codes = client.subscribe("a/+")
    assert codes[0].value == (0x80 if version == V311 else 0xA2)
    codes = client.subscribe("$share/g/a")
    assert codes[0].value == (0x80 if version == V311 else 0x9E)
    assert client.subscribe("plain")[0].value == 1  # the connection goes on
    client.publish("plain", b"retained", qos=0, retain=True)
    if version == V5:
        reason, _ = client.disconnects.get(timeout=10)
        assert reason.value == 0x9A
    else:
        wait_for(lambda: not client.disconnects.empty())


@pytest.mark.parametrize(
    ("client_id", "v311", "v5"), [("bad-id", 2, 0x85), ("x" * 129, 2, 0x85)]
)
@versions
def test_client_ids_the_service_refuses(
    stack: MqttStack, version: MQTTProtocolVersion, client_id: str, v311: int, v5: int
) -> None:
    client = stack.client(client_id, version)
    assert client.connect()[0].value == connack(version, v311, v5)


def test_an_mqtt_5_client_without_client_id_is_assigned_one(stack: MqttStack) -> None:
    client = stack.client("", V5)
    reason, _, properties = client.connect()
    assert reason.value == 0
    assigned = properties.AssignedClientIdentifier
    assert assigned
    assert stack.service.connection_exists(assigned)


def test_permissions_come_from_roles(stack: MqttStack) -> None:
    token = stack.token(roles=[])  # the app grants every role: use a hub without an upstream
    with mqtt_stack(upstream=None) as bare:
        client = bare.client("device", V5, token=bare.token(roles=["webpubsub.joinLeaveGroup"]))
        client.connect()
        assert client.subscribe("room")[0].value == 1
        info = client.publish("room", b"no", qos=1)
        assert info.rc == 0
        client.no_message()
        assert token


def test_a_client_needs_a_token(stack: MqttStack) -> None:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{stack.emulator.url}/clients/mqtt/hubs/{HUB}",
        headers={"Upgrade": "websocket", "Connection": "Upgrade",
                 "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13",
                 "Sec-WebSocket-Protocol": "mqtt"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    refused.value.close()
    assert refused.value.code == 401


def test_the_token_may_come_in_the_authorization_header(stack: MqttStack) -> None:
    token = stack.token(user_id="header-user")
    client = stack.client("device", V5, token=token, path=f"/clients/mqtt/hubs/{HUB}",
                          headers={"Authorization": f"Bearer {token}"})
    assert client.connect()[0].value == 0


def test_a_quiet_client_is_kept_alive_by_pings(stack: MqttStack) -> None:
    client = stack.client("device", V311, keepalive=1)
    client.connect()
    time.sleep(3.5)
    assert client.disconnects.empty()
    assert stack.service.connection_exists("device")


def test_a_device_gets_its_url_from_the_apps_negotiate_route(stack: MqttStack) -> None:
    with urllib.request.urlopen(f"{stack.server.url}/negotiate?device=thermo",
                                timeout=10) as response:
        url = json.load(response)["url"]
    parts = urllib.parse.urlsplit(url)
    assert parts.path == f"/clients/mqtt/hubs/{HUB}"
    client = stack.client("thermo1", V5, path=f"{parts.path}?{parts.query}")
    assert client.connect()[0].value == 0
    assert wait_for(lambda: stack.recorded.of("connected", "thermo1"))
    assert stack.service.user_exists("thermo")


def test_a_token_from_the_rest_api_for_mqtt_clients(stack: MqttStack) -> None:
    endpoint = f"{stack.emulator.url}/api/hubs/{HUB}/:generateToken"
    bearer = build_service_token(endpoint, PRIMARY_KEY)
    request = urllib.request.Request(
        f"{endpoint}?api-version=2024-01-01&clientType=MQTT&userId=rest-user",
        method="POST", headers={"Authorization": f"Bearer {bearer}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        token = json.load(response)["token"]
    assert stack.client("device", V311, token=token).connect()[0].value == 0
    # A token for the WebSocket endpoint is not one for the MQTT endpoint.
    websocket_token = stack.service.get_client_access_token()["token"]
    url = stack.emulator.url.replace("http", "ws", 1)
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{url}/clients/mqtt/hubs/{HUB}?access_token={websocket_token}",
                subprotocols=[Subprotocol("mqtt")]).close()
    assert refused.value.response.status_code == 401
    assert b"audience" in refused.value.response.body


def test_two_connects_of_one_client_id_at_once_make_one_session(stack: MqttStack) -> None:
    stack.emulator.add_upstream_fault(delay=0.5, event="connect", count=1)
    first, second = stack.client("twin", V5), stack.client("twin", V5)
    first.paho.connect_async(first.host, first.port)
    first.paho.loop_start()
    first._started = True
    time.sleep(0.1)  # the first CONNECT waits for the slow upstream
    assert second.connect()[0].value == 0
    assert first.connacks.get(timeout=10)[0].value == 0
    # The later CONNECT (clean start) replaced the earlier session: one session is left.
    reason, _ = first.disconnects.get(timeout=10)
    assert reason.value == 0x8E  # session taken over
    sessions = stack.emulator.emulator.hubs[HUB].connections
    assert list(sessions) == ["twin"]
    stack.service.send_to_connection("twin", "to the twin", content_type="text/plain")
    assert second.next_message().payload == b"to the twin"
    reasons = wait_for(lambda: stack.recorded.of("disconnected", "twin"))
    assert reasons[0][0] == "The session was replaced by a clean start."


@pytest.mark.parametrize(
    "end", ["disconnect 0x80", "rest close", "take-over"],
)
def test_the_will_goes_out_whenever_the_connection_ends_without_a_normal_disconnect(
    stack: MqttStack, end: str
) -> None:
    listener = stack.client("listener", V5)
    listener.connect()
    listener.subscribe("status")
    device = stack.client("device", V5, clean_start=False, session_expiry=30,
                          will=("status", b"device gone", 1))
    device.connect()
    if end == "disconnect 0x80":
        device.disconnect(0x80)
    elif end == "rest close":
        stack.service.close_connection("device", reason="bye")
    else:
        again = stack.client("device", V5, clean_start=False, session_expiry=30)
        assert again.connect()[1] is True  # the session is resumed
    assert listener.next_message().payload == b"device gone"


def test_user_events_waiting_for_the_upstream_are_bounded(stack: MqttStack) -> None:
    stack.emulator.add_upstream_fault(delay=3.0, event="echo", count=1)
    client = stack.client("busy", V5)
    client.connect()
    for _ in range(101):
        client.paho.publish("$webpubsub/server/events/echo", b"x", qos=1)
    refused = wait_for(lambda: [r for r in stack.emulator.emulator.service.trace.since(0)
                                if "events wait" in r["text"]])
    assert refused
    replies = [client.next_message(timeout=30) for _ in range(100)]
    assert {r.topic for r in replies} == {"$webpubsub/server/events/echo/succeeded"}
    client.no_message(wait=1.0)  # the 101st was refused (PUBACK 0x97), not queued

