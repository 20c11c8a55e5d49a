"""Several hubs from one event handler URL, blueprint style."""

from __future__ import annotations

import jwt
import pytest
from flask import Flask

from flask_webpubsub import ConfigurationError, Hub, UserEvent, WebPubSub
from flask_webpubsub.testing import WebPubSubTestClient

from .support import HOST, PRIMARY_KEY, make_app


@pytest.fixture
def multi() -> tuple[Flask, WebPubSub]:
    webpubsub = WebPubSub()
    notifications = Hub("Notifications")

    @webpubsub.on_user_event("who")
    def chat_who(event: UserEvent) -> str:
        return f"chat:{event.hub}"

    @notifications.on_user_event("who")
    def notify_who(event: UserEvent) -> str:
        return f"notifications:{event.hub}"

    @notifications.on_negotiate
    def negotiate() -> dict[str, object]:
        return {"user_id": "notified"}

    webpubsub.register_hub(notifications)
    app = make_app()
    webpubsub.init_app(app)
    return app, webpubsub


def test_events_are_dispatched_per_hub(multi: tuple[Flask, WebPubSub]) -> None:
    app, _ = multi
    chat = WebPubSubTestClient(app, hub="chat").connect()
    assert chat.user_event("who").data == "chat:chat"
    notified = WebPubSubTestClient(app, hub="NOTIFICATIONS").connect()
    assert notified.user_event("who").data == "notifications:notifications"
    unknown = WebPubSubTestClient(app, hub="other").connection().user_event("who")
    assert unknown.status == 404


def test_negotiate_for_served_hubs_only(multi: tuple[Flask, WebPubSub]) -> None:
    app, _ = multi
    client = app.test_client()
    body = client.get("/negotiate?hub=notifications").get_json()
    assert body["baseUrl"] == f"wss://{HOST}/client/hubs/Notifications"
    claims = jwt.decode(
        body["token"],
        PRIMARY_KEY,
        algorithms=["HS256"],
        audience=f"https://{HOST}/client/hubs/Notifications",
    )
    assert claims["sub"] == "notified"
    assert client.get("/negotiate?hub=admin").status_code == 404


def test_a_client_per_hub(multi: tuple[Flask, WebPubSub]) -> None:
    app, webpubsub = multi
    with app.app_context():
        assert webpubsub.client is webpubsub.client_for("CHAT")
        notifications = webpubsub.client_for("notifications")
        assert notifications is webpubsub.client_for("Notifications")
        assert notifications is not webpubsub.client
        with pytest.raises(KeyError, match="does not serve"):
            webpubsub.client_for("admin")
        assert app.extensions["webpubsub"].hub_names == ["chat", "Notifications"]


def test_hub_registration_errors() -> None:
    webpubsub = WebPubSub()
    with pytest.raises(ValueError, match="needs a name"):
        webpubsub.register_hub(Hub())
    webpubsub.register_hub(Hub("a"))
    with pytest.raises(ValueError, match="registered already"):
        webpubsub.register_hub(Hub("A"))
    with pytest.raises(ConfigurationError, match="invalid hub name"):
        Hub("no spaces")
    webpubsub.register_hub(Hub("chat"))
    with pytest.raises(ConfigurationError, match="also WEBPUBSUB_HUB"):
        webpubsub.init_app(make_app())


def test_one_extension_on_two_apps() -> None:
    webpubsub = WebPubSub()

    @webpubsub.on_user_event("hub")
    def hub(event: UserEvent) -> str:
        return event.hub

    first, second = make_app(WEBPUBSUB_HUB="one"), make_app(WEBPUBSUB_HUB="two")
    webpubsub.init_app(first)
    webpubsub.init_app(second)
    assert WebPubSubTestClient(first).connect().user_event("hub").data == "one"
    assert WebPubSubTestClient(second).connect().user_event("hub").data == "two"
    assert WebPubSubTestClient(first, hub="two").connect().result.status == 404  # type: ignore[union-attr]
