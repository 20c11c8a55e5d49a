"""The chat's Web PubSub side: who may connect, rooms, messages and presence.

Every room is a group. Clients never join groups themselves: they ask with user events
(``join``, ``leave``) and the app moves them with the service client, so the app decides who
is where and announces it. Messages are user events too: validated here, stored, then sent to
the room's group. Replies to user events are always 200, even for a refused message, because
the service closes a client's connection after any other status. A name belongs to one person
(one browser session, however many tabs) at a time: signing in and negotiating claim it.

MQTT clients (the example's device, ``example_app/device.py``) take part in the same way. They
negotiate with ``?client=mqtt`` for a token of the service's MQTT endpoint, and their session is
the connection: the room's group is their topic, each of their user events a PUBLISH to
``$webpubsub/server/events/{name}``. Their tokens grant no roles, as the pages' do not, so they
can neither subscribe to a room (join its group) nor publish to one themselves.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from azure.core.exceptions import AzureError
from flask import abort, current_app, flash, request, session

from flask_webpubsub import (
    ConnectedEvent,
    ConnectEvent,
    ConnectResponse,
    DisconnectedEvent,
    NegotiateOptions,
    UserEvent,
    WebPubSub,
)

from . import store

logger = logging.getLogger(__name__)

webpubsub = WebPubSub()


def now() -> str:
    """The current UTC time, RFC 3339."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def name_problem(name: str | None) -> str | None:
    """Why a display name is refused, or None when it is fine."""
    if not name or not name.strip():
        return "Choose a display name."
    limit: int = current_app.config["CHAT_MAX_NAME_LENGTH"]
    if len(name) > limit:
        return f"Names are at most {limit} characters."
    banned = {n.casefold() for n in current_app.config["CHAT_BANNED_NAMES"]}
    if name.strip().casefold() in banned:
        return f"The name {name!r} is not allowed here."
    return None


def room_or_none(value: Any) -> str | None:
    """``value`` if it names one of the chat's rooms."""
    rooms: list[str] = current_app.config["CHAT_ROOMS"]
    return value if isinstance(value, str) and value in rooms else None


def error(text: str) -> dict[str, Any]:
    """A refusal the page shows next to the message box."""
    return {"kind": "error", "error": text}


def room_snapshot(room: str | None, sent: int) -> dict[str, Any]:
    """Everything the page needs on entering a room: its history and who is there."""
    if room is None:
        return {"kind": "room", "room": None, "history": [], "members": [], "sent": sent}
    limit: int = current_app.config["CHAT_HISTORY_SIZE"]
    return {
        "kind": "room",
        "room": room,
        "history": [m.to_json() for m in store.history(room, limit)],
        "members": store.members(room),
        "sent": sent,
    }


def announce(room: str, user: str, action: str, members: list[str], connection_id: str) -> None:
    """Tell the room (but not the connection that moved) that ``user`` arrived or left."""
    presence = {
        "kind": "presence",
        "room": room,
        "user": user,
        "action": action,
        "members": members,
        "time": now(),
    }
    try:
        webpubsub.client.send_to_group(
            room, presence, excluded=[connection_id], content_type="application/json"
        )
    except AzureError as exc:
        logger.warning("Could not announce %s %s in %s: %s", user, action, room, exc)


def enter(connection_id: str, user: str, room: str) -> None:
    """Record the connection in the room; announce the user if they were not there yet."""
    members = store.enter(connection_id, user, room)
    if members is not None:
        announce(room, user, "arrived", members, connection_id)


def leave(connection_id: str, user: str, room: str, *, gone: bool = False) -> None:
    """Take the connection out of the room; announce when the user's last connection left."""
    members = store.leave(connection_id, user, room, gone=gone)
    if members is not None:
        announce(room, user, "left", members, connection_id)


def name_in_use(name: str) -> str:
    """What somebody who asks for a name that another person holds is told."""
    return f"The name {name!r} is in use by someone else. Choose another."


@webpubsub.on_negotiate
def negotiate() -> NegotiateOptions:
    """The signed-in name goes into the token as the user id; ``connect`` judges it.

    Only the person who holds the name gets a token for it. They hold it from signing in, and
    keep it by negotiating (every page load and reconnect does) or by staying connected; a name
    whose holder went away may be taken by somebody else, and then the holder is signed out.
    A device signs in the same way and asks with ``?client=mqtt`` for a token of the service's
    MQTT endpoint; everything else about the token is the same.
    """
    if "name" not in session or "person" not in session:
        abort(401, "sign in first")
    name: str = session["name"]
    if name and not store.claim_name(
        name, session["person"], current_app.config["CHAT_NAME_HOLD_SECONDS"]
    ):
        logger.info("Signed out a page of %r: somebody else holds the name now", name)
        session.pop("name")
        flash(name_in_use(name))
        abort(409, "that name is in use")
    protocol = "mqtt" if request.args.get("client") == "mqtt" else "default"
    return NegotiateOptions(user_id=name, client_protocol=protocol)


@webpubsub.on_connect
def connect(event: ConnectEvent) -> ConnectResponse:
    problem = name_problem(event.user_id)
    if problem is not None:
        logger.info("Refused a connection for %r: %s", event.user_id, problem)
        store.record_refusal(event.user_id or "", 403, problem)
        abort(403, problem)
    assert event.user_id is not None
    store.forget_refusal(event.user_id)
    # The page asks for the room it was in (after a reconnect) in the query string, and a
    # device for its room in the query string of the MQTT endpoint's URL.
    requested = event.query.get("room", [""])[0]
    room = room_or_none(requested) or current_app.config["CHAT_ROOMS"][0]
    if event.mqtt is not None:
        # An MQTT client: the user id is its token's, as for a page (its CONNECT's user name
        # and password are not looked at). The service applies this reply's group to a new
        # session only, and the example's device starts a clean one each time.
        version = "5.0" if event.mqtt.protocol_version == 5 else "3.1.1"
        logger.info("MQTT %s client %s connects as %r to #%s", version, event.connection_id,
                    event.user_id, room)
    event.state["room"] = room
    event.state["sent"] = 0
    return ConnectResponse(groups=[room])


@webpubsub.on_connected
def connected(event: ConnectedEvent) -> None:
    room = event.state.get("room")
    if event.user_id is None or room is None:
        return
    enter(event.connection_id, event.user_id, room)
    webpubsub.client.send_to_connection(
        event.connection_id,
        room_snapshot(room, event.state.get("sent", 0)),
        content_type="application/json",
    )


@webpubsub.on_disconnected
def disconnected(event: DisconnectedEvent) -> None:
    room = event.state.get("room")
    if event.user_id is None:
        return
    if room is None:
        store.forget(event.connection_id)
    else:
        leave(event.connection_id, event.user_id, room, gone=True)


@webpubsub.on_user_event("join")
def join(event: UserEvent) -> dict[str, Any]:
    data = event.data if isinstance(event.data, dict) else {}
    room = room_or_none(data.get("room"))
    if room is None or event.user_id is None:
        return error("There is no such room.")
    old = event.state.get("room")
    if room != old:
        try:
            if old is not None:
                webpubsub.client.remove_connection_from_group(old, event.connection_id)
            webpubsub.client.add_connection_to_group(room, event.connection_id)
        except AzureError as exc:
            logger.warning("Could not move %s to %s: %s", event.connection_id, room, exc)
            return error("Could not change rooms; try again.")
        if old is not None:
            leave(event.connection_id, event.user_id, old)
        event.state["room"] = room
        enter(event.connection_id, event.user_id, room)
    return room_snapshot(room, event.state.get("sent", 0))


@webpubsub.on_user_event("leave")
def leave_room(event: UserEvent) -> dict[str, Any]:
    old = event.state.get("room")
    if old is not None and event.user_id is not None:
        try:
            webpubsub.client.remove_connection_from_group(old, event.connection_id)
        except AzureError as exc:
            logger.warning("Could not take %s out of %s: %s", event.connection_id, old, exc)
            return error("Could not leave the room; try again.")
        leave(event.connection_id, event.user_id, old)
    event.state["room"] = None
    return room_snapshot(None, event.state.get("sent", 0))


@webpubsub.on_user_event("message")
def message(event: UserEvent) -> dict[str, Any]:
    room = event.state.get("room")
    if room is None or event.user_id is None:
        return error("Join a room first.")
    data = event.data.get("text") if isinstance(event.data, dict) else event.data
    if event.mqtt is not None and isinstance(data, bytes):
        # MQTT 3.1.1 has no content type: every payload arrives as binary. Text is UTF-8.
        try:
            data = data.decode()
        except UnicodeDecodeError:
            return error("A message is UTF-8 text.")
    if not isinstance(data, str):
        return error("A message is text.")
    text = data.strip()
    limit: int = current_app.config["CHAT_MAX_MESSAGE_LENGTH"]
    if not text:
        return error("Say something first.")
    if len(text) > limit:
        return error(f"Messages are at most {limit} characters.")
    stored = store.add_message(
        room, event.user_id, text, now(), keep=current_app.config["CHAT_HISTORY_SIZE"]
    )
    # Connection state: this connection's own count, kept by the service between events.
    event.state["sent"] = event.state.get("sent", 0) + 1
    try:
        webpubsub.client.send_to_group(
            room, {"kind": "message", **stored.to_json()}, content_type="application/json"
        )
    except AzureError as exc:
        logger.warning("Could not send message %d to %s: %s", stored.id, room, exc)
        return error("The message was saved but could not be delivered; reload to see it.")
    return {"kind": "sent", "id": stored.id, "sent": event.state["sent"]}


@webpubsub.on_user_event()
def unknown(event: UserEvent) -> dict[str, Any]:
    return error(f"Unknown event {event.event_name!r}.")
