"""Microsoft Entra ID on the event handler (``WEBPUBSUB_ENTRA_*``): with access keys disabled the
service sends a bearer token and no ``ce-signature``. Every event needs a valid token, checked
before the body is read; the app fails closed when it has no way to authenticate the service.

The tenant is a real local issuer (:class:`LocalEntraIssuer`) whose OpenID metadata and keys
are served over HTTP on loopback; the core's own checks are in ``test_entra.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, jsonify
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_webpubsub import (
    AuthenticationUnavailableError,
    BearerTokenError,
    ConfigurationError,
    ServiceAuthenticationError,
    UserEvent,
    WebPubSub,
)
from flask_webpubsub.core.entra_issuer import LocalEntraIssuer
from flask_webpubsub.core.service import build_event_headers
from flask_webpubsub.testing import WebPubSubTestClient
from tests.support import ENDPOINT, PRIMARY_KEY, free_port, make_app, serve

TENANT = "3f6b2a1c-9d4e-4b7a-8c2d-5e1f0a9b7c6d"
MI_OID = "0b1c2d3e-4f5a-4b6c-9d7e-8f9a0b1c2d3e"
OTHER_OID = "deadbeef-0000-4000-8000-000000000000"
AUDIENCE = "api://contoso-chat-handler"


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalEntraIssuer]:
    """The tenant, served by a small app of its own over real HTTP."""
    port = free_port()
    tenant = LocalEntraIssuer(f"http://127.0.0.1:{port}", tenant_id=TENANT)
    authority = Flask("authority")

    @authority.get("/<path:path>")
    def document(path: str) -> Any:
        found = tenant.document("/" + path)
        return ("", 404) if found is None else jsonify(found)

    with serve(authority, port=port):
        yield tenant


def entra_app(issuer: LocalEntraIssuer, **config: Any) -> tuple[Flask, list[Any]]:
    """An app with Entra ID and no access key, as with access keys disabled."""
    app = make_app(
        WEBPUBSUB_CONNECTION_STRING=None,
        WEBPUBSUB_ENDPOINT=ENDPOINT,
        WEBPUBSUB_ENTRA_TENANT_ID=TENANT,
        WEBPUBSUB_ENTRA_AUDIENCE=AUDIENCE,
        WEBPUBSUB_ENTRA_IDENTITIES=[MI_OID],
        WEBPUBSUB_ENTRA_AUTHORITY=issuer.authority,
        **config,
    )
    seen: list[Any] = []
    webpubsub = WebPubSub(app)

    @webpubsub.on_user_event("echo")
    def echo(event: UserEvent) -> Any:
        seen.append(event.data)
        return event.data

    return app, seen


def event(authorization: str | None, *, keys: list[str] | None = None) -> dict[str, str]:
    headers = build_event_headers(
        "echo", hub="chat", connection_id="c1", keys=keys or [], content_type="text/plain"
    )
    if authorization is not None:
        headers["Authorization"] = authorization
    return headers


def post(app: Flask, headers: dict[str, str], body: bytes = b"hi") -> tuple[int, bytes]:
    result = WebPubSubTestClient(app).post(headers, body)
    return result.status, result.body


def test_the_services_token_lets_the_event_through(issuer: LocalEntraIssuer) -> None:
    app, seen = entra_app(issuer)
    token = issuer.issue(AUDIENCE, object_id=MI_OID)
    assert post(app, event(f"Bearer {token}")) == (200, b"hi")
    assert seen == ["hi"]


def test_over_real_http(issuer: LocalEntraIssuer) -> None:
    app, seen = entra_app(issuer)
    token = issuer.issue(AUDIENCE, object_id=MI_OID, version=2)
    with serve(app) as server:
        events = WebPubSubTestClient(base_url=f"http://127.0.0.1:{server.server_port}", hub="chat")
        assert events.post(event(f"Bearer {token}"), b"hi").status == 200
        assert events.post(event(None), b"hi").status == 401
    assert seen == ["hi"]


def forged_tokens(issuer: LocalEntraIssuer) -> dict[str, str | None]:
    other = LocalEntraIssuer(issuer.authority, tenant_id=TENANT)
    valid = issuer.issue(AUDIENCE, object_id=MI_OID)
    head, payload, _ = valid.split(".")
    return {
        "no token": None,
        "not bearer": f"Basic {valid}",
        "malformed": "Bearer not.a.jwt",
        "wrong audience": "Bearer " + issuer.issue("api://another-app", object_id=MI_OID),
        "wrong identity": "Bearer " + issuer.issue(AUDIENCE, object_id=OTHER_OID),
        "expired": "Bearer " + issuer.issue(AUDIENCE, object_id=MI_OID, lifetime=-3600),
        "delegated": "Bearer " + issuer.issue_delegated(AUDIENCE, object_id=MI_OID),
        "alg none": f"Bearer {head}.{payload}.",
        "another key, same kid": "Bearer " + other.sign(
            {"aud": AUDIENCE, "oid": MI_OID, "sub": MI_OID}, headers={"kid": issuer.kid}
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "no token", "not bearer", "malformed", "wrong audience", "wrong identity", "expired",
        "delegated", "alg none", "another key, same kid",
    ],
)
def test_anything_else_is_refused_and_no_handler_runs(
    issuer: LocalEntraIssuer, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    app, seen = entra_app(issuer)
    authorization = forged_tokens(issuer)[case]
    with caplog.at_level(logging.DEBUG):
        assert post(app, event(authorization)) == (401, b"Bearer token validation failed.")
    assert seen == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("bearer token is not the service's" in w for w in warnings)
    if authorization:
        assert authorization.split()[-1] not in caplog.text


def test_the_error_is_an_http_error_apps_can_handle(issuer: LocalEntraIssuer) -> None:
    app, _ = entra_app(issuer)
    handled: list[str] = []

    @app.errorhandler(ServiceAuthenticationError)
    def audit(error: ServiceAuthenticationError) -> Any:
        handled.append(type(error).__name__)
        return error

    assert post(app, event(None))[0] == 401
    assert handled == [BearerTokenError.__name__]


def test_unreachable_keys_refuse_with_503(caplog: pytest.LogCaptureFixture) -> None:
    nowhere = LocalEntraIssuer(f"http://127.0.0.1:{free_port()}", tenant_id=TENANT)
    app, seen = entra_app(nowhere)
    token = nowhere.issue(AUDIENCE, object_id=MI_OID)
    with caplog.at_level(logging.ERROR):
        status, body = post(app, event(f"Bearer {token}"))
    assert (status, body) == (503, AuthenticationUnavailableError.description.encode())
    assert seen == []
    assert "cannot be checked" in caplog.text
    assert token not in caplog.text


def test_with_keys_too_both_checks_apply(issuer: LocalEntraIssuer) -> None:
    app, seen = entra_app(issuer, WEBPUBSUB_ACCESS_KEY=PRIMARY_KEY)
    token = f"Bearer {issuer.issue(AUDIENCE, object_id=MI_OID)}"
    assert post(app, event(token, keys=[PRIMARY_KEY]))[0] == 200
    assert post(app, event(None, keys=[PRIMARY_KEY]))[0] == 401
    assert post(app, event(token, keys=["another-key-of-32-characters-at-least"]))[0] == 401
    assert post(app, event(token))[0] == 401  # no ce-signature
    assert len(seen) == 1


def test_the_token_is_checked_before_the_body_is_read(issuer: LocalEntraIssuer) -> None:
    app, _ = entra_app(issuer)

    class Exploding:
        def read(self, *args: Any) -> bytes:
            raise AssertionError("the body was read before the token was checked")

    with app.test_request_context(
        "/eventhandler", method="POST", headers=event(None), data=b"hi"
    ) as context:
        context.request.environ["wsgi.input"] = Exploding()
        response = app.full_dispatch_request()
    assert response.status_code == 401


@settings(max_examples=60, deadline=None)
@given(claims=st.dictionaries(st.sampled_from(["aud", "oid", "sub", "tid", "exp", "iss"]),
                              st.text(max_size=40)))
def test_no_token_the_tenants_key_did_not_sign_reaches_a_handler(
    issuer: LocalEntraIssuer, claims: dict[str, str]
) -> None:
    app, seen = entra_app(issuer)
    stranger = _stranger(issuer.authority)
    token = stranger.sign(
        {"aud": AUDIENCE, "oid": MI_OID, "sub": MI_OID, **claims}, headers={"kid": issuer.kid}
    )
    assert post(app, event(f"Bearer {token}"))[0] == 401
    assert seen == []


_STRANGERS: dict[str, LocalEntraIssuer] = {}


def _stranger(authority: str) -> LocalEntraIssuer:
    """Another RSA key that claims to be the tenant (one, reused: key generation is slow)."""
    if authority not in _STRANGERS:
        _STRANGERS[authority] = LocalEntraIssuer(authority, tenant_id=TENANT)
    return _STRANGERS[authority]


# --- failing closed at start-up -----------------------------------------------------------------


def test_an_app_with_no_way_to_authenticate_the_service_refuses_to_start() -> None:
    app = make_app(WEBPUBSUB_CONNECTION_STRING=None, WEBPUBSUB_ENDPOINT=ENDPOINT)
    with pytest.raises(ConfigurationError) as info:
        WebPubSub(app)
    message = str(info.value)
    assert "WEBPUBSUB_ACCESS_KEY" in message
    assert "WEBPUBSUB_ENTRA_TENANT_ID" in message
    assert "WEBPUBSUB_EVENT_HANDLER_PATH = None" in message


def test_an_app_that_serves_no_events_starts_without_either() -> None:
    app = make_app(
        WEBPUBSUB_CONNECTION_STRING=None,
        WEBPUBSUB_ENDPOINT=ENDPOINT,
        WEBPUBSUB_EVENT_HANDLER_PATH=None,
    )
    WebPubSub(app)
    assert app.extensions["webpubsub"].settings.event_handler_path is None
    assert app.test_client().post("/eventhandler", data=b"x").status_code == 404
    assert "/negotiate" in {rule.rule for rule in app.url_map.iter_rules()}


def test_the_explicit_opt_out_starts_with_a_loud_warning(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(
        WEBPUBSUB_CONNECTION_STRING=None,
        WEBPUBSUB_ENDPOINT=ENDPOINT,
        WEBPUBSUB_VERIFY_SIGNATURE=False,
    )
    with caplog.at_level(logging.WARNING, "flask_webpubsub"):
        WebPubSub(app)
    assert "nothing else authenticates the service" in caplog.text


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        (
            {"WEBPUBSUB_ENTRA_TENANT_ID": TENANT},
            "WEBPUBSUB_ENTRA_AUDIENCE, WEBPUBSUB_ENTRA_IDENTITIES are not set",
        ),
        ({"WEBPUBSUB_ENTRA_TENANT_ID": TENANT, "WEBPUBSUB_ENTRA_AUDIENCE": AUDIENCE},
         "WEBPUBSUB_ENTRA_IDENTITIES is not set"),
        ({"WEBPUBSUB_ENTRA_AUDIENCE": AUDIENCE, "WEBPUBSUB_ENTRA_IDENTITIES": [MI_OID]},
         "WEBPUBSUB_ENTRA_TENANT_ID is not set"),
    ],
)
def test_partial_entra_settings_say_what_is_missing(given: dict[str, Any], missing: str) -> None:
    app = make_app(WEBPUBSUB_CONNECTION_STRING=None, WEBPUBSUB_ENDPOINT=ENDPOINT, **given)
    with pytest.raises(ConfigurationError, match=missing):
        WebPubSub(app)


def test_a_tenant_that_is_not_a_guid_is_refused() -> None:
    app = make_app(
        WEBPUBSUB_ENTRA_TENANT_ID="common",
        WEBPUBSUB_ENTRA_AUDIENCE=AUDIENCE,
        WEBPUBSUB_ENTRA_IDENTITIES=[MI_OID],
    )
    with pytest.raises(ConfigurationError, match="Microsoft Entra ID settings"):
        WebPubSub(app)
