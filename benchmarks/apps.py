"""The Flask apps under test: the limit (a bare route) and flask_webpubsub handling the same events."""

from __future__ import annotations

from flask import Flask, request

from benchmarks.fixtures import CONNECTION_STRING, HUB, PATH

APP_NAMES = ("bare", "extension")


def bare_app() -> Flask:
    """A Flask route that returns the request body: no signature, no parsing, the floor."""
    app = Flask(__name__)

    @app.post(PATH)
    def echo() -> bytes:
        return request.get_data()

    return app


def extension_app() -> Flask:
    """flask_webpubsub as the README shows it, with an echo user event."""
    # Imported here so that the bare contender runs while the extension is not importable.
    from flask_webpubsub import ConnectResponse, WebPubSub

    app = Flask(__name__)
    app.config["WEBPUBSUB_CONNECTION_STRING"] = CONNECTION_STRING
    app.config["WEBPUBSUB_HUB"] = HUB
    webpubsub = WebPubSub(app)

    @webpubsub.on_connect
    def connect(event: object) -> ConnectResponse:
        return ConnectResponse(user_id="user1", groups=["lobby"])

    @webpubsub.on_connected
    def connected(event: object) -> None:
        return None

    @webpubsub.on_user_event("echo")
    def echo(event: object) -> object:
        return event.data  # type: ignore[attr-defined]

    return app


def create_app(name: str) -> Flask:
    """``bare`` or ``extension``."""
    if name == "bare":
        return bare_app()
    if name == "extension":
        return extension_app()
    raise ValueError(f"unknown app {name!r}: use one of {', '.join(APP_NAMES)}")
