"""The example chat's handlers, through the testing helpers: sign-in rules, rooms, messages,
history, connection state and presence."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any

import jwt
import pytest
from azure.core.exceptions import ServiceRequestError
from flask import Flask
from markupsafe import escape

from example_app import create_app

from .fakes import ChatUsers, FakeService, ServiceSwitch

STATIC = Path(__file__).parents[2] / "example_app" / "static"


def sign_in(app: Flask, name: str) -> Any:
    client = app.test_client()
    client.post("/signin", data={"name": name})
    return client


# --- sign-in -------------------------------------------------------------------------------


def test_the_signed_in_name_is_the_token_user_id(app: Flask) -> None:
    browser = sign_in(app, "  alice  ")
    reply = browser.get("/negotiate")
    assert reply.status_code == 200
    claims = jwt.decode(reply.json["token"], options={"verify_signature": False})
    assert claims["sub"] == "alice"


def test_negotiate_needs_a_signed_in_user(app: Flask) -> None:
    assert app.test_client().get("/negotiate").status_code == 401


def test_a_good_name_connects_to_the_first_room(users: ChatUsers) -> None:
    alice = users.connect("alice")
    assert alice.accepted
    assert alice.groups == ["general"]
    assert alice.state == {"room": "general", "sent": 0}


def test_the_page_asks_for_its_room(users: ChatUsers) -> None:
    assert users.connect("alice", room="random").groups == ["random"]
    assert users.connect("bob", room="nowhere").groups == ["general"]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        (None, "Choose a display name."),
        ("   ", "Choose a display name."),
        ("x" * 25, "Names are at most 24 characters."),
        ("admin", "The name 'admin' is not allowed here."),
        ("Root", "The name 'Root' is not allowed here."),
    ],
)
def test_refused_names_get_403(users: ChatUsers, service: FakeService, name: str | None,
                               reason: str) -> None:
    connection = users.connect(name)
    assert connection.result is not None
    assert connection.result.status == 403
    assert connection.result.reason == reason
    assert not service.received


def test_a_name_at_the_limit_is_fine(users: ChatUsers) -> None:
    assert users.connect("x" * 24).accepted


def test_the_page_learns_why_it_was_refused(app: Flask, users: ChatUsers) -> None:
    browser = sign_in(app, "admin")
    assert browser.get("/api/session").json == {"name": "admin", "refusal": None}
    assert not users.connect("admin").accepted
    assert browser.get("/api/session").json == {
        "name": "admin",
        "refusal": {"status": 403, "reason": "The name 'admin' is not allowed here."},
    }


def test_an_empty_name_is_refused_and_explained(app: Flask, users: ChatUsers) -> None:
    browser = sign_in(app, "")
    token = browser.get("/negotiate").json["token"]
    assert "sub" not in jwt.decode(token, options={"verify_signature": False})
    assert not users.connect(None).accepted
    assert browser.get("/api/session").json["refusal"]["reason"] == "Choose a display name."


def test_names_are_clipped_before_they_reach_the_cookie(app: Flask) -> None:
    browser = sign_in(app, "y" * 5000)
    assert browser.get("/api/session").json["name"] == "y" * 200


# --- one name, one person ------------------------------------------------------------------


def test_a_name_in_use_is_refused_at_sign_in(app: Flask, users: ChatUsers) -> None:
    alice = sign_in(app, "alice")
    assert alice.get("/negotiate").status_code == 200
    users.connect("alice")
    for name in ("alice", "ALICE", "  Alice "):
        other = app.test_client()
        reply = other.post("/signin", data={"name": name})
        assert reply.status_code == 409
        page = reply.get_data(as_text=True)
        refusal = f"The name {name.strip()!r} is in use by someone else. Choose another."
        assert escape(refusal) in page
        assert f'value="{name.strip()}"' in page  # kept in the box, to change
        assert other.get("/api/session").json == {"name": None, "refusal": None}
        assert other.get("/negotiate").status_code == 401


def test_the_holder_may_sign_in_again_and_open_more_tabs(app: Flask, users: ChatUsers) -> None:
    alice = sign_in(app, "alice")
    alice.get("/negotiate")
    users.connect("alice")
    assert alice.post("/signin", data={"name": "alice"}).status_code == 302
    # A second tab shares the session: it negotiates, and connects as the same user.
    assert alice.get("/negotiate").status_code == 200
    assert users.connect("alice").accepted


def test_a_name_is_held_between_signing_in_and_connecting(app: Flask) -> None:
    sign_in(app, "alice")
    assert app.test_client().post("/signin", data={"name": "alice"}).status_code == 409


def test_a_name_is_free_once_its_holder_is_gone(app: Flask, users: ChatUsers) -> None:
    app.config["CHAT_NAME_HOLD_SECONDS"] = 0
    alice = sign_in(app, "alice")
    alice.get("/negotiate")
    connection = users.connect("alice")
    other = app.test_client()
    assert other.post("/signin", data={"name": "alice"}).status_code == 409  # still connected
    users.disconnect(connection)
    assert other.post("/signin", data={"name": "alice"}).status_code == 302
    assert other.get("/negotiate").status_code == 200
    # The first holder's page reconnects: it is signed out, and told why.
    app.config["CHAT_NAME_HOLD_SECONDS"] = 60
    assert alice.get("/negotiate").status_code == 409
    assert alice.get("/api/session").json["name"] is None
    page = alice.get("/").get_data(as_text=True)
    assert escape("The name 'alice' is in use by someone else. Choose another.") in page
    assert 'action="/signin"' in page


def test_signing_out_frees_the_name(app: Flask) -> None:
    alice = sign_in(app, "alice")
    alice.post("/signout")
    assert sign_in(app, "alice").get("/negotiate").status_code == 200


def test_taking_another_name_frees_the_old_one(app: Flask) -> None:
    browser = sign_in(app, "alice")
    assert browser.post("/signin", data={"name": "alicia"}).status_code == 302
    assert app.test_client().post("/signin", data={"name": "alice"}).status_code == 302
    assert app.test_client().post("/signin", data={"name": "alicia"}).status_code == 409


def test_of_people_asking_for_a_free_name_at_once_one_gets_it(app: Flask) -> None:
    people = [app.test_client() for _ in range(8)]
    start = threading.Barrier(len(people))
    statuses: list[int] = []

    def ask(client: Any) -> None:
        start.wait()
        statuses.append(client.post("/signin", data={"name": "alice"}).status_code)

    threads = [threading.Thread(target=ask, args=(person,)) for person in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(statuses) == [302] + [409] * 7


# --- messages ------------------------------------------------------------------------------


def test_a_message_goes_to_the_room_with_who_and_when(users: ChatUsers,
                                                     service: FakeService) -> None:
    alice = users.connect("alice")
    bob = users.connect("bob")
    carol = users.connect("carol", room="random")
    reply = alice.user_event("message", {"text": "  hello bob  "})
    assert reply.status == 200
    assert reply.data == {"kind": "sent", "id": 1, "sent": 1}
    [received] = service.inbox(bob, "message")
    assert received == service.inbox(alice, "message")[0]
    assert received["user"] == "alice"
    assert received["text"] == "hello bob"
    assert received["room"] == "general"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", received["time"])
    assert service.inbox(carol, "message") == []


def test_plain_text_events_are_messages_too(users: ChatUsers, service: FakeService) -> None:
    alice = users.connect("alice")
    assert alice.user_event("message", "hi").data["kind"] == "sent"
    assert service.inbox(alice, "message")[0]["text"] == "hi"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"text": ""}, "Say something first."),
        ({"text": " \n\t "}, "Say something first."),
        ({"text": 42}, "A message is text."),
        ({"body": "hi"}, "A message is text."),
        ([1, 2], "A message is text."),
        (b"\x00\x01", "A message is text."),
        ({"text": "x" * 501}, "Messages are at most 500 characters."),
    ],
)
def test_invalid_messages_are_refused_but_the_connection_stays(
    users: ChatUsers, service: FakeService, data: Any, error: str
) -> None:
    alice = users.connect("alice")
    reply = alice.user_event("message", data)
    # Any status but 2xx would make the service close the connection.
    assert reply.status == 200
    assert reply.data == {"kind": "error", "error": error}
    assert service.inbox(alice, "message") == []
    assert alice.state["sent"] == 0


def test_a_message_at_the_length_limit_is_fine(users: ChatUsers, service: FakeService) -> None:
    alice = users.connect("alice")
    assert alice.user_event("message", {"text": "x" * 500}).data["kind"] == "sent"


def test_html_is_kept_as_text(app: Flask, users: ChatUsers, service: FakeService) -> None:
    text = '<script>alert("hi")</script> <b>bold</b> &amp; <img src=x onerror=alert(1)>'
    alice = users.connect("alice")
    alice.user_event("message", {"text": text})
    assert service.inbox(alice, "message")[0]["text"] == text
    bob = users.connect("bob")
    assert service.inbox(bob, "room")[0]["history"][0]["text"] == text


def test_the_page_never_renders_html_it_is_sent() -> None:
    script = (STATIC / "chat.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script


def test_names_are_escaped_in_the_page(app: Flask) -> None:
    page = sign_in(app, "<b>x</b>").get("/").get_data(as_text=True)
    assert "<b>x</b>" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page


def test_a_message_needs_a_room(users: ChatUsers, service: FakeService) -> None:
    alice = users.connect("alice")
    alice.user_event("leave")
    assert alice.user_event("message", {"text": "hi"}).data == {
        "kind": "error",
        "error": "Join a room first.",
    }


def test_unknown_events_are_answered(users: ChatUsers) -> None:
    reply = users.connect("alice").user_event("shout", "hi")
    assert reply.status == 200
    assert reply.data == {"kind": "error", "error": "Unknown event 'shout'."}


# --- connection state ----------------------------------------------------------------------


def test_each_connection_counts_its_messages_in_its_state(users: ChatUsers) -> None:
    first = users.connect("alice")
    second = users.connect("alice")
    assert [first.user_event("message", {"text": str(i)}).data["sent"] for i in range(3)] == [
        1, 2, 3,
    ]
    first.user_event("message", {"text": ""})
    assert first.state == {"room": "general", "sent": 3}
    assert second.user_event("message", {"text": "hi"}).data["sent"] == 1
    first.user_event("join", {"room": "help"})
    assert first.state == {"room": "help", "sent": 3}


# --- rooms and history ---------------------------------------------------------------------


def test_connecting_shows_the_room_its_history_and_who_is_there(
    users: ChatUsers, service: FakeService
) -> None:
    alice = users.connect("alice")
    alice.user_event("message", {"text": "first"})
    bob = users.connect("bob")
    [snapshot] = service.inbox(bob, "room")
    assert snapshot["room"] == "general"
    assert [m["text"] for m in snapshot["history"]] == ["first"]
    assert snapshot["members"] == ["alice", "bob"]
    assert snapshot["sent"] == 0


def test_history_keeps_the_last_50_messages_of_each_room(
    app: Flask, users: ChatUsers, service: FakeService
) -> None:
    alice = users.connect("alice")
    for i in range(55):
        alice.user_event("message", {"text": f"m{i}"})
    alice.user_event("join", {"room": "random"})
    alice.user_event("message", {"text": "elsewhere"})
    reply = alice.user_event("join", {"room": "general"})
    history = reply.data["history"]
    assert [m["text"] for m in history] == [f"m{i}" for i in range(5, 55)]
    assert all(m["user"] == "alice" and m["room"] == "general" for m in history)
    with sqlite3.connect(app.config["CHAT_DATABASE"]) as db:
        counts = dict(db.execute("SELECT room, COUNT(*) FROM messages GROUP BY room").fetchall())
    assert counts == {"general": 50, "random": 1}


def test_history_survives_a_restart(app: Flask, users: ChatUsers, service: FakeService) -> None:
    users.connect("alice").user_event("message", {"text": "still here"})
    again = create_app({**app.config, "TESTING": True})
    with again.test_request_context():
        from example_app import store

        assert [m.text for m in store.history("general", 50)] == ["still here"]


def test_joining_moves_the_connection_between_groups(users: ChatUsers,
                                                     service: FakeService) -> None:
    alice = users.connect("alice")
    reply = alice.user_event("join", {"room": "random"})
    assert reply.data["kind"] == "room"
    assert reply.data["room"] == "random"
    assert reply.data["members"] == ["alice"]
    assert alice.connection_id in service.groups["random"]
    assert alice.connection_id not in service.groups["general"]
    assert alice.state["room"] == "random"


def test_joining_the_same_room_again_just_shows_it(users: ChatUsers,
                                                   service: FakeService) -> None:
    alice = users.connect("alice")
    bob = users.connect("bob")
    before = len(service.inbox(bob))
    assert alice.user_event("join", {"room": "general"}).data["room"] == "general"
    assert len(service.inbox(bob)) == before


@pytest.mark.parametrize("data", [{"room": "nowhere"}, {"room": 1}, {}, "general"])
def test_only_the_chats_rooms_can_be_joined(users: ChatUsers, service: FakeService,
                                           data: Any) -> None:
    alice = users.connect("alice")
    assert alice.user_event("join", data).data == {"kind": "error",
                                                   "error": "There is no such room."}
    assert alice.state["room"] == "general"


def test_leaving_a_room(users: ChatUsers, service: FakeService) -> None:
    alice = users.connect("alice")
    reply = alice.user_event("leave")
    assert reply.data == {"kind": "room", "room": None, "history": [], "members": [], "sent": 0}
    assert alice.connection_id not in service.groups["general"]
    assert alice.state["room"] is None


# --- presence ------------------------------------------------------------------------------


def presence(service: FakeService, connection: Any) -> list[tuple[str, str, list[str]]]:
    return [(p["user"], p["action"], p["members"]) for p in service.inbox(connection, "presence")]


def test_arrivals_and_departures_are_announced_in_the_room(
    users: ChatUsers, service: FakeService
) -> None:
    alice = users.connect("alice")
    bob = users.connect("bob")
    carol = users.connect("carol", room="random")
    users.disconnect(bob)
    assert presence(service, alice) == [
        ("bob", "arrived", ["alice", "bob"]),
        ("bob", "left", ["alice"]),
    ]
    assert presence(service, bob) == []  # nobody is told about themselves
    assert presence(service, carol) == []


def test_a_second_tab_is_not_a_second_arrival(users: ChatUsers, service: FakeService) -> None:
    alice = users.connect("alice")
    bob = users.connect("bob")
    bob_again = users.connect("bob")
    users.disconnect(bob)
    assert presence(service, alice) == [("bob", "arrived", ["alice", "bob"])]
    users.disconnect(bob_again)
    assert presence(service, alice)[-1] == ("bob", "left", ["alice"])


def test_moving_rooms_is_announced_in_both(users: ChatUsers, service: FakeService) -> None:
    alice = users.connect("alice")
    carol = users.connect("carol", room="random")
    bob = users.connect("bob")
    bob.user_event("join", {"room": "random"})
    assert presence(service, alice)[-1] == ("bob", "left", ["alice"])
    assert presence(service, carol)[-1] == ("bob", "arrived", ["bob", "carol"])
    bob.user_event("leave")
    assert presence(service, carol)[-1] == ("bob", "left", ["carol"])
    users.disconnect(bob)
    assert len(presence(service, carol)) == 2  # gone from no room: nothing more to say


# --- the page ------------------------------------------------------------------------------


def test_the_sign_in_page(app: Flask) -> None:
    page = app.test_client().get("/").get_data(as_text=True)
    assert '<form method="post" action="/signin"' in page
    assert 'id="chat"' not in page


def test_the_chat_page_lists_the_rooms_and_needs_no_cdn(app: Flask) -> None:
    browser = sign_in(app, "alice")
    page = browser.get("/").get_data(as_text=True)
    for room in ("general", "random", "help"):
        assert f'data-room="{room}"' in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert '<script type="module" src="/static/chat.js">' in page
    for name in ("chat.js", "chat.css", "vendor/web-pubsub-client.js",
                 "vendor/web-pubsub-client.LICENSES.txt"):
        with browser.get(f"/static/{name}") as asset:
            assert asset.status_code == 200


def test_the_page_uses_the_vendored_official_client() -> None:
    script = (STATIC / "chat.js").read_text()
    assert 'from "./vendor/web-pubsub-client.js"' in script
    assert "new WebPubSubClient(" in script
    # No hand-written subprotocol: the client speaks it.
    assert "new WebSocket(" not in script
    assert "ackId" not in script


def test_the_vendored_client_says_what_it_is_and_carries_its_licences() -> None:
    bundle = (STATIC / "vendor" / "web-pubsub-client.js").read_text()
    header = bundle.splitlines()[0]
    assert header.startswith("/* @azure/web-pubsub-client 1.0.4 (MIT, Microsoft Corporation)")
    assert "example_app/vendor/build.sh" in header
    assert "export{" in bundle.replace(" ", "")  # one ES module
    licences = (STATIC / "vendor" / "web-pubsub-client.LICENSES.txt").read_text()
    for package in ("@azure/web-pubsub-client@1.0.4 (MIT)", "@azure/logger@", "events@",
                    "buffer@", "ieee754@"):
        assert package in licences
    assert "MIT License" in licences
    assert "Copyright (c) Microsoft Corporation." in licences


def test_the_vendoring_is_pinned() -> None:
    vendor = STATIC.parent / "vendor"
    lock = json.loads((vendor / "package-lock.json").read_text())
    packages = lock["packages"]
    assert packages["node_modules/@azure/web-pubsub-client"]["version"] == "1.0.4"
    manifest = json.loads((vendor / "package.json").read_text())
    for pins in (manifest["dependencies"], manifest["devDependencies"]):
        assert all(re.fullmatch(r"\d+\.\d+\.\d+", version) for version in pins.values())
    assert "npm ci" in (vendor / "build.sh").read_text()


def test_signing_out(app: Flask) -> None:
    browser = sign_in(app, "alice")
    browser.post("/signout")
    assert browser.get("/negotiate").status_code == 401


class BrokenService(FakeService):
    def add_connection_to_group(self, group: str, connection_id: str, **_: Any) -> None:
        raise ServiceRequestError("the service is unreachable")

    def remove_connection_from_group(self, group: str, connection_id: str, **_: Any) -> None:
        raise ServiceRequestError("the service is unreachable")

    def send_to_group(self, group: str, message: Any, **_: Any) -> None:
        raise ServiceRequestError("the service is unreachable")


def test_service_failures_are_answered_not_fatal(
    users: ChatUsers, service_switch: ServiceSwitch
) -> None:
    alice = users.connect("alice")
    service_switch.target = BrokenService()
    assert alice.user_event("join", {"room": "help"}).data == {
        "kind": "error", "error": "Could not change rooms; try again.",
    }
    assert alice.user_event("message", {"text": "hi"}).data == {
        "kind": "error",
        "error": "The message was saved but could not be delivered; reload to see it.",
    }
    assert alice.user_event("leave").data == {
        "kind": "error", "error": "Could not leave the room; try again.",
    }
    assert alice.state["room"] == "general"
