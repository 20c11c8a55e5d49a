"""A thermometer in the chat: an MQTT 5 device (paho-mqtt, over WebSocket) named ``thermo``.

``python -m example_app --device`` (``./run-example.sh --device``) runs one next to the chat.
It is a client like the page, with the chat's rules for names and rooms, only over MQTT:

1. It signs in with its name and negotiates as a page does, asking the chat's ``/negotiate``
   with ``?client=mqtt`` for a token of the service's MQTT endpoint
   (``/clients/mqtt/hubs/chat``). The token names the user, ``thermo``.
2. It connects there with its room in the URL's query string, as the page does; the chat's
   ``connect`` handler puts it in that room's group.
3. The room's messages arrive on the topic named after the room (``general``), each the JSON the
   page gets; one that starts with ``@thermo`` is a command, which it answers in the room.
4. It posts readings, and answers, as ``message`` user events: a PUBLISH to
   ``$webpubsub/server/events/message``. The chat stores each one and sends it to the room like a
   page's message; its reply comes back on ``$webpubsub/server/events/message/succeeded``.
5. What the chat sends to it alone (the room's snapshot on connecting) arrives on
   ``$webpubsub/server/messages``.
"""

from __future__ import annotations

import http.cookiejar
import json
import logging
import random
import threading
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

logger = logging.getLogger(__name__)

#: A PUBLISH to this topic plus a name is that user event for the app.
EVENTS = "$webpubsub/server/events/"
#: Where messages the app sends to a user or a connection arrive.
SERVER_MESSAGES = "$webpubsub/server/messages"


@dataclass
class Thermometer:
    """The device without its network: what it reads, and what it says to the room."""

    name: str = "thermo"
    celsius: float = 21.0
    readings: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def read(self) -> str:
        """A new reading (the temperature drifts a little), as the text it posts."""
        drift = self.rng.uniform(-0.3, 0.3)
        self.celsius = round(min(max(self.celsius + drift, 15.0), 30.0), 1)
        self.readings += 1
        return f"{self.celsius:.1f} °C"

    def answer(self, message: Mapping[str, Any]) -> str | None:
        """The reply to something the room received (the JSON the page gets), or None when it
        is not a chat message that starts with ``@`` and this device's name."""
        if message.get("kind") != "message" or message.get("user") == self.name:
            return None
        sender, words = message.get("user"), str(message.get("text", "")).split()
        if not words or words[0].casefold() != f"@{self.name}".casefold():
            return None
        command = words[1].casefold() if len(words) > 1 else "help"
        if command == "status":
            return f"@{sender} {self.read()} now ({self.readings} readings so far)."
        if command == "help":
            return f"@{sender} I am a thermometer: say “@{self.name} status”."
        return f"@{sender} I don't know “{words[1]}”; say “@{self.name} status”."


class Device:
    """A :class:`Thermometer` connected to the chat at ``chat_url``, in ``room``, posting a
    reading when it connects and every ``interval`` seconds. :meth:`start` returns at once;
    :attr:`online` is set while it is connected."""

    def __init__(
        self,
        chat_url: str,
        *,
        room: str = "general",
        interval: float = 60.0,
        thermometer: Thermometer | None = None,
    ) -> None:
        self.chat_url = chat_url.rstrip("/")
        self.room = room
        self.interval = interval
        self.thermometer = thermometer or Thermometer()
        self.online = threading.Event()
        #: Why the chat refused the device, when it did (it then stops trying).
        self.refused: str | None = None
        #: Its connection id while connected: the client id the service assigned it.
        self.connection_id: str | None = None
        self._stopping = threading.Event()
        # Its own cookie jar: the device's sign-in session with the chat.
        self._http = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        self.mqtt = paho.Client(
            CallbackAPIVersion.VERSION2, transport="websockets",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.mqtt.on_pre_connect = self._before_connecting
        self.mqtt.on_connect = self._connected
        self.mqtt.on_disconnect = self._disconnected
        self.mqtt.on_message = self._received
        self._reporter = threading.Thread(target=self._report, name="device", daemon=True)

    @property
    def name(self) -> str:
        return self.thermometer.name

    # -- the chat's side: a token ------------------------------------------------------------

    def negotiate(self) -> str:
        """Sign in with the device's name, then ask the chat for an MQTT client's URL (the
        service's MQTT endpoint, with the token in its query string)."""
        form = urllib.parse.urlencode({"name": self.name}).encode()
        self._http.open(f"{self.chat_url}/signin", data=form, timeout=10).close()
        with self._http.open(f"{self.chat_url}/negotiate?client=mqtt", timeout=10) as reply:
            url: str = json.load(reply)["url"]
        return url

    def _before_connecting(self, client: paho.Client, userdata: Any) -> None:
        """paho calls this before every connection, each reconnection too: a fresh token each
        time (tokens last an hour), and the room to be put in."""
        try:
            url = urllib.parse.urlsplit(self.negotiate())
        except OSError as exc:  # paho tries again later
            logger.warning("Device %s cannot negotiate: %s", self.name, exc)
            raise
        query = urllib.parse.urlencode({"room": self.room})
        client.ws_set_options(path=f"{url.path}?{url.query}&{query}")

    # -- MQTT -------------------------------------------------------------------------------

    def start(self) -> Device:
        url = urllib.parse.urlsplit(self.negotiate())
        if url.scheme == "wss":  # Azure Web PubSub; the emulator serves ws://
            self.mqtt.tls_set()
        assert url.hostname is not None
        port = url.port or (443 if url.scheme == "wss" else 80)
        # A clean session each time, so the chat's connect reply puts it in its room.
        self.mqtt.connect_async(url.hostname, port, keepalive=30, clean_start=True)
        self.mqtt.loop_start()
        self._reporter.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.mqtt.disconnect()
        self.mqtt.loop_stop()
        if self._reporter.is_alive():
            self._reporter.join(5)

    def _connected(self, client: paho.Client, userdata: Any, flags: Any,
                   reason: ReasonCode, properties: Properties | None) -> None:
        if reason.is_failure:
            # A refusal of the chat's connect handler, as the MQTT 5 reason code it became.
            why = getattr(properties, "ReasonString", None) or str(reason)
            self.refused = f"{reason} ({reason.value}): {why}"
            logger.error("The chat refused the device %s: %s", self.name, self.refused)
            client.disconnect()  # and stops reconnecting
            return
        # It sends no client id: the service assigns one, which is its connection id.
        self.connection_id = getattr(properties, "AssignedClientIdentifier", None)
        logger.info("Device %s connected over MQTT 5 as connection %s", self.name,
                    self.connection_id)
        self.online.set()
        self.post(self.thermometer.read())

    def _disconnected(self, client: paho.Client, userdata: Any, flags: Any,
                      reason: ReasonCode, properties: Properties | None) -> None:
        self.online.clear()
        if not self._stopping.is_set() and self.refused is None:
            logger.warning("Device %s lost its connection (%s); reconnecting", self.name, reason)

    def _received(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        reply = self.handle(message.topic, bytes(message.payload))
        if reply is not None:
            self.post(reply)

    def handle(self, topic: str, payload: bytes) -> str | None:
        """What the device says to a message it received on ``topic``; None for nothing."""
        try:
            data = json.loads(payload)
        except ValueError:
            logger.warning("Device %s got something that is not JSON on %s", self.name, topic)
            return None
        if not isinstance(data, dict):
            return None
        if topic.startswith(EVENTS):  # the chat's reply to one of its messages
            if topic.endswith("/failed") or data.get("kind") == "error":
                logger.warning("The chat did not take the device's message: %s",
                               data.get("error", data))
            return None
        if topic == SERVER_MESSAGES:  # to the device alone: the room it is in
            if data.get("kind") == "room":
                logger.info("Device %s is in #%s with %s", self.name, data.get("room"),
                            ", ".join(data.get("members", [])))
            return None
        answer = self.thermometer.answer(data)  # the room's group: what the page gets
        if answer is not None:
            logger.info("Device %s answers %s", self.name, data.get("user"))
        return answer

    def post(self, text: str) -> None:
        """Say ``text`` in the room: the chat's ``message`` user event, as plain text."""
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.ContentType = "text/plain"
        self.mqtt.publish(f"{EVENTS}message", text.encode(), qos=1, properties=properties)

    def _report(self) -> None:
        while not self._stopping.wait(self.interval):
            if self.online.is_set():
                self.post(self.thermometer.read())
