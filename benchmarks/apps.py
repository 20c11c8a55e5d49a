"""The Flask apps under test: the limit (a bare route), and flask_webpubsub on the same events."""

from __future__ import annotations

from flask import Flask, Response, jsonify, request

from benchmarks.fixtures import (
    CONNECTION_STRING,
    GROUPS,
    HUB,
    NEGOTIATE_PATH,
    PATH,
    ROLES,
    USER_ID,
)

APP_NAMES = ("bare", "extension", "direct")


def bare_app() -> Flask:
    """A Flask route that returns the request body: no signature, no parsing, the floor."""
    app = Flask(__name__)

    @app.post(PATH)
    def echo() -> bytes:
        return request.get_data()

    return app


def extension_app(*, direct_dispatch: bool = False) -> Flask:
    """flask_webpubsub as a typical app uses it: echo user events, accept connects, negotiate;
    with ``direct_dispatch``, the event handler in front of Flask's request handling."""
    # Imported here so that the bare contender still runs when the extension does not import.
    from flask_webpubsub import (
        ConnectedEvent,
        ConnectEvent,
        ConnectResponse,
        NegotiateOptions,
        UserEvent,
        WebPubSub,
    )

    app = Flask(__name__)
    app.config["WEBPUBSUB_CONNECTION_STRING"] = CONNECTION_STRING
    app.config["WEBPUBSUB_HUB"] = HUB
    app.config["WEBPUBSUB_DIRECT_DISPATCH"] = direct_dispatch
    webpubsub = WebPubSub(app)

    @webpubsub.on_connect
    def connect(event: ConnectEvent) -> ConnectResponse:
        return ConnectResponse(user_id="user1", groups=["lobby"])

    @webpubsub.on_connected
    def connected(event: ConnectedEvent) -> None:
        return None

    @webpubsub.on_user_event("echo")
    def echo(event: UserEvent) -> object:
        return event.data

    @webpubsub.on_negotiate
    def negotiate() -> NegotiateOptions:
        return NegotiateOptions(user_id=USER_ID, roles=ROLES, groups=GROUPS)

    return app


def entra_app(authority: str, tenant_id: str, audience: str, identity: str) -> Flask:
    """The extension with Microsoft Entra ID on the event handler and no access key."""
    from flask_webpubsub import UserEvent, WebPubSub

    app = Flask(__name__)
    app.config.update(
        WEBPUBSUB_ENDPOINT="https://benchmark.webpubsub.azure.com",
        WEBPUBSUB_HUB=HUB,
        WEBPUBSUB_ENTRA_TENANT_ID=tenant_id,
        WEBPUBSUB_ENTRA_AUDIENCE=audience,
        WEBPUBSUB_ENTRA_IDENTITIES=[identity],
        WEBPUBSUB_ENTRA_AUTHORITY=authority,
    )
    webpubsub = WebPubSub(app)

    @webpubsub.on_user_event("echo")
    def echo(event: UserEvent) -> object:
        return event.data

    return app


def sdk_negotiate_app() -> Flask:
    """What a user writes without the extension: a route around the service SDK's token call."""
    from azure.messaging.webpubsubservice import WebPubSubServiceClient

    app = Flask(__name__)
    client = WebPubSubServiceClient.from_connection_string(CONNECTION_STRING, hub=HUB)

    @app.get(NEGOTIATE_PATH)
    def negotiate() -> Response:
        access = client.get_client_access_token(user_id=USER_ID, roles=ROLES, groups=GROUPS)
        return jsonify(dict(access))

    return app


def create_app(name: str) -> Flask:
    """``bare``, ``extension`` or ``direct`` (the extension with direct dispatch)."""
    if name == "bare":
        return bare_app()
    if name in ("extension", "direct"):
        return extension_app(direct_dispatch=name == "direct")
    raise ValueError(f"unknown app {name!r}: use one of {', '.join(APP_NAMES)}")
