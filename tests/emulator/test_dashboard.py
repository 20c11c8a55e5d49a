"""The emulator's dashboard as developers use it: Debian's Chromium, driven by Playwright, against
a real emulator forwarding hub ``chat`` to the real extension (``lobby`` has no upstream), with
the official Python client and raw WebSocket clients connected.

The screenshots of a populated dashboard (1280 px and 390 px wide) go to
test-artifacts/emulator/; docs/dashboard-wide.png and docs/dashboard-phone.png are copies.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from flask_webpubsub.core.signature import sign
from flask_webpubsub.emulator import EmulatorThread, EventHandler, IdentityProvider
from flask_webpubsub.emulator.redact import mask_body, mask_headers, masked_url
from tests import secrets_guard
from tests.support import free_port, wait_for

from .conftest import (
    ALL_ROLES,
    JSON,
    KEY,
    RELIABLE,
    AppServer,
    Recorded,
    Stack,
    bare_url,
    create_chat_app,
    read_until_closed,
    subprotocols,
)
from .test_official_client import (  # the official client, and its socket-leak workaround
    _close_websocket_client_sockets,  # noqa: F401
    sdk_client,
)

pytestmark = pytest.mark.browser

from playwright.sync_api import (  # noqa: E402
    Browser,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update"]
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts" / "emulator"
WIDE: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}
#: The upstream URL's function key, which must never show.
CODE = "c0de-Secret-Function-Key-4711"
#: A password in a message body, which the trace masks.
PASSWORD = "hunter2-Secret-Password-0815"
PROTOBUF = "protobuf.webpubsub.azure.v1"


@contextmanager
def running_stack() -> Iterator[Stack]:
    """Hub ``chat`` forwards to the app (with a function key in the URL); no other hub has an
    upstream. The app's server does not log its requests: their lines would show the key."""
    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.WARNING)
    recorded = Recorded()
    port = free_port()
    app = create_chat_app(f"Endpoint=http://127.0.0.1:{port};AccessKey={KEY};Version=1.0;",
                          recorded)
    with ExitStack() as running:
        running.callback(werkzeug.setLevel, level)
        server = AppServer(app)
        running.callback(server.stop)
        handler = EventHandler.create(f"{server.url}/eventhandler?code={CODE}")
        emulator = EmulatorThread(port=port, access_key=KEY, event_handlers={"chat": [handler]},
                                  recovery_timeout=5.0, upstream_retry_delays=())
        running.enter_context(emulator)
        yield Stack(emulator, app, server, recorded)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as stack:
        yield stack


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed: ./run-tests.sh installs it")
    expect.set_options(timeout=10_000)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    context = browser.new_context(viewport=WIDE, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(stack.emulator.url + "/")
    yield page
    context.close()


class Clients:
    """Raw WebSocket clients of the stack, closed at the end."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.urls: list[str] = []
        self._open = ExitStack()

    def __enter__(self) -> Clients:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._open.close()

    def json(self, user: str, groups: list[str] | None = None, *, hub: str = "chat",
             protocol: str | None = JSON) -> tuple[ClientConnection, str]:
        """A client of ``protocol`` (None: a simple client), and its connection id."""
        url = self.stack.client_url(user, ALL_ROLES, groups, hub=hub)
        self.urls.append(url)
        ws = self._open.enter_context(connect(url, subprotocols=subprotocols(protocol),
                                              close_timeout=0.5))
        if protocol is None:  # a simple client hears no "connected": find it on the roster
            connection_id = wait_for(lambda: _connection_of(self.stack, user, hub))
        elif protocol == PROTOBUF:
            ws.recv(timeout=5)
            connection_id = wait_for(lambda: _connection_of(self.stack, user, hub))
        else:
            connection_id = json.loads(ws.recv(timeout=5))["connectionId"]
        return ws, connection_id


def _connection_of(stack: Stack, user: str, hub: str) -> str | None:
    roster = stack.emulator.emulator.hubs.get(hub)
    users = roster.users.get(user, {}) if roster is not None else {}
    return next(iter(users), None)


def _row(page: Page, connection_id: str) -> Any:
    return page.locator(f'#connections tr[data-connection="{connection_id}"]')


def _data(ws: ClientConnection) -> Any:
    return json.loads(ws.recv(timeout=5))["data"]


def _http(stack: Stack, method: str, path: str, body: Any = None, *,
          headers: dict[str, str] | None = None, raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(
        stack.emulator.url + path, data=data, method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        text = error.read()
        error.close()
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, text.decode()


def _silent(ws: ClientConnection, wait: float = 0.3) -> bool:
    try:
        ws.recv(timeout=wait)
    except TimeoutError:
        return True
    return False


# -- what it shows ---------------------------------------------------------------------------


def test_hubs_connections_and_groups_appear_and_disappear(stack: Stack, page: Page) -> None:
    with Clients(stack) as clients, sdk_client(stack, "reliable", "alice") as alice:
        alice.client.join_group("room")
        bob, bob_id = clients.json("bob", ["room"])
        _, simple_id = clients.json("simon", hub="lobby", protocol=None)
        _, proto_id = clients.json("pat", hub="lobby", protocol=PROTOBUF)

        row = _row(page, alice.connection_id)
        expect(row).to_contain_text("alice")
        expect(row).to_contain_text("reliable json")
        expect(row).to_contain_text("room")
        expect(row).to_contain_text("webpubsub.joinLeaveGroup")
        expect(row).to_contain_text("connected")
        expect(row.locator("time")).to_have_count(1)
        expect(_row(page, bob_id)).to_contain_text("json")
        expect(_row(page, simple_id)).to_contain_text("simple WebSocket")
        expect(_row(page, proto_id)).to_contain_text("protobuf")
        expect(_row(page, proto_id)).to_contain_text("lobby")

        chat = page.locator('#hubs [data-hub="chat"]')
        expect(chat).to_contain_text(f"{stack.server.url}/eventhandler?code=***")
        expect(chat).to_contain_text("user events: *")
        expect(chat.locator(".no-upstream")).to_have_count(0)
        expect(page.locator('#hubs [data-hub="lobby"] .no-upstream')).to_have_text(
            "No upstream: events of its clients are not forwarded.")

        room = page.locator('#groups [data-group="room"]')
        expect(room).to_contain_text("2 member(s)")
        room.locator("summary").click()
        expect(room.locator(".members")).to_contain_text(bob_id)
        expect(room.locator(".members")).to_contain_text("user alice")

        bob.close()
        expect(_row(page, bob_id)).to_have_count(0)
        expect(room).to_contain_text("1 member(s)")
        expect(room.locator(".members")).not_to_contain_text(bob_id)  # still open
    expect(_row(page, alice.connection_id)).to_have_count(0)


def test_upstream_calls_open_to_their_request_and_reply_with_secrets_masked(
    stack: Stack, page: Page
) -> None:
    with Clients(stack) as clients:
        ws, connection_id = clients.json("carol")
        ws.send(json.dumps({"type": "event", "event": "echo", "dataType": "json",
                            "data": {"password": PASSWORD, "note": "visible"}, "ackId": 1}))
        answers = [ws.recv(timeout=5), ws.recv(timeout=5)]  # the ack and the echo
        assert any(PASSWORD in str(answer) for answer in answers)

        entry = page.locator("#trace .cat-upstream", has_text="connect -> 200").filter(
            has=page.locator(f'code:text-is("{connection_id}")'))
        entry.locator("summary").click()
        request = entry.locator(".call")
        expect(request).to_contain_text(f"POST {stack.server.url}/eventhandler?code=***")
        expect(request.locator("dt", has_text="ce-signature")).to_have_count(1)
        expect(request.locator('dt:text-is("ce-signature") + dd')).to_have_text("***")
        expect(request.locator('dt:text-is("ce-connectionId") + dd')).to_have_text(connection_id)
        expect(request).to_contain_text('"claims"')
        expect(request).to_contain_text('"sub": [\n    "carol"')
        expect(request.locator(".line").nth(1)).to_have_text(re.compile(r"^200 in [\d.]+ ms$"))

        echo = page.locator("#trace .cat-upstream", has_text="echo -> 200")
        echo.locator("summary").click()
        expect(echo.locator("pre.body").first).to_contain_text('"password": "***"')
        expect(echo.locator("pre.body").first).to_contain_text('"note": "visible"')
        expect(echo.locator("pre.body").nth(1)).to_contain_text('"password": "***"')
        expect(page.locator("#trace .cat-upstream", has_text="abuse-protection check -> 200")
               ).to_have_count(1)

        html = page.content()
        _, state = _http(stack, "GET", "/_emulator/state")
        shown = [html, json.dumps(state)]
        tokens = [url.partition("access_token=")[2] for url in clients.urls]
        for text in shown:
            for secret in [KEY, CODE, PASSWORD, sign(connection_id, [KEY]), *tokens]:
                assert secret not in text
            assert secrets_guard.find_leaks(text, [KEY]) == []
        assert '["ce-signature","***"]' in shown[1].replace(" ", "")


# -- what it does ------------------------------------------------------------------------------


def test_send_to_a_connection_a_user_a_group_and_the_hub(stack: Stack, page: Page) -> None:
    with Clients(stack) as clients:
        dora, dora_id = clients.json("dora", ["team"])
        erin, _ = clients.json("erin", ["team"])
        expect(_row(page, dora_id)).to_have_count(1)

        def send(to: str, name: str | None, data: str, data_type: str = "text",
                 outcome: str = "ok") -> None:
            page.select_option("#send-hub", "chat")
            page.select_option("#send-to", to)
            if name is not None:
                page.fill("#send-name", name)
            page.check(f"#send-type-{data_type}")
            page.fill("#send-data", data)
            page.click("#send button[type=submit]")
            expect(page.locator("#send-result")).to_have_class(re.compile(rf"\b{outcome}\b"))

        send("group", "team", "to the team")
        assert (_data(dora), _data(erin)) == ("to the team", "to the team")
        send("user", "erin", "to erin")
        assert _data(erin) == "to erin"
        assert _silent(dora)
        send("hub", None, '{"all": [1, 2]}', "json")
        assert (_data(dora), _data(erin)) == ({"all": [1, 2]}, {"all": [1, 2]})

        page.check("#send-type-text")
        page.fill("#send-data", "")
        _row(page, dora_id).get_by_role("button", name=re.compile("^Send a message")).click()
        expect(page.locator("#send-data")).to_be_focused()
        expect(page.locator("#send-name")).to_have_value(dora_id)
        page.keyboard.type("typed on the keyboard")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        assert _data(dora) == "typed on the keyboard"
        assert _silent(erin)
        expect(page.locator("#trace .cat-rest", has_text=f"send to connection {dora_id}")
               ).to_have_count(1)

        send("group", "team", "{not json", "json", outcome="error")
        expect(page.locator("#send-result")).to_have_text("Refused: data is not valid JSON")
        assert _silent(dora)


def test_close_and_drop_from_the_page(stack: Stack, page: Page) -> None:
    with Clients(stack) as clients:
        frank, frank_id = clients.json("frank")
        gina, gina_id = clients.json("gina", protocol=RELIABLE)
        _, hank_id = clients.json("hank")

        def act(connection_id: str, action: str, code: str = "", reason: str = "") -> None:
            _row(page, connection_id).get_by_role("button", name=re.compile("^Close or drop")
                                                  ).click()
            expect(page.locator("#act-action")).to_be_focused()
            expect(page.locator("#act-connection")).to_have_value(connection_id)
            page.select_option("#act-action", action)
            if code:
                page.fill("#act-code", code)
                page.fill("#act-reason", reason)
            page.click("#act button[type=submit]")
            expect(page.locator("#act-result")).to_have_class(re.compile(r"\bok\b"))

        act(frank_id, "close", "4001", "maintenance")
        code, _ = read_until_closed(lambda: frank.recv(timeout=5))
        assert code == 4001
        assert frank.close_reason == "maintenance"
        expect(_row(page, frank_id)).to_have_count(0)
        wait_for(lambda: stack.recorded.of("disconnected", frank_id) == ["maintenance"])

        act(gina_id, "drop")
        with pytest.raises(ConnectionClosed) as dropped:
            gina.recv(timeout=5)
        assert dropped.value.rcvd is None  # no close frame
        expect(_row(page, gina_id)).to_contain_text("recovering (waiting for its client)")

        act(hank_id, "dropHalfOpen")
        expect(_row(page, hank_id)).to_have_count(0)
        assert "half-open" in wait_for(lambda: stack.recorded.of("disconnected", hank_id))[0]

        page.fill("#act-connection", "no-such-connection")
        page.click("#act button[type=submit]")
        expect(page.locator("#act-result")).to_contain_text("Refused: No such connection")


def test_filters_filter(stack: Stack, page: Page) -> None:
    with Clients(stack) as clients:
        _, ivan_id = clients.json("ivan", ["ivans-group"])
        _, jane_id = clients.json("jane", hub="lobby")
        expect(_row(page, jane_id)).to_have_count(1)
        expect(page.locator("#trace .cat-upstream").first).to_be_visible()

        page.select_option("#filter-hub", "lobby")
        expect(_row(page, ivan_id)).to_have_count(0)
        expect(_row(page, jane_id)).to_have_count(1)
        expect(page.locator('#hubs [data-hub="chat"]')).to_have_count(0)
        expect(page.locator("#trace .cat-upstream:visible")).to_have_count(0)  # lobby has none
        page.select_option("#filter-hub", "")

        page.fill("#filter-text", "ivans-gr")
        expect(_row(page, ivan_id)).to_have_count(1)
        expect(_row(page, jane_id)).to_have_count(0)
        expect(page.locator('#groups [data-group="ivans-group"]')).to_have_count(1)
        expect(page.locator("#connection-count")).to_have_text(re.compile(r"\(1 of \d+\)"))
        page.fill("#filter-text", "")

        page.get_by_label("upstream calls").uncheck()
        expect(page.locator("#trace .cat-upstream:visible")).to_have_count(0)
        expect(page.locator("#trace .cat-connection:visible").first).to_be_visible()
        page.get_by_label("upstream calls").check()
        expect(page.locator("#trace .cat-upstream:visible").first).to_be_visible()


def test_it_fits_a_wide_window_and_a_phone(browser: Browser) -> None:
    """Populated, with an upstream call open: no horizontal scrolling at 1280 and 390 px. The
    screenshots are the docs' (an emulator of its own, for a short trace)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with running_stack() as stack, Clients(stack) as clients, \
            sdk_client(stack, "reliable", "alice") as alice:
        alice.client.join_group("room")
        bob, _ = clients.json("bob", ["room"])
        clients.json("a-user-with-a-rather-long-name-that-must-wrap", ["room", "announcements"])
        clients.json("simon", hub="lobby", protocol=None)
        clients.json("pat", hub="lobby", protocol=PROTOBUF)
        alice.client.send_to_group("room", {"text": "hello, room"}, _json_type())
        bob.send(json.dumps({"type": "event", "event": "echo", "dataType": "json",
                             "data": {"text": "ping", "password": PASSWORD}}))
        for name, viewport in (("wide", WIDE), ("phone", PHONE)):
            context = browser.new_context(viewport=viewport, locale="en-GB", timezone_id="UTC")
            page = context.new_page()
            try:
                page.goto(stack.emulator.url + "/")
                expect(_row(page, alice.connection_id)).to_have_count(1)
                call = page.locator("#trace .cat-upstream", has_text="echo -> 200")
                call.locator("summary").click()
                expect(call.locator(".call")).to_be_visible()
                overflow = page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                assert overflow == 0, f"{name}: {overflow} px wider than the window"
                page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)
            finally:
                context.close()


def _json_type() -> Any:
    from azure.messaging.webpubsubclient.models import WebPubSubDataType

    return WebPubSubDataType.JSON


# -- the control API refuses bad input and foreign pages -------------------------------------------


BAD_SENDS = [
    ({"to": "hub", "data": "x"}, "hub must be a hub name"),
    ({"hub": "not a hub", "data": "x"}, "hub must be a hub name"),
    ({"hub": "chat", "to": "everyone", "data": "x"}, "to must be one of"),
    ({"hub": "chat", "to": "group", "data": "x"}, "name must be the group's name"),
    ({"hub": "chat", "to": "user", "name": "u" * 1025, "data": "x"}, "1 to 1024 characters"),
    ({"hub": "chat", "name": "kira", "data": "x"}, "takes no name"),
    ({"hub": "chat", "dataType": "xml", "data": "<x/>"}, "dataType must be text or json"),
    ({"hub": "chat", "data": {"a": 1}}, "data must be a string"),
    ({"hub": "chat", "dataType": "json", "data": "{"}, "data is not valid JSON"),
    ({"hub": "chat", "data": "x" * (1024 * 1024 + 1)}, "larger than"),
    ([1, 2], "the body must be a JSON object"),
]


def test_bad_input_gets_a_clear_400_and_changes_nothing(stack: Stack) -> None:
    with Clients(stack) as clients:
        ws, connection_id = clients.json("kira", ["k"])
        for body, message in BAD_SENDS:
            status, answer = _http(stack, "POST", "/_emulator/messages", body)
            assert (status, message in answer["message"]) == (400, True), (body, answer)
        assert _http(stack, "POST", "/_emulator/messages", raw=b"{nope")[0] == 400
        for body, message in [({"code": 999}, "close code"), ({"code": "1000"}, "close code"),
                              ({"reason": "r" * 121}, "at most 120 bytes"),
                              ({"hub": 5}, "hub must be a string")]:
            status, answer = _http(stack, "POST", f"/_emulator/connections/{connection_id}/:close",
                                   body)
            assert (status, message in answer["message"]) == (400, True), (body, answer)
        assert _silent(ws)
        assert _connection_of(stack, "kira", "chat") == connection_id
        status, _ = _http(stack, "POST", "/_emulator/messages",
                          {"hub": "chat", "to": "connection", "name": connection_id, "data": "ok"})
        assert status == 202
        assert _data(ws) == "ok"


def test_foreign_hosts_and_origins_are_refused(stack: Stack) -> None:
    with Clients(stack) as clients:
        ws, connection_id = clients.json("lena")
        send = {"hub": "chat", "data": "from elsewhere"}
        port = stack.emulator.emulator.port
        assert _http(stack, "GET", "/", headers={"Host": f"evil.example:{port}"})[0] == 403
        assert _http(stack, "GET", "/_emulator/state",
                     headers={"Host": f"evil.example:{port}"})[0] == 403
        assert _http(stack, "POST", "/_emulator/messages", send,
                     headers={"Host": f"evil.example:{port}"})[0] == 403
        assert _http(stack, "POST", "/_emulator/messages", send,
                     headers={"Origin": "http://evil.example"}) == (
            403, {"message": "Forbidden: a foreign Origin."})
        assert _http(stack, "POST", f"/_emulator/connections/{connection_id}/:drop", {},
                     headers={"Origin": "http://evil.example"})[0] == 403
        assert _http(stack, "POST", "/_emulator/messages", raw=b"data=x",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})[0] == 415
        assert _silent(ws)
        assert _connection_of(stack, "lena", "chat") == connection_id
        own = {"Origin": stack.emulator.url, "Host": f"localhost:{port}"}
        assert _http(stack, "POST", "/_emulator/messages", send, headers=own)[0] == 202
        assert _data(ws) == "from elsewhere"


def test_the_page_sends_with_entra_id_too() -> None:
    """With local auth disabled, a message from the page goes through the REST API with the
    app registration's Entra ID token."""
    with EmulatorThread(identity=IdentityProvider(), access_key=KEY) as emulator, connect(
        bare_url(emulator, "max"), subprotocols=subprotocols(JSON)
    ) as ws:
        json.loads(ws.recv(timeout=5))
        request = urllib.request.Request(
            emulator.url + "/_emulator/messages", method="POST",
            data=json.dumps({"hub": "chat", "to": "user", "name": "max",
                             "data": "via Entra"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
        assert _data(ws) == "via Entra"


# -- what is masked --------------------------------------------------------------------------------


def test_what_the_trace_masks() -> None:
    assert masked_url("https://user:pw@fn.example/api/{event}?code=abc&clientId=x") == (
        "https://fn.example/api/{event}?code=***&clientId=***")
    assert masked_url("http://[::1]:8080/e") == "http://[::1]:8080/e"
    headers = [("Authorization", "Bearer eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl"),
               ("ce-signature", "sha256=0a1b,sha256=2c3d"), ("Set-Cookie", "session=abc"),
               ("ce-userId", "alice"), ("X-Note", "token eyJhbGciOi.eyJzdWIiOi.c2ln")]
    assert mask_headers(headers, 100) == [
        ("Authorization", "Bearer ***"), ("ce-signature", "***"), ("Set-Cookie", "***"),
        ("ce-userId", "alice"), ("X-Note", "token ***"),
    ]
    mqtt = json.dumps({"mqtt": {"username": "u", "password": "pw", "userProperties": []},
                       "query": {"access_token": ["t"], "x": ["y"]}, "claims": {"sub": ["u"]}})
    shown, cut = mask_body(mqtt.encode(), "application/json", 4096)
    assert json.loads(shown) == {"mqtt": {"username": "u", "password": "***",
                                          "userProperties": []},
                                 "query": {"access_token": "***", "x": ["y"]},
                                 "claims": {"sub": ["u"]}}
    assert not cut
    assert mask_body(b"x" * 5000, "text/plain", 4096) == ("x" * 4096, True)
    assert mask_body(b"\x00\x01", "application/octet-stream", 4096) == (
        "<2 bytes of application/octet-stream>", False)
    assert mask_body(b'{"token": "abc", "x": "password=pw&y=1', "application/json", 4096) == (
        '{"token": "***", "x": "password=***&y=1', False)


def test_an_mqtt_session_shows_its_topics_its_state_and_no_password(browser: Browser) -> None:
    from .mqtt_support import mqtt_stack

    password = b"mqtt-Secret-Password-2718"
    with mqtt_stack() as stack:
        client = stack.client("sensor1", session_expiry=60, username="sensor",
                              password=password)
        assert client.connect()[0] == 0
        client.subscribe("sensors/temperature")
        context = browser.new_context(viewport=WIDE)
        try:
            page = context.new_page()
            page.goto(stack.emulator.url + "/")
            row = page.locator("#connections tr", has_text="mqtt")
            expect(row).to_contain_text("subscriptions: sensors/temperature")
            expect(row).to_contain_text("online")
            connect_call = page.locator("#trace .cat-upstream", has_text="connect -> 200")
            connect_call.locator("summary").click()
            expect(connect_call.locator("pre.body").first).to_contain_text('"password": "***"')
            assert password.decode() not in page.content()

            row.get_by_role("button", name=re.compile("^Close or drop")).click()
            page.select_option("#act-action", "drop")
            page.click("#act button[type=submit]")
            expect(row).to_contain_text("offline (waiting for its client)")
        finally:
            context.close()
