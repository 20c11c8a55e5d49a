from flask import Flask, abort

from flask_webpubsub import ConnectEvent, ConnectResponse, UserEvent, WebPubSub
from flask_webpubsub.testing import WebPubSubTestClient


def test_round_trip(app: Flask, webpubsub: WebPubSub, wps: WebPubSubTestClient) -> None:
    @webpubsub.on_connect
    def connect(event: ConnectEvent) -> ConnectResponse:
        if event.query.get("ban"):
            abort(403, "banned")
        event.state["n"] = 0
        return ConnectResponse(user_id="alice", groups=["lobby"])

    @webpubsub.on_user_event("count")
    def count(event: UserEvent) -> int:
        event.state["n"] += 1
        return int(event.state["n"])

    conn = wps.connect()
    assert conn.accepted
    assert conn.user_id == "alice"
    assert conn.groups == ["lobby"]
    assert conn.user_event("count").data == 1
    assert conn.user_event("count").data == 2
    assert conn.state == {"n": 2}
    rejected = wps.connect(query={"ban": ["1"]})
    assert rejected.result is not None
    assert rejected.result.status == 403
    assert rejected.result.reason == "banned"
