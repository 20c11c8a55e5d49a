"""The example chat as people use it: Debian's Chromium, driven by Playwright, against the app
on a real server and the built-in emulator, the page on the vendored @azure/web-pubsub-client.
Screenshots go to test-artifacts/example_app/ (chat.png is the README's).

Each test is short and has people of its own: the official client pings every 20 s, and a test
that idles past that would also be testing the emulator's keep-alive.
"""

from __future__ import annotations

import base64
import re
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from example_app import store
from example_app.server import ChatServer
from tests import secrets_guard
from tests.support import REPORTS, free_ports

pytestmark = pytest.mark.browser

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import (  # noqa: E402
    Browser,
    BrowserContext,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts" / "example_app"
TIMEOUT_MS = 10_000
VIEWPORT: ViewportSize = {"width": 820, "height": 520}
PHONE: ViewportSize = {"width": 390, "height": 844}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
CLOCK = re.compile(r"^\d\d:\d\d$")


def start_chat(database: Path, **ports: int) -> ChatServer:
    chat = ChatServer(
        port=ports.get("port", 0),
        emulator_port=ports.get("emulator_port", 0),
        config={"SECRET_KEY": "browser-test", "CHAT_DATABASE": str(database)},
    ).start()
    assert chat.emulator is not None
    secrets_guard.KNOWN_KEYS.update(chat.emulator.emulator.access_keys)
    return chat


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatServer]:
    chat = start_chat(tmp_path_factory.mktemp("chat") / "chat.sqlite3")
    yield chat
    chat.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed: ./run-tests.sh installs it")
    expect.set_options(timeout=TIMEOUT_MS)  # assertions wait as long as actions
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def contexts(browser: Browser, request: pytest.FixtureRequest) -> Iterator[list[BrowserContext]]:
    """Each context is a separate person: its own cookies and session storage. When the test
    fails, every open page is saved to test-artifacts/ to show what it showed."""
    opened: list[BrowserContext] = []
    yield opened
    call = request.node.stash.get(REPORTS, {}).get("call")
    for number, context in enumerate(opened):
        if call is not None and call.failed:
            for page in context.pages:
                screenshot(page, f"failed-{request.node.name}-{number}")
        context.close()


def person(browser: Browser, contexts: list[BrowserContext], server: ChatServer,
           name: str, viewport: ViewportSize = VIEWPORT) -> Page:
    """A new person (a browser context of their own) who signs in as ``name``. Dates and times
    are British, in UTC, so that what the page shows can be checked."""
    context = browser.new_context(viewport=viewport, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(TIMEOUT_MS)
    contexts.append(context)
    page = context.new_page()
    page.goto(server.url)
    page.fill("#name", name)
    page.click("#signin button")
    return page


def screenshot(page: Page, name: str) -> bytes:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def side_by_side(browser: Browser, name: str, *shots: bytes) -> None:
    """One picture of several screens (the README shows two people talking)."""
    images = "".join(
        f'<img src="data:image/png;base64,{base64.b64encode(shot).decode()}">' for shot in shots
    )
    width = VIEWPORT["width"] * len(shots) + 16 * (len(shots) + 1)
    page = browser.new_page(viewport={"width": width, "height": VIEWPORT["height"] + 32})
    try:
        page.set_content(
            f'<body style="margin:0;padding:16px;display:flex;gap:16px;background:#d0d5dd">'
            f"{images}</body>"
        )
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    finally:
        page.close()


def say(page: Page, text: str) -> None:
    page.fill("#text", text)
    page.click("#send")


def connection_id(page: Page) -> str:
    value = page.locator("#status").get_attribute("data-connection-id")
    assert value
    return value


def test_two_people_chat_in_a_room(
    browser: Browser, contexts: list[BrowserContext], server: ChatServer
) -> None:
    alice = person(browser, contexts, server, "alice")
    expect(alice.locator("#status")).to_have_text("Connected")
    expect(alice.locator("#room-title")).to_have_text("#general")

    # Alice moves to #random and leaves a message there before Bob comes.
    alice.click("button[data-room=random]")
    expect(alice.locator("#room-title")).to_have_text("#random")
    html = "<b>not bold</b> & <img src=x onerror=alert(1)>"
    say(alice, f"Anyone here? {html}")
    expect(alice.locator("#log .message .text").last).to_have_text(f"Anyone here? {html}")
    assert alice.locator("#log b, #log img").count() == 0
    expect(alice.locator("#sent")).to_have_text("1")

    # Bob signs in (in #general), then joins #random: he sees its history and who is there,
    # and Alice sees him arrive.
    bob = person(browser, contexts, server, "bob")
    expect(bob.locator("#status")).to_have_text("Connected")
    bob.click("button[data-room=random]")
    expect(bob.locator("#room-title")).to_have_text("#random")
    first = bob.locator("#log .message").first
    expect(first.locator(".who")).to_have_text("alice")
    expect(first.locator(".text")).to_have_text(f"Anyone here? {html}")
    expect(first.locator("time")).to_have_attribute("datetime", RFC3339)
    expect(first.locator("time")).to_have_text(CLOCK)  # today's: the time only
    expect(bob.locator("#members li")).to_have_text(["alice", "bob"])
    expect(alice.locator("#log .event").last).to_have_text("bob arrived.")
    expect(alice.locator("#members li")).to_have_text(["alice", "bob"])

    # Both ways.
    say(bob, "Hi Alice!")
    expect(alice.locator("#log .message").last.locator(".who")).to_have_text("bob")
    expect(alice.locator("#log .message").last.locator(".text")).to_have_text("Hi Alice!")
    say(alice, "Hi Bob, welcome to #random.")
    expect(bob.locator("#log .message").last.locator(".text")).to_have_text(
        "Hi Bob, welcome to #random."
    )
    expect(alice.locator("#sent")).to_have_text("2")
    expect(bob.locator("#sent")).to_have_text("1")
    side_by_side(browser, "chat", screenshot(alice, "chat-alice"), screenshot(bob, "chat-bob"))

    # Bob leaves the room and comes back, then closes the tab: Alice sees each move.
    bob.click("#leave")
    expect(bob.locator("#room-title")).to_have_text("Not in a room")
    expect(alice.locator("#log .event").last).to_have_text("bob left.")
    expect(alice.locator("#members li")).to_have_text(["alice"])
    bob.click("button[data-room=random]")
    expect(alice.locator("#log .event").last).to_have_text("bob arrived.")
    expect(bob.locator("#log .message .text").last).to_have_text("Hi Bob, welcome to #random.")
    bob.close()
    expect(alice.locator("#log .event").last).to_have_text("bob left.")
    expect(alice.locator("#members li")).to_have_text(["alice"])


def test_lost_connections_come_back_in_the_same_room(
    browser: Browser, contexts: list[BrowserContext], server: ChatServer
) -> None:
    dan = person(browser, contexts, server, "dan")
    erin = person(browser, contexts, server, "erin")
    for page in (dan, erin):
        expect(page.locator("#status")).to_have_text("Connected")
        page.click("button[data-room=help]")
        expect(page.locator("#room-title")).to_have_text("#help")
    say(dan, "Before the drop.")
    expect(erin.locator("#log .message .text").last).to_have_text("Before the drop.")

    # The emulator cuts Dan's socket, as a network failure would: his page says so, the client
    # reconnects (a new connection, so a new count) and he lands back in #help.
    dropped = connection_id(dan)
    assert server.emulator is not None
    assert server.emulator.drop(dropped)
    expect(dan.locator("#status")).to_contain_text("Reconnected")
    expect(dan.locator("#log .event.warning").last).to_have_text("Connection lost.")
    expect(dan.locator("#log .event").last).to_have_text("Reconnected.")
    expect(dan.locator("#status")).not_to_have_attribute("data-connection-id", dropped)
    expect(dan.locator("#room-title")).to_have_text("#help")
    expect(dan.locator("#sent")).to_have_text("0")
    say(dan, "Back again.")
    expect(erin.locator("#log .message .text").last).to_have_text("Back again.")
    expect(dan.locator("#log .message .text")).to_have_text(["Before the drop.", "Back again."])
    screenshot(dan, "chat-reconnected")

    # The app closes Erin's connection through the service client (the REST API): her page
    # shows the reason and comes back too.
    assert server.app is not None
    with server.app.app_context():
        server.app.extensions["webpubsub"].client.close_connection(
            connection_id(erin), reason="maintenance"
        )
    expect(erin.locator("#status")).to_contain_text("Reconnected")
    expect(erin.locator("#log .event.warning").last).to_have_text("Connection lost: maintenance")
    say(erin, "Me too.")
    expect(dan.locator("#log .message .text").last).to_have_text("Me too.")


def test_one_name_belongs_to_one_person_at_a_time(
    browser: Browser, contexts: list[BrowserContext], server: ChatServer
) -> None:
    frank = person(browser, contexts, server, "frank")
    expect(frank.locator("#status")).to_have_text("Connected")

    # Somebody else asks for the name (in any case): the form says it is taken.
    other = person(browser, contexts, server, "Frank")
    expect(other.locator("#signin-error")).to_have_text(
        "The name 'Frank' is in use by someone else. Choose another."
    )
    expect(other.locator("#name")).to_have_value("Frank")
    screenshot(other, "name-in-use")
    other.fill("#name", "frankie")
    other.click("#signin button")
    expect(other.locator("#status")).to_have_text("Connected")

    # Frank's second tab is still Frank.
    second_tab = frank.context.new_page()
    second_tab.goto(server.url)
    expect(second_tab.locator("#status")).to_have_text("Connected")
    expect(second_tab.locator("#me")).to_have_text("frank")

    # Had the name gone to somebody else (Frank's hold on it had lapsed, say), his page's next
    # connection is refused a token: it is signed out and says why.
    with closing(sqlite3.connect(server.config["CHAT_DATABASE"])) as db, db:
        db.execute("UPDATE names SET person = 'somebody else' WHERE name = 'frank'")
    assert server.app is not None
    with server.app.app_context():
        server.app.extensions["webpubsub"].client.close_connection(connection_id(second_tab))
    expect(second_tab.locator("#signin-error")).to_have_text(
        "The name 'frank' is in use by someone else. Choose another."
    )


def test_older_messages_show_their_date(
    browser: Browser, contexts: list[BrowserContext], server: ChatServer
) -> None:
    now = datetime.now(timezone.utc)
    yesterday = (now - timedelta(days=1)).replace(hour=9, minute=5)
    stamps = {
        "Last year.": "2024-03-05T17:45:00Z",
        "Yesterday.": yesterday.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Today.": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    assert server.app is not None
    with server.app.app_context():
        for text, stamp in stamps.items():
            store.add_message("random", "grace", text, stamp, keep=50)
    henry = person(browser, contexts, server, "henry")
    expect(henry.locator("#room-title")).to_have_text("#general")
    henry.click("button[data-room=random]")
    messages = henry.locator("#log .message")
    expect(messages.filter(has_text="Last year.").locator("time")).to_have_text(
        "5 Mar 2024, 17:45"
    )
    expected_yesterday = f"{yesterday.day} {yesterday:%b}"
    if yesterday.year != now.year:
        expected_yesterday += f" {yesterday.year}"
    expect(messages.filter(has_text="Yesterday.").locator("time")).to_have_text(
        f"{expected_yesterday}, 09:05"
    )
    expect(messages.filter(has_text="Today.").locator("time")).to_have_text(f"{now:%H:%M}")
    expect(messages.filter(has_text="Last year.").locator("time")).to_have_attribute(
        "title", re.compile(r"^Tuesday,? 5 March 2024 at 17:45$")
    )


def test_the_chat_fits_a_phone(
    browser: Browser, contexts: list[BrowserContext], server: ChatServer
) -> None:
    ivy = person(browser, contexts, server, "ivy", viewport=PHONE)
    expect(ivy.locator("#room-title")).to_have_text("#general")
    expect(ivy.locator("#status")).to_have_text("Connected")
    say(ivy, "Hello from a phone, with a long line that has to wrap inside the narrow screen.")
    expect(ivy.locator("#log .message .text").last).to_contain_text("Hello from a phone")
    assert ivy.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    for selector in ("#text", "#send", "#status", "button[data-room=help]"):
        box = ivy.locator(selector).bounding_box()
        assert box is not None, selector
        assert box["x"] >= 0, selector
        assert box["x"] + box["width"] <= PHONE["width"], selector
        assert box["y"] + box["height"] <= PHONE["height"], selector
    assert ivy.locator("#text").bounding_box()["width"] >= 200  # type: ignore[index]
    screenshot(ivy, "chat-phone")
    ivy.click("button[data-room=help]")
    expect(ivy.locator("#room-title")).to_have_text("#help")

    # The sign-in form too.
    signin = browser.new_context(viewport=PHONE)
    contexts.append(signin)
    form = signin.new_page()
    form.goto(server.url)
    assert form.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    box = form.locator("#name").bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= PHONE["width"]


def test_a_banned_name_sees_the_rejection(
    browser: Browser, contexts: list[BrowserContext], server: ChatServer
) -> None:
    page = person(browser, contexts, server, "admin")
    expect(page.locator("#notice")).to_be_visible()
    expect(page.locator("#notice-text")).to_have_text(
        "The chat refused the name “admin” (403): The name 'admin' is not allowed here."
    )
    expect(page.locator("#status")).to_have_text("Refused (403)")
    screenshot(page, "refused")
    page.click("#notice button")
    expect(page.locator("#signin")).to_be_visible()


def test_the_page_says_plainly_when_the_server_is_gone_and_comes_back(
    browser: Browser, contexts: list[BrowserContext], tmp_path: Path
) -> None:
    port, emulator_port = free_ports(2)
    database = tmp_path / "chat.sqlite3"
    chat = start_chat(database, port=port, emulator_port=emulator_port)
    try:
        jack = person(browser, contexts, chat, "jack")
        expect(jack.locator("#status")).to_have_text("Connected")
    finally:
        chat.stop()
    expect(jack.locator("#status")).to_have_text("Cannot reach the chat server. Retrying…")
    expect(jack.locator("#status")).to_have_attribute("data-state", "unreachable")
    expect(jack.locator("#log .event.warning").last).to_contain_text(
        "Cannot reach the chat server: it has stopped, or the network is down."
    )
    expect(jack.locator("#text")).to_be_disabled()
    assert "Failed to fetch" not in jack.locator("body").inner_text()
    screenshot(jack, "server-gone")

    # The same server again (same ports and secret key): the page carries on by itself.
    chat = start_chat(database, port=port, emulator_port=emulator_port)
    try:
        expect(jack.locator("#status")).to_contain_text("Reconnected")
        expect(jack.locator("#room-title")).to_have_text("#general")
        say(jack, "Still here.")
        expect(jack.locator("#log .message .text").last).to_have_text("Still here.")
    finally:
        chat.stop()
