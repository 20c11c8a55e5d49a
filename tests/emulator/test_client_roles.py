"""Permissions: literal roles and the wildcard group roles (``webpubsub.joinLeaveGroups.<pattern>``,
``webpubsub.sendToGroups.<pattern>``, concept-wildcard-group-roles.md), from tokens, from the
extension's negotiate options and in the REST API's permission check; and the most groups one
connection may be in."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from azure.messaging.webpubsubservice import WebPubSubServiceClient
from flask import Flask, request
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from flask_webpubsub import NegotiateOptions, WebPubSub
from flask_webpubsub.emulator import EmulatorThread
from flask_webpubsub.emulator.connection import MAX_GROUPS
from flask_webpubsub.emulator.roles import allows, is_valid_pattern
from tests.support import free_port

from .conftest import HUB, JSON, KEY, AppServer, Recorded, Stack, bare_url, subprotocols
from .test_client_js import reported, run_node

EXAMPLES = [  # the documentation's table, row by row
    ("chat-*", ["chat-1", "chat-room"], ["chat.1", "xchat-1"]),
    ("clientA.*", ["clientA.alpha", "clientA.1"], ["clientA.alpha.room1", "clientB.alpha"]),
    ("clientA.**", ["clientA.alpha", "clientA.alpha.room1"], ["clientB.anything"]),
    ("clientA.rooms.?1", ["clientA.rooms.a1", "clientA.rooms.11"],
     ["clientA.rooms.1", "clientA.rooms.a.1"]),
    ("literal\\*star", ["literal*star"], ["literalXstar"]),
    ("project\\*123", ["project*123"], ["project-123", "project\\*123"]),
    ("a\\?\\\\", ["a?\\"], ["ab\\", "a?"]),
    ("**", ["x", "a.b.c", "."], []),
    ("*.*", ["a.b", ".b", "a."], ["ab", "a.b.c"]),
    ("Room", ["Room"], ["room", "ROOM"]),  # group names are case-sensitive
]


@pytest.mark.parametrize(("pattern", "matching", "others"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
@pytest.mark.parametrize("permission", ["sendToGroup", "joinLeaveGroup"])
def test_patterns_match_as_documented(
    permission: str, pattern: str, matching: list[str], others: list[str]
) -> None:
    roles = {f"webpubsub.{permission}s.{pattern}"}
    for group in matching:
        assert allows(roles, permission, group), group
    for group in others:
        assert not allows(roles, permission, group), group
    other = "joinLeaveGroup" if permission == "sendToGroup" else "sendToGroup"
    assert not any(allows(roles, other, group) for group in matching)


def test_literal_roles_still_work_and_mix_with_patterns() -> None:
    roles = {"webpubsub.sendToGroup.exact", "webpubsub.sendToGroups.team.*",
             "webpubsub.joinLeaveGroup"}
    assert allows(roles, "sendToGroup", "exact")
    assert allows(roles, "sendToGroup", "team.red")
    assert not allows(roles, "sendToGroup", "exactly")
    assert allows(roles, "joinLeaveGroup", "anything.at.all")
    # A literal role is not a pattern: its * is a character.
    assert not allows({"webpubsub.sendToGroup.a*"}, "sendToGroup", "ab")
    assert allows({"webpubsub.sendToGroup.a*"}, "sendToGroup", "a*")


@pytest.mark.parametrize("pattern", ["", "a\\b", "trailing\\", "******", "*.*.*.*.**", "a***b***"])
def test_invalid_patterns_allow_nothing(pattern: str) -> None:
    assert not is_valid_pattern(pattern)
    assert not allows({f"webpubsub.sendToGroups.{pattern}"}, "sendToGroup", "anything")
    assert not allows({f"webpubsub.sendToGroups.{pattern}"}, "sendToGroup", "")


def test_five_asterisks_are_allowed() -> None:
    assert is_valid_pattern("*.*.*.**")
    assert allows({"webpubsub.sendToGroups.*.*.*.**"}, "sendToGroup", "a.b.c.d.e")


def test_a_long_group_name_costs_little() -> None:
    roles = {"webpubsub.sendToGroups.*a*a*a*a*b"}
    started = time.perf_counter()
    assert not allows(roles, "sendToGroup", "a" * 1024)
    assert time.perf_counter() - started < 0.5


def test_wildcard_roles_in_a_token_and_in_the_rest_permission_check(bare: EmulatorThread) -> None:
    url = bare_url(bare, "w", ["webpubsub.joinLeaveGroups.public.*",
                               "webpubsub.sendToGroups.public.**"])
    with connect(url, subprotocols=subprotocols(JSON)) as ws:
        connection_id = json.loads(ws.recv(timeout=5))["connectionId"]
        for ack_id, (kind, group) in enumerate(
            [("joinGroup", "public.a"), ("joinGroup", "public.a.b"),
             ("sendToGroup", "public.a.b"), ("sendToGroup", "private")], 1
        ):
            ws.send(json.dumps({"type": kind, "group": group, "ackId": ack_id, "data": "x"}))
        acks: list[str] = []
        while len(acks) < 4:
            frame = json.loads(ws.recv(timeout=5))
            if frame["type"] == "ack":
                acks.append(frame.get("error", {}).get("name", "ok"))
        assert acks == ["ok", "Forbidden", "ok", "Forbidden"]
        service = WebPubSubServiceClient.from_connection_string(bare.connection_string, HUB)
        assert service.has_permission("sendToGroup", connection_id, target_name="public.x.y")
        assert service.has_permission("joinLeaveGroup", connection_id, target_name="public.x")
        assert not service.has_permission("joinLeaveGroup", connection_id,
                                            target_name="public.x.y")
        service.close()


WILD_ROLES = ["webpubsub.joinLeaveGroups.public.**", "webpubsub.sendToGroups.clientA.**",
              "webpubsub.sendToGroup.exact"]


@pytest.fixture
def wild_stack() -> Iterator[Stack]:
    """An app whose negotiate options give wildcard roles."""
    port = free_port()
    app = Flask("wildcard_roles")
    app.config.update(
        WEBPUBSUB_CONNECTION_STRING=f"Endpoint=http://127.0.0.1:{port};AccessKey={KEY};"
                                    "Version=1.0;",
        WEBPUBSUB_HUB=HUB,
    )
    webpubsub = WebPubSub(app)

    @webpubsub.on_negotiate
    def negotiate() -> NegotiateOptions:
        return NegotiateOptions(user_id=request.args.get("user"), roles=WILD_ROLES)

    server = AppServer(app)
    emulator = EmulatorThread(port=port, access_key=KEY, upstream=f"{server.url}/eventhandler")
    emulator.start()
    try:
        yield Stack(emulator, app, server, Recorded())
    finally:
        emulator.stop()
        server.stop()


def test_the_official_client_with_wildcard_roles_from_negotiate(wild_stack: Stack) -> None:
    result = reported(run_node(wild_stack, "roles.mjs"), "result")
    assert result == {
        "kind": "result",
        "joinPublic": "ok", "joinNested": "ok", "joinPrivate": "Forbidden",
        "sendDeep": "ok", "sendOther": "Forbidden", "sendLiteral": "ok",
    }


def test_a_connection_is_in_a_thousand_groups_at_most(bare: EmulatorThread) -> None:
    with connect(bare_url(bare, "many", ["webpubsub.joinLeaveGroup"]),
                 subprotocols=subprotocols(JSON)) as ws:
        json.loads(ws.recv(timeout=5))
        for n in range(MAX_GROUPS + 1):
            ws.send(json.dumps({"type": "joinGroup", "group": f"g{n}", "ackId": n}))
        acks = [json.loads(ws.recv(timeout=10)) for _ in range(MAX_GROUPS + 1)]
        assert all(ack["success"] for ack in acks[:MAX_GROUPS])
        assert acks[-1]["error"]["name"] == "BadRequest"
        assert str(MAX_GROUPS) in acks[-1]["error"]["message"]
        # Joining a group it is in already is fine; leaving one makes room for another.
        ws.send(json.dumps({"type": "joinGroup", "group": "g0", "ackId": 5000}))
        assert json.loads(ws.recv(timeout=5))["success"]
        ws.send(json.dumps({"type": "leaveGroup", "group": "g0", "ackId": 5001}))
        ws.send(json.dumps({"type": "joinGroup", "group": "new", "ackId": 5002}))
        assert [json.loads(ws.recv(timeout=5))["success"] for _ in range(2)] == [True, True]
    assert len(bare.emulator.hubs[HUB].groups) <= MAX_GROUPS


def test_a_client_that_would_start_in_too_many_groups_is_refused(bare: EmulatorThread) -> None:
    async def add_user_to_groups() -> None:
        roster = bare.emulator.service.roster(HUB)
        for n in range(MAX_GROUPS):  # as many as a user may be in
            assert roster.add_user_to_group("crowded", f"g{n}")

    bare.call(add_user_to_groups())
    with pytest.raises(InvalidStatus) as refused:  # and one more in its token
        connect(bare_url(bare, "crowded", groups=["one-more"]))
    assert refused.value.response.status_code == 400
    assert not bare.emulator.hubs[HUB].connections
