"""The emulator as Microsoft Entra ID too (``identity=``, ``--entra``): the whole Entra set-up
runs locally. The real extension, with no access key, validates the emulator's bearer tokens on
every event (keys fetched from the emulator's OpenID metadata) and talks to the REST API with
an Entra token of the emulator's tenant (negotiate, sends)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.messaging.webpubsubservice import WebPubSubServiceClient
from flask import Flask, request
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from flask_webpubsub import (
    ConnectEvent,
    ConnectResponse,
    NegotiateOptions,
    UserEvent,
    WebPubSub,
)
from flask_webpubsub.emulator import EmulatorThread
from flask_webpubsub.emulator.identity import EmulatorCredential, IdentityProvider, client_factory
from tests.support import free_port, wait_for

from .conftest import JSON, AppServer, subprotocols

SECRET = "local-client-secret-for-tests"


@dataclass
class Seen:
    headers: list[dict[str, str]] = field(default_factory=list)
    connects: list[str | None] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def entra_app(settings: dict[str, Any], credential: Any, seen: Seen) -> Flask:
    """The app as it runs with access keys disabled: an endpoint, the tenant's settings, a
    credential for the REST API; no key anywhere."""
    app = Flask("entra_app")
    app.config.update(settings, WEBPUBSUB_HUB="chat", WEBPUBSUB_CREDENTIAL=credential,
                      WEBPUBSUB_CLIENT_FACTORY=client_factory)
    webpubsub = WebPubSub(app)

    @app.before_request
    def record() -> None:
        if request.path == "/eventhandler" and request.method == "POST":
            with seen.lock:
                seen.headers.append({k.lower(): v for k, v in request.headers.items()})

    @webpubsub.on_negotiate
    def negotiate() -> NegotiateOptions:
        return NegotiateOptions(user_id=request.args["userId"])

    @webpubsub.on_connect
    def on_connect(event: ConnectEvent) -> ConnectResponse:
        with seen.lock:
            seen.connects.append(event.user_id)
        return ConnectResponse(groups=["lobby"])

    @webpubsub.on_user_event("shout")
    def shout(event: UserEvent) -> str:
        assert isinstance(event.data, str)
        webpubsub.client.send_to_group("lobby", f"{event.user_id} shouts {event.data}",
                                       content_type="text/plain")
        return "shouted"

    return app


@dataclass
class EntraStack:
    emulator: EmulatorThread
    identity: IdentityProvider
    server: AppServer
    seen: Seen

    def negotiate(self, user: str) -> str:
        with urllib.request.urlopen(f"{self.server.url}/negotiate?userId={user}",
                                    timeout=10) as response:
            url: str = json.load(response)["url"]
        return url


@pytest.fixture
def entra() -> Iterator[EntraStack]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    identity = IdentityProvider(client_secret=SECRET)
    credential = EmulatorCredential(identity.tenant_id, identity.client_id, SECRET, authority=url)
    seen = Seen()
    server = AppServer(entra_app(identity.app_settings(url), credential, seen))
    emulator = EmulatorThread(port=port, upstream=f"{server.url}/eventhandler", identity=identity,
                              upstream_retry_delays=())
    try:
        emulator.start()
        yield EntraStack(emulator, identity, server, seen)
    finally:
        emulator.stop()
        server.stop()


def test_events_carry_a_bearer_token_and_the_app_uses_the_rest_api_with_its_own(
    entra: EntraStack,
) -> None:
    url = entra.negotiate("alice")  # the app's REST call: :generateToken with an Entra token
    assert url.startswith(entra.emulator.url.replace("http", "ws", 1) + "/client/hubs/chat?")
    with connect(url, subprotocols=subprotocols(JSON)) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["userId"] == "alice"
        ws.send(json.dumps({"type": "event", "event": "shout", "dataType": "text",
                            "data": "hi", "ackId": 1}))
        received = [json.loads(ws.recv(timeout=10)) for _ in range(3)]
    group_message = next(m for m in received if m.get("from") == "group" or
                         m.get("data") == "alice shouts hi")
    assert group_message["data"] == "alice shouts hi"  # the app's REST send reached the group
    assert {"type": "ack", "ackId": 1, "success": True} in received
    assert entra.seen.connects == ["alice"]
    wait_for(lambda: len(entra.seen.headers) >= 3, what="the connected event")
    for headers in entra.seen.headers:
        assert "ce-signature" not in headers  # local auth is disabled
        scheme, token = headers["authorization"].split()
        assert scheme == "Bearer"
    claims = _claims(token)
    assert claims["aud"] == entra.identity.audience
    assert claims["oid"] == claims["sub"] == entra.identity.managed_identity
    assert claims["tid"] == entra.identity.tenant_id
    assert claims["iss"] == f"{entra.emulator.url}/{entra.identity.tenant_id}/"


def _claims(token: str) -> dict[str, Any]:
    import base64

    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def test_an_app_that_trusts_another_identity_refuses_the_emulators_events() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    identity = IdentityProvider(client_secret=SECRET)
    settings = identity.app_settings(url)
    settings["WEBPUBSUB_ENTRA_IDENTITIES"] = ["deadbeef-0000-4000-8000-000000000000"]
    credential = EmulatorCredential(identity.tenant_id, identity.client_id, SECRET, authority=url)
    seen = Seen()
    server = AppServer(entra_app(settings, credential, seen))
    try:
        with EmulatorThread(port=port, upstream=f"{server.url}/eventhandler", identity=identity,
                            upstream_retry_delays=()) as emulator:
            client = client_factory(endpoint=emulator.url, hub="chat", credential=credential)
            token = client.get_client_access_token(user_id="mallory")["url"]
            with pytest.raises(InvalidStatus) as refused:
                connect(token)
    finally:
        server.stop()
    assert refused.value.response.status_code == 401
    assert seen.connects == []


def test_the_rest_api_takes_only_the_tenants_tokens(entra: EntraStack) -> None:
    emulator = entra.emulator.emulator
    with pytest.raises(RuntimeError, match="local auth is disabled"):
        _ = emulator.connection_string
    # An access-key token: refused, even with the emulator's own (internal) key.
    keyed = WebPubSubServiceClient(endpoint=emulator.url, hub="chat",
                                   credential=AzureKeyCredential(emulator.access_keys[0]))
    with pytest.raises(HttpResponseError) as refused:
        keyed.send_to_all("x", content_type="text/plain")
    assert refused.value.status_code == 401
    assert "access-key tokens are refused" in str(refused.value)
    # The app's credential works; the SDK as it comes refuses to send a bearer token over http.
    good = client_factory(endpoint=emulator.url, hub="chat", credential=entra.emulator.credential())
    good.send_to_all("x", content_type="text/plain")
    plain = WebPubSubServiceClient(endpoint=emulator.url, hub="chat",
                                   credential=entra.emulator.credential())
    with pytest.raises(Exception, match="non-TLS"):
        plain.send_to_all("x", content_type="text/plain")
    # Another tenant's token (same ids, another key): refused.
    stranger = IdentityProvider(client_secret=SECRET)
    stranger.bind(emulator.url)
    forged = stranger.issuer.issue("https://webpubsub.azure.com", object_id=stranger.client_id,
                                   app_id=stranger.client_id)
    status, _ = _post(f"{emulator.url}/api/hubs/chat/:send?api-version=2024-12-01",
                      b"x", {"Authorization": f"Bearer {forged}", "Content-Type": "text/plain"})
    assert status == 401


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw else {}


def test_the_token_endpoint_issues_only_to_the_app_for_the_service(entra: EntraStack) -> None:
    identity = entra.identity
    endpoint = f"{entra.emulator.url}/{identity.tenant_id}/oauth2/v2.0/token"
    form = {"grant_type": "client_credentials", "client_id": identity.client_id,
            "client_secret": SECRET, "scope": "https://webpubsub.azure.com/.default"}

    def token(**changes: str) -> tuple[int, dict[str, Any]]:
        body = urllib.parse.urlencode({**form, **changes}).encode()
        return _post(endpoint, body, {"Content-Type": "application/x-www-form-urlencoded"})

    status, answer = token()
    assert (status, answer["token_type"], answer["expires_in"]) == (200, "Bearer", 3600)
    assert token(client_secret="wrong-secret-of-some-length")[1]["error"] == "invalid_client"
    assert token(client_id=identity.managed_identity)[0] == 401
    assert token(scope="api://something-else/.default")[1]["error"] == "invalid_scope"
    assert token(grant_type="password")[1]["error"] == "unsupported_grant_type"
    with pytest.raises(ClientAuthenticationError):
        EmulatorCredential(identity.tenant_id, identity.client_id, "wrong-secret-of-length",
                           authority=entra.emulator.url).get_token(
            "https://webpubsub.azure.com/.default")
    # The metadata the app reads, shaped like Entra's, at the authority.
    with urllib.request.urlopen(f"{entra.emulator.url}/{identity.tenant_id}/v2.0/.well-known/"
                                "openid-configuration", timeout=5) as response:
        metadata = json.load(response)
    assert metadata["issuer"] == f"{entra.emulator.url}/{identity.tenant_id}/v2.0"
    assert "secret" not in repr(entra.emulator.credential()).lower()


def test_one_command_runs_the_whole_entra_set_up() -> None:
    """``--entra`` prints the app's settings and its credential's environment; an app started
    with them (and nothing else) works end to end."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    defaults = IdentityProvider(client_secret=SECRET)  # the same fixed ids as the command's
    seen = Seen()
    credential = EmulatorCredential(defaults.tenant_id, defaults.client_id, SECRET, authority=url)
    server = AppServer(entra_app(defaults.app_settings(url), credential, seen))
    process = subprocess.Popen(
        [sys.executable, "-m", "flask_webpubsub.emulator", "--port", str(port), "--entra",
         "--entra-client-secret", SECRET, "--upstream", f"{server.url}/eventhandler",
         "--upstream-retry-delays", ""],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith(f"Web PubSub emulator on {url}")
        printed = dict(process.stdout.readline().strip().split("=", 1) for _ in range(9))
        assert printed == {
            "WEBPUBSUB_ENDPOINT": url,
            "WEBPUBSUB_ENTRA_TENANT_ID": defaults.tenant_id,
            "WEBPUBSUB_ENTRA_AUDIENCE": defaults.audience,
            "WEBPUBSUB_ENTRA_IDENTITIES": json.dumps([defaults.managed_identity]),
            "WEBPUBSUB_ENTRA_AUTHORITY": url,
            "AZURE_TENANT_ID": defaults.tenant_id,
            "AZURE_CLIENT_ID": defaults.client_id,
            "AZURE_CLIENT_SECRET": SECRET,
            "AZURE_AUTHORITY_HOST": url,
        }
        assert EmulatorCredential.from_environment(printed).client_id == defaults.client_id
        with urllib.request.urlopen(f"{server.url}/negotiate?userId=carol",
                                    timeout=10) as response:
            client_url = json.load(response)["url"]
        with connect(client_url, subprotocols=subprotocols(JSON)) as ws:
            assert json.loads(ws.recv(timeout=10))["userId"] == "carol"
        assert seen.connects == ["carol"]
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=10)
        server.stop()
    assert process.returncode == 0
    assert SECRET not in errors
