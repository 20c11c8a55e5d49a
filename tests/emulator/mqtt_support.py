"""MQTT test stack: an app with MQTT handlers (the real extension) behind the emulator, and
paho-mqtt clients over real WebSockets with tokens from the official service SDK."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from azure.messaging.webpubsubservice import WebPubSubServiceClient
from flask import Flask, abort, request
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from flask_webpubsub import (
    ConnectedEvent,
    ConnectEvent,
    ConnectRejection,
    ConnectResponse,
    DisconnectedEvent,
    MqttUserProperty,
    NegotiateOptions,
    UserEvent,
    UserEventResponse,
    WebPubSub,
)
from flask_webpubsub.emulator import EmulatorThread

from .conftest import AppServer, Recorded, start_stack

HUB = "chat"
ALL_ROLES = ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"]
V311 = MQTTProtocolVersion.MQTTv311
V5 = MQTTProtocolVersion.MQTTv5
VERSIONS = [V311, V5]


def create_mqtt_app(connection_string: str, recorded: Recorded) -> Flask:
    """An app whose handlers record what MQTT clients' events carry, and answer by username:
    ``reject-401``, ``reject-403``, ``reject-500``, ``reject-code-N`` (an explicit MQTT code)."""
    app = Flask("mqtt_e2e")
    app.config.update(WEBPUBSUB_CONNECTION_STRING=connection_string, WEBPUBSUB_HUB=HUB)
    webpubsub = WebPubSub(app)

    @webpubsub.on_negotiate
    def negotiate() -> NegotiateOptions:
        return NegotiateOptions(user_id=request.args.get("device"), roles=ALL_ROLES,
                                client_protocol="mqtt")

    @webpubsub.on_connect
    def connect(event: ConnectEvent) -> ConnectResponse:
        mqtt = event.mqtt
        if mqtt is None:  # a WebSocket client
            return ConnectResponse(roles=ALL_ROLES)
        recorded.add("connect", event.connection_id, {
            "protocol_version": getattr(mqtt, "protocol_version", None),
            "username": getattr(mqtt, "username", None),
            "password": getattr(mqtt, "password_bytes", None),
            "user_properties": [(p.name, p.value) for p in getattr(mqtt, "user_properties", [])],
            "physical": mqtt.physical_connection_id,
            "subprotocol": event.subprotocol,
            "user": event.user_id,
        })
        username = getattr(mqtt, "username", None) or ""
        if username.startswith("reject-code-"):
            raise ConnectRejection(403, "Refused with a code.",
                                   mqtt_code=int(username.rsplit("-", 1)[1]))
        if username.startswith("reject-"):
            abort(int(username.rsplit("-", 1)[1]), "Refused by the app.")
        return ConnectResponse(
            user_id=username or None, roles=ALL_ROLES,
            mqtt_user_properties=[MqttUserProperty("greeting", "hello")],
        )

    @webpubsub.on_connected
    def connected(event: ConnectedEvent) -> None:
        recorded.add("connected", event.connection_id, event.mqtt)

    @webpubsub.on_disconnected
    def disconnected(event: DisconnectedEvent) -> None:
        recorded.add("disconnected", event.connection_id, (event.reason, event.mqtt))

    @webpubsub.on_user_event("echo")
    def echo(event: UserEvent) -> UserEventResponse:
        recorded.add("echo", event.connection_id, (event.data, event.data_type, event.mqtt))
        return UserEventResponse(event.data, data_type=event.data_type)

    @webpubsub.on_user_event("fail")
    def fail(event: UserEvent) -> None:
        abort(400, "The app refuses this event.")

    return app


@dataclass
class MqttStack:
    emulator: EmulatorThread
    app: Flask
    server: AppServer
    recorded: Recorded
    clients: list[Client] = field(default_factory=list)

    @property
    def service(self) -> WebPubSubServiceClient:
        return WebPubSubServiceClient.from_connection_string(
            self.emulator.connection_string, hub=HUB
        )

    def token(self, **claims: Any) -> str:
        token: str = self.service.get_client_access_token(client_protocol="MQTT", **claims)[
            "token"
        ]
        return token

    def client(self, client_id: str, version: MQTTProtocolVersion = V5, *,
               token: str | None = None, **options: Any) -> Client:
        client = Client(self, client_id, version, token or self.token(), **options)
        self.clients.append(client)
        return client


@contextmanager
def mqtt_stack(**options: Any) -> Iterator[MqttStack]:
    base = start_stack(create_mqtt_app, **options)
    stack = MqttStack(base.emulator, base.app, base.server, base.recorded)
    try:
        yield stack
    finally:
        for client in stack.clients:
            client.stop()
        stack.emulator.stop()
        stack.server.stop()


@dataclass
class Received:
    topic: str
    payload: bytes
    qos: int
    dup: bool
    properties: Any
    mid: int


class Client:
    """A paho-mqtt client over WebSocket, with what it saw in queues."""

    def __init__(self, stack: MqttStack, client_id: str, version: MQTTProtocolVersion,
                 token: str, *, clean_start: bool = True, session_expiry: int | None = None,
                 username: str | None = None, password: bytes | None = None,
                 user_properties: list[tuple[str, str]] | None = None,
                 will: tuple[str, bytes, int] | None = None, manual_ack: bool = False,
                 keepalive: int = 30, path: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.version = version
        self.clean_start = clean_start
        self.session_expiry = session_expiry
        self.user_properties = user_properties
        self.keepalive = keepalive
        self.paho = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, transport="websockets",
            protocol=version, manual_ack=manual_ack,
            **({"clean_session": clean_start} if version == V311 else {}),
        )
        self.paho.ws_set_options(
            path=path or f"/clients/mqtt/hubs/{HUB}?access_token={token}", headers=headers
        )
        if username is not None:
            self.paho.username_pw_set(username, password)  # type: ignore[arg-type]
        if will is not None:
            self.paho.will_set(will[0], will[1], qos=will[2])
        self.host, port = stack.emulator.url.split("//", 1)[1].split(":")
        self.port = int(port)
        self.messages: queue.Queue[Received] = queue.Queue()
        self.connacks: queue.Queue[tuple[ReasonCode, bool, Any]] = queue.Queue()
        self.disconnects: queue.Queue[tuple[ReasonCode, Any]] = queue.Queue()
        self.subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self._lock = threading.Lock()
        self.paho.on_connect = self._on_connect
        self.paho.on_message = self._on_message
        self.paho.on_disconnect = self._on_disconnect
        self.paho.on_subscribe = self._on_subscribe
        self._started = False

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: ReasonCode,
                    properties: Any) -> None:
        self.connacks.put((reason, bool(flags.session_present), properties))

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        self.messages.put(Received(message.topic, bytes(message.payload), message.qos, message.dup,
                                   getattr(message, "properties", None), message.mid))

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: ReasonCode,
                       properties: Any) -> None:
        self.disconnects.put((reason, properties))

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: list[ReasonCode],
                      properties: Any) -> None:
        self.subacks.put(codes)

    def connect(self, timeout: float = 10) -> tuple[ReasonCode, bool, Any]:
        """CONNECT; the CONNACK's reason code, session-present flag and properties."""
        properties = None
        if self.version == V5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            if self.session_expiry is not None:
                properties.SessionExpiryInterval = self.session_expiry
            if self.user_properties:
                properties.UserProperty = self.user_properties
        if self.version == V5:
            self.paho.connect(self.host, self.port, keepalive=self.keepalive,
                              clean_start=self.clean_start, properties=properties)
        else:
            self.paho.connect(self.host, self.port, keepalive=self.keepalive)
        if not self._started:
            self.paho.loop_start()
            self._started = True
        return self.connacks.get(timeout=timeout)

    def subscribe(self, topic: str, qos: int = 1, *, no_local: bool = False,
                  timeout: float = 10) -> list[ReasonCode]:
        if self.version == V5:
            options = SubscribeOptions(qos=qos, noLocal=no_local)
            self.paho.subscribe(topic, options=options)
        else:
            self.paho.subscribe(topic, qos)
        return self.subacks.get(timeout=timeout)

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, *,
                content_type: str | None = None, correlation: bytes | None = None,
                user_properties: list[tuple[str, str]] | None = None,
                expiry: int | None = None, retain: bool = False,
                timeout: float = 10) -> paho.MQTTMessageInfo:
        properties = None
        if self.version == V5 and (content_type or correlation or user_properties or expiry):
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            if content_type:
                properties.ContentType = content_type
            if correlation:
                properties.CorrelationData = correlation
            if user_properties:
                properties.UserProperty = user_properties
            if expiry:
                properties.MessageExpiryInterval = expiry
        info = self.paho.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if qos:
            info.wait_for_publish(timeout)
        return info

    def next_message(self, timeout: float = 10) -> Received:
        return self.messages.get(timeout=timeout)

    def no_message(self, wait: float = 0.5) -> None:
        try:
            message = self.messages.get(timeout=wait)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected message on {message.topic}: {message.payload!r}")

    def disconnect(self, reason_code: int = 0) -> None:
        if self.version == V5:
            self.paho.disconnect(ReasonCode(PacketTypes.DISCONNECT, identifier=reason_code))
        else:
            self.paho.disconnect()

    def stop(self) -> None:
        if self._started:
            self.paho.disconnect()
            self.paho.loop_stop()
            self._started = False
