"""The example's MQTT device (``--device``): what it says to what it receives, the chat's
handlers with MQTT clients, and, in Debian's Chromium, a person and the device talking through
the one app on the emulator, started with the command docs/example-app.md shows. Screenshots go
to test-artifacts/example_app/ (device.png is the docs')."""

from __future__ import annotations

import itertools
import json
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import jwt
import pytest
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, Page, expect

from example_app import store
from example_app.__main__ import parse_arguments, stop_device
from example_app.device import EVENTS, SERVER_MESSAGES, Device, Thermometer
from example_app.server import ChatServer
from flask_webpubsub.testing import MqttTestClient, WebPubSubTestClient
from tests import secrets_guard
from tests.docs_examples import DOCS, commands, examples
from tests.support import free_ports, wait_for

from . import test_browser
from .fakes import FakeService
from .test_browser import TIMEOUT_MS, VIEWPORT, say, screenshot, start_chat
from .test_main import example_environ, read_until, stop_example

# The browser tests' fixtures: one Chromium per module, a context per person.
browser = test_browser.browser
contexts = test_browser.contexts

READING = r"\d+\.\d °C"
DOCUMENTED = [words for example in examples(DOCS / "example-app.md")
              if example.language == "console"
              for words in commands(example) if "--device" in words]


# --- what the device says ----------------------------------------------------------------------


def chat_message(user: str, text: str) -> dict[str, object]:
    """A message as the room's group (and so the device's topic) receives it."""
    return {"kind": "message", "id": 7, "room": "general", "user": user, "text": text,
            "time": "2025-01-01T12:00:00Z"}


def test_readings_drift_a_little_and_stay_plausible() -> None:
    thermometer = Thermometer(rng=random.Random(1))
    values = []
    for _ in range(500):
        text = thermometer.read()
        assert re.fullmatch(READING, text), text
        values.append(float(text.split()[0]))
    assert all(15.0 <= value <= 30.0 for value in values)
    assert all(abs(a - b) <= 0.31 for a, b in itertools.pairwise(values))
    assert len(set(values)) > 5
    assert thermometer.readings == 500


def test_the_device_answers_commands_addressed_to_it() -> None:
    thermometer = Thermometer(celsius=20.0, rng=random.Random(2))
    status = thermometer.answer(chat_message("alice", "@thermo status"))
    assert status is not None
    assert re.fullmatch(rf"@alice {READING} now \(1 readings so far\)\.", status), status
    assert thermometer.answer(chat_message("bob", "@Thermo   STATUS please")) is not None
    assert thermometer.answer(chat_message("bob", "@thermo")) == (
        "@bob I am a thermometer: say “@thermo status”."
    )
    assert thermometer.answer(chat_message("bob", "@thermo dance")) == (
        "@bob I don't know “dance”; say “@thermo status”."
    )


@pytest.mark.parametrize("message", [
    chat_message("alice", "hello @thermo status"),  # not at the start
    chat_message("alice", "@thermometer status"),  # another name
    chat_message("alice", ""),
    chat_message("thermo", "@thermo status"),  # its own message, back from the room
    {"kind": "presence", "room": "general", "user": "alice", "action": "arrived"},
    {"kind": "message", "user": "alice"},  # no text
])
def test_the_device_keeps_quiet_otherwise(message: dict[str, object]) -> None:
    thermometer = Thermometer()
    assert thermometer.answer(message) is None
    assert thermometer.readings == 0


def test_the_device_routes_what_it_receives_by_topic(caplog: pytest.LogCaptureFixture) -> None:
    device = Device("http://127.0.0.1:9", thermometer=Thermometer(rng=random.Random(3)))
    status = json.dumps(chat_message("alice", "@thermo status")).encode()
    snapshot = {"kind": "room", "room": "general", "members": ["alice", "thermo"],
                "history": [], "sent": 0}
    with caplog.at_level("INFO", "example_app.device"):
        # The room's group is a topic of the room's name: a command there is answered.
        answer = device.handle("general", status)
        assert answer is not None
        assert answer.startswith("@alice ")
        # The service's own topics: what the chat sends the device alone, and its replies.
        assert device.handle(SERVER_MESSAGES, json.dumps(snapshot).encode()) is None
        assert device.handle(f"{EVENTS}message/succeeded", b'{"kind":"sent","id":1}') is None
        assert device.handle(f"{EVENTS}message/succeeded",
                             b'{"kind":"error","error":"Say something first."}') is None
        assert device.handle(f"{EVENTS}message/failed", b'{"code":"x"}') is None
        assert device.handle("general", b"\xff not json") is None
        assert device.handle("general", b"[1, 2]") is None
    assert [record.getMessage() for record in caplog.records] == [
        "Device thermo answers alice",
        "Device thermo is in #general with alice, thermo",
        "The chat did not take the device's message: Say something first.",
        "The chat did not take the device's message: {'code': 'x'}",
        "Device thermo got something that is not JSON on general",
    ]
    assert device.thermometer.readings == 1


def test_the_documented_command_is_one_the_example_accepts() -> None:
    assert DOCUMENTED == [["./run-example.sh", "--device"]]
    assert parse_arguments(DOCUMENTED[0][1:]).device
    assert not parse_arguments([]).device


# --- the chat's handlers with an MQTT client ---------------------------------------------------


def device_client(app: Flask, webpubsub_client: WebPubSubTestClient, name: str,
                  version: int = 5) -> MqttTestClient:
    """An MQTT client with the token the chat's negotiate gives a device named ``name``."""
    browser = app.test_client()
    browser.post("/signin", data={"name": name})
    access = browser.get("/negotiate?client=mqtt").json
    assert access is not None
    claims = jwt.decode(access["token"], options={"verify_signature": False})
    return webpubsub_client.mqtt_client(protocol_version=version, user_id=claims["sub"],
                                        roles=claims.get("role", []))


def test_a_device_negotiates_an_mqtt_token_for_its_name(app: Flask) -> None:
    browser = app.test_client()
    browser.post("/signin", data={"name": "thermo"})
    device = browser.get("/negotiate?client=mqtt").json
    page = browser.get("/negotiate").json
    assert device is not None
    assert page is not None
    assert "/clients/mqtt/hubs/chat?access_token=" in device["url"]
    assert "/client/hubs/chat?access_token=" in page["url"]
    claims = jwt.decode(device["token"], options={"verify_signature": False})
    assert claims["sub"] == "thermo"
    assert claims["aud"].endswith("/clients/mqtt/hubs/chat")
    assert "role" not in claims  # no joining or publishing to groups by itself
    assert app.test_client().get("/negotiate?client=mqtt").status_code == 401


@pytest.mark.parametrize("version", [4, 5])
def test_a_device_is_in_its_room_and_its_messages_reach_it(
    app: Flask, webpubsub_client: WebPubSubTestClient, service: FakeService, version: int
) -> None:
    device = device_client(app, webpubsub_client, "thermo", version)
    connected = device.connect(query={"room": ["random"]})
    assert connected.connack_code == 0
    assert device.groups == ["random"]
    assert device.user_id == "thermo"
    service.groups["random"].add(device.client_id)
    [snapshot] = service.received[device.client_id]
    assert (snapshot["kind"], snapshot["members"]) == ("room", ["thermo"])
    # MQTT 5 sends its text as text/plain; MQTT 3.1.1 has no content type: binary, UTF-8.
    reply = (device.publish(f"{EVENTS}message", "21.5 °C", qos=1, content_type="text/plain")
             if version == 5 else device.publish(f"{EVENTS}message", "21.5 °C".encode(), qos=1))
    assert reply.topic == f"{EVENTS}message/succeeded"
    assert json.loads(reply.payload)["kind"] == "sent"
    message = service.received[device.client_id][-1]
    assert (message["kind"], message["user"], message["text"]) == ("message", "thermo", "21.5 °C")
    assert device.state["sent"] == 1
    refused = device.publish(f"{EVENTS}message", b"\xff\xfe", qos=1)
    assert json.loads(refused.payload) == {"kind": "error", "error": "A message is UTF-8 text."}
    with app.app_context():
        assert store.members("random") == ["thermo"]
    # A clean DISCONNECT ends its session: disconnected, and it has left the room.
    assert device.disconnect() is not None
    with app.app_context():
        assert store.members("random") == []


@pytest.mark.parametrize(("version", "code"), [(4, 5), (5, 135)])
def test_a_device_with_a_banned_name_is_refused_with_its_connack_code(
    app: Flask, webpubsub_client: WebPubSubTestClient, version: int, code: int
) -> None:
    device = device_client(app, webpubsub_client, "admin", version)
    result = device.connect()
    assert result.status == 403
    assert result.connack_code == code
    assert result.reason == "The name 'admin' is not allowed here."
    assert device.session is None


# --- in Chromium, on the emulator --------------------------------------------------------------


def sign_in(browser: Browser, contexts: list[BrowserContext], url: str, name: str) -> Page:
    context = browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(TIMEOUT_MS)
    contexts.append(context)
    page = context.new_page()
    page.goto(url)
    page.fill("#name", name)
    page.click("#signin button")
    expect(page.locator("#status")).to_have_text("Connected")
    return page


def whos_and_texts(page: Page) -> list[tuple[str, str]]:
    """The messages the page shows: who said what, oldest first."""
    return [(message.locator(".who").inner_text(), message.locator(".text").inner_text())
            for message in page.locator("#log .message").all()]


def start_example(*arguments: str, **variables: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "example_app", *arguments],
        env=example_environ(**variables),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.mark.browser
def test_one_command_runs_the_chat_with_a_device_a_person_talks_to(
    browser: Browser, contexts: list[BrowserContext]
) -> None:
    """``./run-example.sh --device`` is ``python -m example_app --device`` in its venv (whose
    database, in the instance folder, may hold earlier runs' messages)."""
    started = datetime.now(timezone.utc).replace(microsecond=0)
    port, emulator_port = free_ports(2)
    process = start_example(DOCUMENTED[0][1], EXAMPLE_PORT=str(port),
                            EMULATOR_PORT=str(emulator_port))
    try:
        output = read_until(process, "Ctrl+C stops.")
        assert ("  MQTT device: thermo posts readings in #general every 60 s; "
                "say “@thermo status” there\n") in output
        dora = sign_in(browser, contexts, f"http://127.0.0.1:{port}", "dora")
        expect(dora.locator("#members li")).to_have_text(["dora", "thermo"])
        # The reading it posted on connecting is the room's latest message.
        thermo = dora.locator("#log .message").filter(
            has=dora.locator(".who", has_text=re.compile("^thermo$"))
        )
        expect(thermo.last.locator(".text")).to_have_text(re.compile(rf"^{READING}$"))
        posted = thermo.last.locator("time").get_attribute("datetime")
        assert posted is not None
        assert datetime.fromisoformat(posted.replace("Z", "+00:00")) >= started
        # A command from the page reaches the device, and its answer comes back to the room.
        say(dora, "@thermo status")
        expect(thermo.last.locator(".text")).to_have_text(
            re.compile(rf"^@dora {READING} now \(2 readings so far\)\.$")
        )
        assert [who for who, _ in whos_and_texts(dora)[-3:]] == ["thermo", "dora", "thermo"]
        say(dora, "@thermo dance")
        expect(thermo.last.locator(".text")).to_have_text(
            "@dora I don't know “dance”; say “@thermo status”."
        )
        output += stop_example(process)
    finally:
        if process.poll() is None:
            stop_example(process)
    assert "Device thermo connected over MQTT 5" in output
    assert "MQTT 5.0 client" in output
    assert "connects as 'thermo' to #general" in output
    assert output.count("Device thermo answers dora") == 2
    for trouble in ("Traceback", "WARNING", "ERROR"):
        assert trouble not in output
    assert secrets_guard.find_leaks(output, []) == []


@pytest.fixture
def chat(tmp_path: Path) -> Iterator[ChatServer]:
    server = start_chat(tmp_path / "chat.sqlite3")
    yield server
    server.stop()


@pytest.mark.browser
def test_the_room_sees_the_device_come_post_answer_and_go(
    browser: Browser, contexts: list[BrowserContext], chat: ChatServer
) -> None:
    alice = sign_in(browser, contexts, chat.url, "alice")
    device = Device(chat.url, interval=3.0).start()
    try:
        expect(alice.locator("#log .event").last).to_have_text("thermo arrived.")
        expect(alice.locator("#members li")).to_have_text(["alice", "thermo"])
        # Its readings arrive live: one on connecting, then one every interval.
        messages = alice.locator("#log .message")
        expect(messages).to_have_count(2, timeout=3 * TIMEOUT_MS)
        say(alice, "@thermo status")
        answer = messages.filter(has_text="@alice")
        expect(answer.locator(".text")).to_have_text(
            re.compile(rf"^@alice {READING} now \(\d+ readings so far\)\.$")
        )
        shown = whos_and_texts(alice)
        assert shown[:3] == [("thermo", shown[0][1]), ("thermo", shown[1][1]),
                             ("alice", "@thermo status")]
        assert all(re.fullmatch(READING, text) for _, text in shown[:2]), shown
        screenshot(alice, "device")
        assert device.online.is_set()
        assert device.refused is None
        # Its network fails: the session ends, and it comes back on a new one (a new token).
        dropped = device.connection_id
        assert dropped is not None
        assert chat.emulator is not None
        assert chat.emulator.drop(dropped)
        expect(alice.locator("#log .event").last).to_have_text("thermo arrived.")
        expect(alice.locator("#log .event").nth(-2)).to_have_text("thermo left.")
        wait_for(lambda: device.connection_id not in (None, dropped), what="a new connection")
        expect(messages.last.locator(".who")).to_have_text("thermo")
    finally:
        stop_device(device, chat)  # what Ctrl+C does
    expect(alice.locator("#log .event").last).to_have_text("thermo left.")
    expect(alice.locator("#members li")).to_have_text(["alice"])
    count = messages.count()
    time.sleep(device.interval + 0.5)
    assert messages.count() == count  # it stopped posting


def test_a_device_the_chat_refuses_says_why_and_stops(
    chat: ChatServer, caplog: pytest.LogCaptureFixture
) -> None:
    device = Device(chat.url, thermometer=Thermometer(name="admin")).start()
    try:
        wait_for(lambda: device.refused, what="the refusal")
        assert device.refused == "Not authorized (135): The name 'admin' is not allowed here."
        time.sleep(2.5)  # paho tries again after 1 s unless told to stop
        assert not device.online.is_set()
        refusals = [r for r in caplog.records
                    if r.getMessage() == "Refused a connection for 'admin': The name 'admin' "
                    "is not allowed here."]
        assert len(refusals) == 1
    finally:
        device.stop()
