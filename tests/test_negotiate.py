"""The negotiate route: who the client is comes from the app, never from the client."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from azure.messaging.webpubsubservice import WebPubSubServiceClient
from flask import Flask, abort, request, session
from flask_login import LoginManager, UserMixin, login_user

from flask_webpubsub import NegotiateOptions, WebPubSub
from flask_webpubsub.core.errors import InvalidTokenError
from flask_webpubsub.core.service import verify_token

from .support import CONNECTION_STRING, HOST, PRIMARY_KEY, make_app


def decode(token: str, audience: str) -> dict[str, Any]:
    return jwt.decode(token, PRIMARY_KEY, algorithms=["HS256"], audience=audience)


AUD = f"https://{HOST}/client/hubs/chat"


def test_anonymous_by_default(app: Flask) -> None:
    response = app.test_client().get("/negotiate")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert set(body) == {"url", "baseUrl", "token"}
    assert body["baseUrl"] == f"wss://{HOST}/client/hubs/chat"
    assert body["url"] == f"{body['baseUrl']}?access_token={body['token']}"
    claims = decode(body["token"], AUD)
    assert set(claims) == {"aud", "iat", "exp"}
    assert claims["exp"] - claims["iat"] == 3600
    assert abs(claims["iat"] - time.time()) < 5


def test_query_parameters_never_set_identity(app: Flask) -> None:
    body = app.test_client().get(
        "/negotiate?id=admin&userId=admin&user_id=admin&role=webpubsub.sendToGroup&group=x"
    ).get_json()
    claims = decode(body["token"], AUD)
    assert "sub" not in claims
    assert "role" not in claims
    assert "webpubsub.group" not in claims


def test_hook_decides_identity_roles_groups_expiry(app: Flask, webpubsub: WebPubSub) -> None:
    @webpubsub.on_negotiate
    def who() -> NegotiateOptions:
        return NegotiateOptions(
            user_id=session.get("name", "guest"),
            roles=["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup.lobby"],
            groups=["lobby"],
            minutes_to_expire=5,
        )

    app.secret_key = "test-secret"
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["name"] = "alice"
    claims = decode(client.get("/negotiate").get_json()["token"], AUD)
    assert claims["sub"] == "alice"
    assert claims["role"] == ["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup.lobby"]
    assert claims["webpubsub.group"] == ["lobby"]
    assert claims["exp"] - claims["iat"] == 300


def test_hook_may_return_a_plain_dict(app: Flask, webpubsub: WebPubSub) -> None:
    @webpubsub.on_negotiate
    def who() -> dict[str, Any]:
        return {"user_id": request.args["as"], "roles": ["r"], "client_protocol": "mqtt"}

    body = app.test_client().get("/negotiate?as=bob").get_json()
    assert body["baseUrl"] == f"wss://{HOST}/clients/mqtt/hubs/chat"
    claims = decode(body["token"], f"https://{HOST}/clients/mqtt/hubs/chat")
    assert claims["sub"] == "bob"
    assert claims["role"] == ["r"]


def test_socketio_client_protocol(app: Flask, webpubsub: WebPubSub) -> None:
    webpubsub.on_negotiate(lambda: {"client_protocol": "socketio"})
    body = app.test_client().get("/negotiate").get_json()
    assert body["baseUrl"] == f"wss://{HOST}/clients/socketio/hubs/chat"


def test_async_hook(app: Flask, webpubsub: WebPubSub) -> None:
    @webpubsub.on_negotiate
    async def who() -> NegotiateOptions:
        return NegotiateOptions(user_id="async-user")

    claims = decode(app.test_client().get("/negotiate").get_json()["token"], AUD)
    assert claims["sub"] == "async-user"


def test_hook_that_aborts(app: Flask, webpubsub: WebPubSub) -> None:
    @webpubsub.on_negotiate
    def who() -> None:
        abort(401)

    assert app.test_client().get("/negotiate").status_code == 401


def test_hook_returning_the_wrong_type_is_a_500(app: Flask, webpubsub: WebPubSub) -> None:
    webpubsub.on_negotiate(lambda: "alice")
    app.testing = False
    assert app.test_client().get("/negotiate").status_code == 500


@pytest.mark.parametrize(
    "options",
    [{"user": "x"}, {"roles": "webpubsub.sendToGroup"}, {"client_protocol": "xmpp"},
     {"minutes_to_expire": 0}],
)
def test_invalid_options_are_rejected(options: dict[str, Any]) -> None:
    with pytest.raises((TypeError, ValueError)):
        NegotiateOptions.from_value(options)


def test_flask_login_identity() -> None:
    app = make_app(SECRET_KEY="test-secret")
    WebPubSub(app)
    login = LoginManager(app)

    class User(UserMixin):  # type: ignore[misc]
        def __init__(self, user_id: str) -> None:
            self.id = user_id

    login.user_loader(User)

    @app.post("/login/<name>")
    def log_in(name: str) -> str:
        login_user(User(name))
        return "ok"

    client = app.test_client()
    assert "sub" not in decode(client.get("/negotiate").get_json()["token"], AUD)
    client.post("/login/carol")
    assert decode(client.get("/negotiate").get_json()["token"], AUD)["sub"] == "carol"


def test_http_endpoint_with_port() -> None:
    app = make_app(
        WEBPUBSUB_CONNECTION_STRING=f"Endpoint=http://127.0.0.1;Port=8080;AccessKey={PRIMARY_KEY};"
        "Version=1.0;"
    )
    WebPubSub(app)
    body = app.test_client().get("/negotiate").get_json()
    assert body["baseUrl"] == "ws://127.0.0.1:8080/client/hubs/chat"
    decode(body["token"], "http://127.0.0.1:8080/client/hubs/chat")


def test_route_can_be_moved_or_disabled() -> None:
    moved = make_app(WEBPUBSUB_NEGOTIATE_PATH="/api/ws/negotiate")
    WebPubSub(moved)
    assert moved.test_client().get("/api/ws/negotiate").status_code == 200
    assert moved.test_client().get("/negotiate").status_code == 404

    off = make_app(WEBPUBSUB_NEGOTIATE_PATH=None)
    WebPubSub(off)
    assert off.test_client().get("/negotiate").status_code == 404


def test_get_client_access_from_code(app: Flask, webpubsub: WebPubSub) -> None:
    with app.app_context():
        access = webpubsub.get_client_access({"user_id": "dave", "groups": ["g"]})
    claims = decode(access["token"], AUD)
    assert claims["sub"] == "dave"
    assert claims["webpubsub.group"] == ["g"]


# -- MQTT clients ---------------------------------------------------------------------------------

MQTT_AUD = f"https://{HOST}/clients/mqtt/hubs/chat"


@pytest.mark.parametrize("protocol", ["mqtt", "MQTT", "Mqtt"])
def test_negotiate_for_mqtt_clients(app: Flask, webpubsub: WebPubSub, protocol: str) -> None:
    """The MQTT endpoint and audience, in any case, as the service SDK spells the protocol."""
    webpubsub.on_negotiate(lambda: NegotiateOptions(
        user_id="device-1", roles=["webpubsub.joinLeaveGroup.sensors"], groups=["sensors"],
        minutes_to_expire=10, client_protocol=protocol,
    ))
    body = app.test_client().get("/negotiate").get_json()
    assert body["baseUrl"] == f"wss://{HOST}/clients/mqtt/hubs/chat"
    assert body["url"] == f"{body['baseUrl']}?access_token={body['token']}"
    assert jwt.get_unverified_header(body["token"]) == {"alg": "HS256", "typ": "JWT"}
    claims = decode(body["token"], MQTT_AUD)
    assert set(claims) == {"aud", "iat", "exp", "sub", "role", "webpubsub.group"}
    assert (claims["aud"], claims["sub"]) == (MQTT_AUD, "device-1")
    assert claims["role"] == ["webpubsub.joinLeaveGroup.sensors"]
    assert claims["webpubsub.group"] == ["sensors"]
    assert claims["exp"] - claims["iat"] == 600
    # The token is for the MQTT endpoint only, as the service checks it.
    assert verify_token(body["token"], [PRIMARY_KEY], MQTT_AUD)["sub"] == "device-1"
    with pytest.raises(InvalidTokenError, match="audience"):
        verify_token(body["token"], [PRIMARY_KEY], AUD)


def test_mqtt_tokens_are_the_service_sdks(app: Flask, webpubsub: WebPubSub) -> None:
    """The same URL and claims as ``get_client_access_token(client_protocol="MQTT")``."""
    options = {"user_id": "device-2", "roles": ["webpubsub.sendToGroup"],
               "groups": ["a", "b"], "minutes_to_expire": 5}
    sdk = WebPubSubServiceClient.from_connection_string(CONNECTION_STRING, hub="chat")
    expected = sdk.get_client_access_token(client_protocol="MQTT", **options)
    with app.app_context():
        ours = webpubsub.get_client_access({**options, "client_protocol": "mqtt"})
    assert ours["baseUrl"] == expected["baseUrl"]
    sdk_claims = decode(expected["token"], MQTT_AUD)
    our_claims = decode(ours["token"], MQTT_AUD)
    for claims in (sdk_claims, our_claims):
        claims["lifetime"] = claims.pop("exp") - claims.pop("iat")
    assert our_claims == sdk_claims
    assert jwt.get_unverified_header(ours["token"]) == jwt.get_unverified_header(
        expected["token"]
    )


def test_one_app_negotiates_for_browsers_and_devices(app: Flask, webpubsub: WebPubSub) -> None:
    """The hook chooses the protocol, here from the route's query; the identity stays the
    app's."""

    @webpubsub.on_negotiate
    def negotiate() -> NegotiateOptions:
        protocol = "mqtt" if request.args.get("client") == "mqtt" else "default"
        return NegotiateOptions(user_id="alice", client_protocol=protocol)

    browser = app.test_client().get("/negotiate").get_json()
    device = app.test_client().get("/negotiate?client=mqtt").get_json()
    assert browser["baseUrl"] == f"wss://{HOST}/client/hubs/chat"
    assert device["baseUrl"] == f"wss://{HOST}/clients/mqtt/hubs/chat"
    assert decode(device["token"], MQTT_AUD)["sub"] == "alice"
    with pytest.raises(jwt.InvalidAudienceError):
        decode(device["token"], AUD)
