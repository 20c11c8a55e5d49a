"""The example chat as people use it: Debian's Chromium, driven by Playwright, against the app
on a real server and the built-in emulator. Screenshots go to test-artifacts/example_app/."""

from __future__ import annotations

import base64
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from example_app.server import ChatServer
from tests import secrets_guard
from tests.support import REPORTS

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
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatServer]:
    database = tmp_path_factory.mktemp("chat") / "chat.sqlite3"
    chat = ChatServer(
        port=0,
        emulator_port=0,
        config={"SECRET_KEY": "browser-test", "CHAT_DATABASE": str(database)},
    ).start()
    assert chat.emulator is not None
    secrets_guard.KNOWN_KEYS.update(chat.emulator.emulator.access_keys)
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
           name: str) -> Page:
    context = browser.new_context(viewport=VIEWPORT)
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


def test_two_people_chat_and_recover_from_dropped_connections(
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

    # The emulator cuts Alice's socket, as a network failure would: her page says so,
    # reconnects (a new connection, so a new count) and lands back in #random.
    dropped = alice.locator("#status").get_attribute("data-connection-id")
    assert dropped
    assert server.emulator is not None
    assert server.emulator.drop(dropped)
    expect(alice.locator("#status")).to_contain_text("Reconnected")
    expect(alice.locator("#log .event").last).to_have_text("Reconnected.")
    expect(alice.locator("#log .event.warning").last).to_have_text("Connection lost.")
    expect(alice.locator("#status")).not_to_have_attribute("data-connection-id", dropped)
    expect(alice.locator("#room-title")).to_have_text("#random")
    expect(alice.locator("#sent")).to_have_text("0")
    expect(alice.locator("#log .message .text")).to_have_text(
        [f"Anyone here? {html}", "Hi Alice!", "Hi Bob, welcome to #random."]
    )
    say(alice, "Back again.")
    expect(bob.locator("#log .message").last.locator(".text")).to_have_text("Back again.")
    screenshot(alice, "chat-alice-reconnected")

    # The app closes Bob's connection through the service client (the REST API): his page
    # shows the reason and comes back too.
    closed = bob.locator("#status").get_attribute("data-connection-id")
    assert server.app is not None
    with server.app.app_context():
        server.app.extensions["webpubsub"].client.close_connection(closed, reason="maintenance")
    expect(bob.locator("#status")).to_contain_text("Reconnected")
    expect(bob.locator("#log .event.warning").last).to_have_text("Connection lost: maintenance")
    say(bob, "Me too.")
    expect(alice.locator("#log .message").last.locator(".text")).to_have_text("Me too.")

    # Bob leaves the room and comes back, then closes the tab: Alice sees each move.
    bob.click("#leave")
    expect(bob.locator("#room-title")).to_have_text("Not in a room")
    expect(alice.locator("#log .event").last).to_have_text("bob left.")
    expect(alice.locator("#members li")).to_have_text(["alice"])
    bob.click("button[data-room=random]")
    expect(alice.locator("#log .event").last).to_have_text("bob arrived.")
    expect(bob.locator("#log .message .text").last).to_have_text("Me too.")
    bob.close()
    expect(alice.locator("#log .event").last).to_have_text("bob left.")
    expect(alice.locator("#members li")).to_have_text(["alice"])


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

