"""Entra ID bearer tokens on upstream requests: :class:`EntraTokenValidator` against a real HTTP
server on 127.0.0.1 that serves :class:`LocalEntraIssuer`'s metadata and keys and counts every
request, so each test can say exactly what was fetched."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import re
import socket
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from flask_webpubsub.core.entra import (
    MAX_DOCUMENT_SIZE,
    MAX_TOKEN_LENGTH,
    EntraTokenError,
    EntraTokenValidator,
    SigningKeysUnavailableError,
)
from flask_webpubsub.core.entra_issuer import LocalEntraIssuer

TENANT = "3f6b2a1c-9d4e-4b7a-8c2d-5e1f0a9b7c6d"
OTHER_TENANT = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
#: The Web PubSub resource's managed identity: its service principal's object id and client id.
MI_OID = "0b1c2d3e-4f5a-4b6c-9d7e-8f9a0b1c2d3e"
MI_APPID = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
OTHER_OID = "deadbeef-0000-4000-8000-00000000beef"
#: The event handler's audience: an App ID URI, and the API app's client id.
API_URI = "api://contoso-chat-handler"
API_CLIENT_ID = "c0ffee00-1234-4567-89ab-cdef01234567"

JWT_TEXT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}")
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
SETTINGS = settings(max_examples=100, deadline=None)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: object) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def bearer(token: str) -> str:
    return f"Bearer {token}"


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    pad = "=" * 4
    return (
        json.loads(base64.urlsafe_b64decode(header + pad)),
        json.loads(base64.urlsafe_b64decode(payload + pad)),
        signature,
    )


# --- a real HTTP server serving the issuer's documents ------------------------------------------


class EntraServer:
    """``ThreadingHTTPServer`` on 127.0.0.1, port 0. Serves ``documents(path)`` as JSON (404 for
    None) unless ``overrides`` holds the path; counts requests per path in ``hits``."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.overrides: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        self.documents: Callable[[str], dict[str, Any] | None] = lambda path: None
        self.delay = 0.0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._running = True

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        path = urllib.parse.urlsplit(request.path).path
        with self._lock:
            self.hits[path] += 1
        if self.delay:
            time.sleep(self.delay)
        if path in self.overrides:
            status, body, headers = self.overrides[path]
        else:
            document = self.documents(path)
            status, headers = (404, {}) if document is None else (200, {})
            body = json.dumps(document if document is not None else {}).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            request.send_header(name, value)
        request.end_headers()
        request.wfile.write(body)

    def override(self, url: str, status: int, body: bytes, **headers: str) -> None:
        self.overrides[urllib.parse.urlsplit(url).path] = (status, body, headers)

    def count(self, url: str) -> int:
        with self._lock:
            return self.hits[urllib.parse.urlsplit(url).path]

    def total(self) -> int:
        with self._lock:
            return sum(self.hits.values())

    def stop(self) -> None:
        if self._running:
            self._running = False
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join()


class Clock:
    """The validator's clock, moved by hand; starts at the real time."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def loads(server: EntraServer, issuer: LocalEntraIssuer) -> dict[str, int]:
    """How many times each of the issuer's four documents was fetched."""
    return {
        "v1 metadata": server.count(issuer.metadata_url(1)),
        "v2 metadata": server.count(issuer.metadata_url(2)),
        "v1 keys": server.count(issuer.jwks_url(1)),
        "v2 keys": server.count(issuer.jwks_url(2)),
    }


def loaded(times: int) -> dict[str, int]:
    return dict.fromkeys(("v1 metadata", "v2 metadata", "v1 keys", "v2 keys"), times)


@functools.cache
def rsa_key(name: str) -> rsa.RSAPrivateKey:
    """One 2048-bit key per name for the whole run: generating one per test is slow."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def refused_url() -> str:
    """A loopback URL nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def server() -> Iterator[EntraServer]:
    entra = EntraServer()
    yield entra
    entra.stop()


@pytest.fixture
def issuer(server: EntraServer) -> LocalEntraIssuer:
    local = LocalEntraIssuer(server.url, tenant_id=TENANT, signing_key=rsa_key("tenant"))
    server.documents = local.document
    return local


@pytest.fixture
def clock() -> Clock:
    return Clock()


MakeValidator = Callable[..., EntraTokenValidator]


@pytest.fixture
def make_validator(server: EntraServer, clock: Clock) -> MakeValidator:
    def make(**overrides: Any) -> EntraTokenValidator:
        options: dict[str, Any] = {
            "tenant_id": TENANT,
            "audiences": [API_URI, API_CLIENT_ID],
            "identities": [MI_OID],
            "authority": server.url,
            "clock": clock,
            "fetch_timeout": 2.0,
        }
        options.update(overrides)
        return EntraTokenValidator(**options)

    return make


@pytest.fixture
def validator(make_validator: MakeValidator) -> EntraTokenValidator:
    return make_validator()


@pytest.fixture
def issue(issuer: LocalEntraIssuer, clock: Clock) -> Callable[..., str]:
    """The issuer's ``issue`` with this test's defaults: the MI, the URI audience, the clock."""

    def make(audience: str = API_URI, **options: Any) -> str:
        options.setdefault("object_id", MI_OID)
        options.setdefault("app_id", MI_APPID)
        options.setdefault("now", clock.now)
        return issuer.issue(audience, **options)

    return make


def refused(validator: EntraTokenValidator, authorization: str | None, match: str) -> str:
    """Assert a 401 whose reason matches ``match`` and shows no token; return the reason."""
    with pytest.raises(EntraTokenError, match=match) as info:
        validator.validate(authorization)
    reason = str(info.value)
    assert info.value.reason == reason
    assert info.value.status == 401
    assert "\n" not in reason
    assert not JWT_TEXT.search(reason)
    token = (authorization or "").partition(" ")[2].strip()
    if len(token) >= 16:
        assert token not in reason
    return reason


# --- accepted tokens ----------------------------------------------------------------------------


def test_valid_v1_token(
    server: EntraServer,
    issuer: LocalEntraIssuer,
    validator: EntraTokenValidator,
    issue: Callable[..., str],
) -> None:
    claims = validator.validate(bearer(issue()))
    assert claims["oid"] == MI_OID
    assert claims["appid"] == MI_APPID
    assert claims["iss"] == issuer.issuer(1)
    assert claims["ver"] == "1.0"
    assert loads(server, issuer) == loaded(1)


def test_valid_v2_token_with_client_id_audience(
    server: EntraServer,
    issuer: LocalEntraIssuer,
    validator: EntraTokenValidator,
    issue: Callable[..., str],
) -> None:
    claims = validator.validate(bearer(issue(API_CLIENT_ID, version=2)))
    assert claims["iss"] == issuer.issuer(2)
    assert claims["azp"] == MI_APPID
    assert claims["aud"] == API_CLIENT_ID


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "BeArEr"])
def test_scheme_is_case_insensitive(
    validator: EntraTokenValidator, issue: Callable[..., str], scheme: str
) -> None:
    assert validator.validate(f"{scheme} {issue()}")["oid"] == MI_OID


def test_keys_are_fetched_once_and_reused(
    server: EntraServer,
    issuer: LocalEntraIssuer,
    make_validator: MakeValidator,
    issue: Callable[..., str],
) -> None:
    validator = make_validator(cache_size=0)
    for version in (1, 2, 1, 2):
        validator.validate(bearer(issue(API_CLIENT_ID, version=version)))
    assert loads(server, issuer) == loaded(1)


def test_nothing_is_fetched_before_the_first_token(
    server: EntraServer, issuer: LocalEntraIssuer, make_validator: MakeValidator
) -> None:
    make_validator()
    assert server.total() == 0


# --- the header -----------------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, ""])
def test_no_header(validator: EntraTokenValidator, authorization: str | None) -> None:
    refused(validator, authorization, "^no Authorization header$")


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwYXNzd29yZA==", "Token a.b.c", "Bearer", "Bearer   ", "Bearera.b.c", "JWT"],
)
def test_not_a_bearer_token(
    server: EntraServer, validator: EntraTokenValidator, authorization: str
) -> None:
    refused(validator, authorization, "not a Bearer token|has no token")
    assert server.total() == 0


@pytest.mark.parametrize(
    ("token", "match"),
    [
        ("abc", "not a JWT"),
        ("a.b", "not a JWT"),
        ("a.b.c.d", "not a JWT"),
        ("a..c", "not a JWT"),
        ("!!!.###.$$$", "not a JWT"),
        ("a.b.c d", "not a JWT"),
        (f"{b64(b'not json')}.e30.AAAA", "header is not base64url of a JSON object"),
        (f"{b64json([1, 2])}.e30.AAAA", "header is not base64url of a JSON object"),
        (f"{b64(b'{' * 5000)}.e30.AAAA", "header is not base64url of a JSON object"),
        (f"{b64(b'[' * 11000)}.e30.AAAA", "header is not base64url of a JSON object"),
        (f"{b64json({'alg': 'RS256'})}.e30.AAAA", "no valid key id"),
        (f"{b64json({'alg': 'RS256', 'kid': 7})}.e30.AAAA", "no valid key id"),
        (f"{b64json({'alg': 'RS256', 'kid': 'k' * 200})}.e30.AAAA", "no valid key id"),
        (f"{b64json({'alg': 'RS256', 'kid': 'k'})}.e31.AAAA", "not base64url"),
        (f"{b64json({'alg': 'RS256', 'kid': 'k'})}.e30.AAAAA", "not base64url"),
    ],
)
def test_malformed_jwt(
    server: EntraServer, validator: EntraTokenValidator, token: str, match: str
) -> None:
    refused(validator, bearer(token), match)
    assert server.total() == 0


def test_oversize_token_is_refused_before_parsing_or_fetching(
    server: EntraServer, validator: EntraTokenValidator, issue: Callable[..., str]
) -> None:
    big = issue(extra_claims={"padding": "x" * MAX_TOKEN_LENGTH})
    refused(validator, bearer(big), "longer than")
    refused(validator, "Bearer " + "a" * MAX_TOKEN_LENGTH, "longer than")
    assert server.total() == 0


# --- algorithms and keys the token brings ----------------------------------------------------


@pytest.mark.parametrize(
    "alg", ["none", "None", "NONE", "HS256", "RS384", "PS256", "ES256", "rs256"]
)
def test_only_rs256(
    server: EntraServer,
    issuer: LocalEntraIssuer,
    validator: EntraTokenValidator,
    issue: Callable[..., str],
    alg: str,
) -> None:
    # Signed by the tenant's real key, so only the header's alg is wrong.
    reason = refused(validator, bearer(issue(headers={"alg": alg})), "algorithm")
    assert f"'{alg}'" in reason
    assert server.total() == 0  # refused before any key is looked up


def test_alg_none_unsigned(
    server: EntraServer, validator: EntraTokenValidator, issue: Callable[..., str]
) -> None:
    _, payload, _ = issue().split(".")
    header = b64json({"typ": "JWT", "alg": "none"})
    refused(validator, bearer(f"{header}.{payload}."), "not a JWT")
    refused(validator, bearer(f"{header}.{payload}.AAAA"), "algorithm 'none'")
    header = b64json({"typ": "JWT"})
    refused(validator, bearer(f"{header}.{payload}.AAAA"), "algorithm 'null'")
    assert server.total() == 0


def test_hs256_with_the_public_key_as_secret(
    server: EntraServer,
    issuer: LocalEntraIssuer,
    validator: EntraTokenValidator,
    issue: Callable[..., str],
) -> None:
    validator.validate(bearer(issue()))  # keys cached: the real key is known
    _, payload, _ = issue().split(".")
    for alg in ("HS256", "RS256"):
        header = b64json({"typ": "JWT", "alg": alg, "kid": issuer.kid})
        mac = hmac.digest(issuer.public_key_pem(), f"{header}.{payload}".encode(), "sha256")
        match = "algorithm 'HS256'" if alg == "HS256" else "signature is not valid"
        refused(validator, bearer(f"{header}.{payload}.{b64(mac)}"), match)


@pytest.fixture
def forger(server: EntraServer) -> LocalEntraIssuer:
    """Same authority and tenant, another key: an attacker who can mint well-shaped tokens."""
    return LocalEntraIssuer(server.url, tenant_id=TENANT, signing_key=rsa_key("forger"))


@pytest.mark.parametrize("name", ["jwk", "jku", "x5u", "x5c"])
def test_a_token_bringing_its_own_key_is_refused(
    server: EntraServer,
    issuer: LocalEntraIssuer,
    forger: LocalEntraIssuer,
    validator: EntraTokenValidator,
    issue: Callable[..., str],
    clock: Clock,
    name: str,
) -> None:
    attacker_keys = f"{server.url}/attacker/keys"
    server.override(attacker_keys, 200, json.dumps(forger.jwks()).encode())
    value: object = {
        "jwk": forger.jwks()["keys"][0],
        "jku": attacker_keys,
        "x5u": f"{server.url}/attacker/cert.pem",
        "x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"],
    }[name]
    _, claims, _ = parts(issue())
    forged = forger.sign(claims, headers={name: value})
    refused(validator, bearer(forged), f"brings its own key \\('{name}'\\)")
    # Refused, not ignored: even the tenant's own signature does not make it acceptable.
    refused(validator, bearer(issue(headers={name: value})), "brings its own key")
    assert server.total() == 0


def test_crit_header_is_refused(validator: EntraTokenValidator, issue: Callable[..., str]) -> None:
    refused(validator, bearer(issue(headers={"crit": ["exp"]})), "'crit'")


def test_token_signed_by_another_key_with_the_tenants_kid(
    issuer: LocalEntraIssuer,
    forger: LocalEntraIssuer,
    validator: EntraTokenValidator,
    issue: Callable[..., str],
) -> None:
    _, claims, _ = parts(issue())
    forged = forger.sign(claims, headers={"kid": issuer.kid, "x5t": issuer.kid})
    refused(validator, bearer(forged), "signature is not valid")


# --- issuer, tenant, audience ---------------------------------------------------------------


@pytest.mark.parametrize(
    "iss",
    [
        f"https://sts.windows.net/{TENANT}/",  # the real v1 issuer, but not what metadata says
        f"https://login.microsoftonline.com/{TENANT}/v2.0",
        "{authority}/" + OTHER_TENANT + "/",
        "{authority}/" + TENANT,
        "{authority}/" + TENANT + "/v2.0/",
        None,
        42,
    ],
)
def test_wrong_issuer(
    server: EntraServer, validator: EntraTokenValidator, issue: Callable[..., str], iss: object
) -> None:
    if isinstance(iss, str):
        iss = iss.replace("{authority}", server.url)
    refused(validator, bearer(issue(extra_claims={"iss": iss})), "issuer is not the configured")


@pytest.mark.parametrize("tid", [OTHER_TENANT, "", 7, "common"])
def test_wrong_tenant(
    validator: EntraTokenValidator, issue: Callable[..., str], tid: object
) -> None:
    refused(validator, bearer(issue(extra_claims={"tid": tid})), "tenant \\('tid'\\)")


def test_tenant_claim_is_case_insensitive_and_optional(
    validator: EntraTokenValidator, issue: Callable[..., str]
) -> None:
    validator.validate(bearer(issue(extra_claims={"tid": TENANT.upper()})))
    validator.validate(bearer(issue(extra_claims={"tid": None})))


def test_validator_for_another_tenant_refuses(
    issue: Callable[..., str], make_validator: MakeValidator
) -> None:
    # Another tenant's metadata is not served here: its keys are unavailable, nothing accepted.
    with pytest.raises(SigningKeysUnavailableError):
        make_validator(tenant_id=OTHER_TENANT).validate(bearer(issue()))


@pytest.mark.parametrize(
    "audience", [OTHER_OID, "api://other-handler", f"{API_URI}//", API_URI.upper(), ""]
)
def test_wrong_audience(
    validator: EntraTokenValidator, issue: Callable[..., str], audience: str
) -> None:
    refused(validator, bearer(issue(audience)), "audience is not one of the configured")


@pytest.mark.parametrize("audience", [None, 5, [], [5], {"aud": API_URI}])
def test_missing_or_odd_audience(
    validator: EntraTokenValidator, issue: Callable[..., str], audience: object
) -> None:
    refused(validator, bearer(issue(extra_claims={"aud": audience})), "audience")


@pytest.mark.parametrize(
    ("configured", "presented"),
    [
        (API_URI, API_URI),
        (API_URI, f"{API_URI}/"),
        (f"{API_URI}/", API_URI),
        (f"{API_URI}/", f"{API_URI}/"),
        (API_CLIENT_ID, API_CLIENT_ID),
    ],
)
def test_audience_with_or_without_trailing_slash(
    make_validator: MakeValidator, issue: Callable[..., str], configured: str, presented: str
) -> None:
    make_validator(audiences=[configured]).validate(bearer(issue(presented)))


def test_audience_list_claim(validator: EntraTokenValidator, issue: Callable[..., str]) -> None:
    validator.validate(bearer(issue(extra_claims={"aud": ["api://other", API_URI]})))


# --- lifetime ---------------------------------------------------------------------------------


def test_expired(validator: EntraTokenValidator, issue: Callable[..., str], clock: Clock) -> None:
    token = issue(now=clock.now - 7200)
    refused(validator, bearer(token), "^the token has expired$")


def test_not_yet_valid(
    validator: EntraTokenValidator, issue: Callable[..., str], clock: Clock
) -> None:
    refused(validator, bearer(issue(not_before=clock.now + 600)), "not valid yet")


@pytest.mark.parametrize(
    ("leeway", "exp_offset", "nbf_offset", "accepted"),
    [
        (60, -30, 0, True),
        (60, -90, 0, False),
        (60, 3600, 30, True),
        (60, 3600, 90, False),
        (0, -2, 0, False),
        (0, 3600, 2, False),
        (0, 2, -2, True),
    ],
)
def test_leeway(
    make_validator: MakeValidator,
    issue: Callable[..., str],
    clock: Clock,
    leeway: float,
    exp_offset: int,
    nbf_offset: int,
    accepted: bool,
) -> None:
    validator = make_validator(leeway=leeway)
    now = int(clock.now)
    clock.now = now
    token = issue(extra_claims={"exp": now + exp_offset, "nbf": now + nbf_offset})
    if accepted:
        validator.validate(bearer(token))
    else:
        refused(validator, bearer(token), "expired|not valid yet")


@pytest.mark.parametrize(
    ("exp", "match"),
    [(None, "no expiry"), ("tomorrow", "'exp' is not a number"), (True, "'exp' is not a number")],
)
def test_exp_required_and_numeric(
    validator: EntraTokenValidator, issue: Callable[..., str], exp: object, match: str
) -> None:
    refused(validator, bearer(issue(extra_claims={"exp": exp})), match)


def test_nbf_must_be_numeric(validator: EntraTokenValidator, issue: Callable[..., str]) -> None:
    refused(validator, bearer(issue(extra_claims={"nbf": "now"})), "'nbf' is not a number")


# --- the caller -----------------------------------------------------------------------------


def test_wrong_identity(validator: EntraTokenValidator, issue: Callable[..., str]) -> None:
    token = issue(object_id=OTHER_OID, app_id=OTHER_TENANT)
    reason = refused(validator, bearer(token), "is not an allowed identity")
    assert reason == f"the caller 'oid {OTHER_OID}' is not an allowed identity"


def test_caller_shown_truncated(validator: EntraTokenValidator, issue: Callable[..., str]) -> None:
    reason = refused(validator, bearer(issue(object_id="x" * 500)), "not an allowed identity")
    assert len(reason) < 120


@pytest.mark.parametrize("version", [1, 2])
def test_client_id_as_identity(
    make_validator: MakeValidator, issue: Callable[..., str], version: int
) -> None:
    # appid (v1) or azp (v2) matches even when the oid is not listed.
    validator = make_validator(identities=[MI_APPID])
    claims = validator.validate(bearer(issue(API_CLIENT_ID, object_id=OTHER_OID, version=version)))
    assert claims["appid" if version == 1 else "azp"] == MI_APPID


def test_identities_compare_case_insensitively(
    make_validator: MakeValidator, issue: Callable[..., str]
) -> None:
    make_validator(identities=[MI_OID.upper()]).validate(bearer(issue()))


def test_no_caller_claims(validator: EntraTokenValidator, issue: Callable[..., str]) -> None:
    token = issue(extra_claims={"oid": None, "appid": None, "sub": None, "idtyp": "app"})
    refused(validator, bearer(token), "names no caller")


def test_delegated_token_is_refused(
    issuer: LocalEntraIssuer, validator: EntraTokenValidator, clock: Clock
) -> None:
    # A user token for an allowed client id and even an allowed oid is still not the service's.
    token = issuer.issue_delegated(API_URI, object_id=MI_OID, app_id=MI_APPID, now=clock.now)
    refused(validator, bearer(token), "delegated")
    without_scp = issuer.issue_delegated(
        API_URI, object_id=MI_OID, app_id=MI_APPID, now=clock.now, extra_claims={"scp": None}
    )
    refused(validator, bearer(without_scp), "not app-only")


@pytest.mark.parametrize("idtyp", ["user", "device", "", "App", ["app"], 0])
def test_idtyp_must_be_app(
    validator: EntraTokenValidator, issue: Callable[..., str], idtyp: object
) -> None:
    refused(validator, bearer(issue(extra_claims={"idtyp": idtyp})), "identity type \\('idtyp'\\)")


def test_idtyp_app_is_accepted(validator: EntraTokenValidator, issue: Callable[..., str]) -> None:
    validator.validate(bearer(issue(extra_claims={"idtyp": "app"})))


def test_sub_must_equal_oid_without_idtyp(
    validator: EntraTokenValidator, issue: Callable[..., str]
) -> None:
    refused(validator, bearer(issue(extra_claims={"sub": "pairwise-subject"})), "not app-only")


# --- fetching keys: refresh, rate limit, single flight ----------------------------------------


def test_unknown_kid_refreshes_once_then_refuses(
    server: EntraServer,
    issuer: LocalEntraIssuer,
    validator: EntraTokenValidator,
    issue: Callable[..., str],
    clock: Clock,
) -> None:
    validator.validate(bearer(issue()))
    assert loads(server, issuer) == loaded(1)
    clock.advance(301)
    refused(validator, bearer(issue(headers={"kid": "unknown-1"})), "kid 'unknown-1'")
    assert loads(server, issuer) == loaded(2)  # exactly one refresh
    refused(validator, bearer(issue(headers={"kid": "unknown-2"})), "not one of the tenant's")
    refused(validator, bearer(issue(headers={"kid": "unknown-1"})), "not one of the tenant's")
    clock.advance(200)
    refused(validator, bearer(issue(headers={"kid": "unknown-3"})), "not one of the tenant's")
    assert loads(server, issuer) == loaded(2)  # within the interval: no fetch
    clock.advance(101)
    refused(validator, bearer(issue(headers={"kid": "unknown-4"})), "not one of the tenant's")
    assert loads(server, issuer) == loaded(3)
    validator.validate(bearer(issue()))  # the known key still works throughout
    assert loads(server, issuer) == loaded(3)


def test_unknown_kid_on_a_cold_cache_fetches_once(
    server: EntraServer,
    issuer: LocalEntraIssuer,
    validator: EntraTokenValidator,
    issue: Callable[..., str],
) -> None:
    refused(validator, bearer(issue(headers={"kid": "unknown"})), "not one of the tenant's")
    refused(validator, bearer(issue(headers={"kid": "unknown"})), "not one of the tenant's")
    assert loads(server, issuer) == loaded(1)


def test_key_rotation_is_picked_up_after_one_refresh(
    server: EntraServer,
    issuer: LocalEntraIssuer,
    validator: EntraTokenValidator,
    issue: Callable[..., str],
    clock: Clock,
) -> None:
    old = issue()
    validator.validate(bearer(old))
    new_kid = issuer.rotate()
    assert issuer.kids == [new_kid, parts(old)[0]["kid"]]
    clock.advance(301)
    new = issue()
    assert parts(new)[0]["kid"] == new_kid
    assert validator.validate(bearer(new))["oid"] == MI_OID
    assert loads(server, issuer) == loaded(2)
    validator.validate(bearer(old))  # the old key is still published
    validator.validate(bearer(issue()))
    assert loads(server, issuer) == loaded(2)


def test_withdrawn_key_stops_being_trusted_after_key_max_age(
    server: EntraServer,
    issuer: LocalEntraIssuer,
    make_validator: MakeValidator,
    issue: Callable[..., str],
    clock: Clock,
) -> None:
    validator = make_validator(key_max_age=3600)
    old = issue(lifetime=4 * 3600)
    validator.validate(bearer(old))
    validator.validate(bearer(old))  # from the cache
    issuer.rotate(keep_old=False)
    clock.advance(1800)
    validator.validate(bearer(old))  # keys not stale yet: no fetch
    assert loads(server, issuer) == loaded(1)
    clock.advance(1801)
    refused(validator, bearer(old), "not one of the tenant's")
    assert loads(server, issuer) == loaded(2)
    validator.validate(bearer(issue(lifetime=3600)))
    assert loads(server, issuer) == loaded(2)


def test_failed_refresh_keeps_the_old_keys(
    server: EntraServer,
    issuer: LocalEntraIssuer,
    make_validator: MakeValidator,
    issue: Callable[..., str],
    clock: Clock,
) -> None:
    validator = make_validator(cache_size=0)
    validator.validate(bearer(issue()))
    server.override(issuer.jwks_url(1), 500, b"{}")
    clock.advance(301)
    refused(validator, bearer(issue(headers={"kid": "unknown"})), "not one of the tenant's")
    assert server.count(issuer.jwks_url(1)) == 2
    assert validator.validate(bearer(issue()))["oid"] == MI_OID  # old keys still serve
    server.stop()
    clock.advance(301)
    assert validator.validate(bearer(issue()))["oid"] == MI_OID


def test_jwks_unreachable_from_the_start(
    make_validator: MakeValidator, issue: Callable[..., str]
) -> None:
    validator = make_validator(authority=refused_url())
    with pytest.raises(SigningKeysUnavailableError, match="unavailable: fetching http") as info:
        validator.validate(bearer(issue()))
    assert info.value.status == 503
    assert info.value.reason == str(info.value)
    assert not JWT_TEXT.search(str(info.value))


def test_server_stopped_from_the_start(
    server: EntraServer, validator: EntraTokenValidator, issue: Callable[..., str]
) -> None:
    server.stop()
    with pytest.raises(SigningKeysUnavailableError, match="unavailable"):
        validator.validate(bearer(issue()))


def test_unavailable_keys_are_retried_after_retry_interval(
    server: EntraServer,
    issuer: LocalEntraIssuer,
    make_validator: MakeValidator,
    issue: Callable[..., str],
    clock: Clock,
) -> None:
    validator = make_validator(retry_interval=10)
    server.override(issuer.metadata_url(1), 503, b"{}")
    with pytest.raises(SigningKeysUnavailableError, match="HTTP 503"):
        validator.validate(bearer(issue()))
    clock.advance(5)
    with pytest.raises(SigningKeysUnavailableError, match="HTTP 503"):
        validator.validate(bearer(issue()))
    assert server.count(issuer.metadata_url(1)) == 1  # fails fast, no fetch per request
    server.overrides.clear()
    clock.advance(6)
    assert validator.validate(bearer(issue()))["oid"] == MI_OID
    assert loads(server, issuer) == {**loaded(1), "v1 metadata": 2}


def _weak_jwks() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - on purpose
    entry = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return json.dumps({"keys": [{**entry, "kid": "weak", "use": "sig"}]}).encode()


def _private_jwks() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    entry = RSAAlgorithm.to_jwk(key, as_dict=True)
    return json.dumps({"keys": [{**entry, "kid": "private"}]}).encode()


def _ec_jwks() -> bytes:
    entry = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True)
    return json.dumps({"keys": [{**entry, "kid": "ec"}]}).encode()


def _impostor_jwks(source: LocalEntraIssuer) -> bytes:
    """Another key published under the tenant's kid."""
    entry = RSAAlgorithm.to_jwk(rsa_key("forger").public_key(), as_dict=True)
    return json.dumps({"keys": [{**entry, "kid": source.kid, "use": "sig"}]}).encode()


def _metadata(source: LocalEntraIssuer, version: int, /, **changes: Any) -> bytes:
    document = source.metadata(version)
    document.update(changes)
    return json.dumps({k: v for k, v in document.items() if v is not None}).encode()


BROKEN: dict[str, Callable[[LocalEntraIssuer], tuple[str, int, bytes, dict[str, str]]]] = {
    "metadata not JSON": lambda i: (i.metadata_url(1), 200, b"<html>hi</html>", {}),
    "metadata a list": lambda i: (i.metadata_url(1), 200, b"[]", {}),
    "metadata deeply nested": lambda i: (i.metadata_url(1), 200, b"[" * 100_000, {}),
    "metadata without jwks_uri": lambda i: (
        i.metadata_url(2), 200, _metadata(i, 2, jwks_uri=None), {}
    ),
    "metadata issuer not a string": lambda i: (
        i.metadata_url(1), 200, _metadata(i, 1, issuer=3), {}
    ),
    "jwks_uri a file": lambda i: (
        i.metadata_url(1), 200, _metadata(i, 1, jwks_uri="file:///etc/passwd"), {}
    ),
    "jwks_uri plain http elsewhere": lambda i: (
        i.metadata_url(1), 200, _metadata(i, 1, jwks_uri="http://example.com/keys"), {}
    ),
    "issuer of another tenant": lambda i: (
        i.metadata_url(2), 200, _metadata(i, 2, issuer=f"{i.authority}/{OTHER_TENANT}/v2.0"), {}
    ),
    "metadata HTTP 500": lambda i: (i.metadata_url(1), 500, b"{}", {}),
    "metadata redirected": lambda i: (
        i.metadata_url(1), 302, b"", {"Location": i.metadata_url(2)}
    ),
    "metadata over 1 MiB": lambda i: (
        i.metadata_url(1), 200, _metadata(i, 1, pad="x" * MAX_DOCUMENT_SIZE), {}
    ),
    "jwks not found": lambda i: (i.jwks_url(1), 404, b"{}", {}),
    "jwks without keys": lambda i: (i.jwks_url(1), 200, b'{"keys": []}', {}),
    "jwks keys not a list": lambda i: (i.jwks_url(2), 200, b'{"keys": {}}', {}),
    "jwks too many keys": lambda i: (
        i.jwks_url(2), 200, json.dumps({"keys": [{}] * 101}).encode(), {}
    ),
    "jwks junk entries": lambda i: (
        i.jwks_url(1),
        200,
        b'{"keys": [1, "a", null, {"kty": "RSA"}, {"kty": "RSA", "kid": "k", "n": 5, "e": "AQAB"},'
        b' {"kty": "RSA", "kid": "k", "n": "AAAA", "e": "AQAB"}]}',
        {},
    ),
    "jwks only a 1024-bit key": lambda i: (i.jwks_url(1), 200, _weak_jwks(), {}),
    "jwks only a private key": lambda i: (i.jwks_url(1), 200, _private_jwks(), {}),
    "jwks only an EC key": lambda i: (i.jwks_url(1), 200, _ec_jwks(), {}),
    "jwks v1 and v2 disagree about the kid": lambda i: (i.jwks_url(2), 200, _impostor_jwks(i), {}),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_malformed_documents_mean_unavailable(
    server: EntraServer,
    issuer: LocalEntraIssuer,
    validator: EntraTokenValidator,
    issue: Callable[..., str],
    case: str,
) -> None:
    url, status, body, headers = BROKEN[case](issuer)
    server.override(url, status, body, **headers)
    with pytest.raises(SigningKeysUnavailableError) as info:
        validator.validate(bearer(issue()))
    reason = str(info.value)
    assert reason.startswith("the tenant's signing keys are unavailable: ")
    assert len(reason) < 400
    assert server.count("/etc/passwd") == 0
    assert server.count(issuer.metadata_url(2)) <= 1  # a redirect is never followed twice


def test_refresh_keeps_parsed_keys_and_cached_tokens(
    server: EntraServer,
    issuer: LocalEntraIssuer,
    validator: EntraTokenValidator,
    issue: Callable[..., str],
    clock: Clock,
) -> None:
    token = issue()
    validator.validate(bearer(token))
    assert validator._keyset is not None
    key = validator._keyset.keys[issuer.kid]
    clock.advance(301)
    refused(validator, bearer(issue(headers={"kid": "unknown"})), "not one of the tenant's")
    assert loads(server, issuer) == loaded(2)
    assert validator._keyset.keys[issuer.kid] is key
    assert token in validator._cache
    validator.validate(bearer(token))


def test_both_versions_sharing_one_jwks_fetch_it_once(
    server: EntraServer,
    issuer: LocalEntraIssuer,
    validator: EntraTokenValidator,
    issue: Callable[..., str],
) -> None:
    def documents(path: str) -> dict[str, Any] | None:
        document = issuer.document(path)
        if document is not None and path.endswith("v2.0/.well-known/openid-configuration"):
            document["jwks_uri"] = issuer.jwks_url(1)
        return document

    server.documents = documents
    validator.validate(bearer(issue(API_CLIENT_ID, version=2)))
    validator.validate(bearer(issue()))
    assert loads(server, issuer) == {**loaded(1), "v2 keys": 0}


def test_issuer_placeholder_and_sts_style_v1_issuer(
    server: EntraServer,
    issuer: LocalEntraIssuer,
    validator: EntraTokenValidator,
    issue: Callable[..., str],
) -> None:
    # Like login.microsoftonline.com's real v1 metadata: the issuer is on another host and
    # may carry the {tenantid} placeholder.
    def documents(path: str) -> dict[str, Any] | None:
        document = issuer.document(path)
        if document is not None and path.endswith(f"{TENANT}/.well-known/openid-configuration"):
            document["issuer"] = "https://sts.windows.net/{tenantid}/"
        return document

    server.documents = documents
    sts = f"https://sts.windows.net/{TENANT}/"
    assert validator.validate(bearer(issue(extra_claims={"iss": sts})))["iss"] == sts
    refused(validator, bearer(issue()), "issuer is not the configured")  # no longer v1's
    validator.validate(bearer(issue(API_CLIENT_ID, version=2)))


def test_signing_key_must_be_published_by_the_tokens_issuer(
    server: EntraServer,
    issuer: LocalEntraIssuer,
    forger: LocalEntraIssuer,
    validator: EntraTokenValidator,
    issue: Callable[..., str],
) -> None:
    server.override(issuer.jwks_url(1), 200, json.dumps(forger.jwks()).encode())
    refused(validator, bearer(issue()), "not published by its issuer")
    validator.validate(bearer(issue(API_CLIENT_ID, version=2)))


def test_custom_fetch(issuer: LocalEntraIssuer, clock: Clock, issue: Callable[..., str]) -> None:
    fetched: list[tuple[str, float]] = []

    def fetch(url: str, timeout: float) -> bytes:
        fetched.append((url, timeout))
        return json.dumps(issuer.document(urllib.parse.urlsplit(url).path)).encode()

    validator = EntraTokenValidator(
        tenant_id=TENANT,
        audiences=[API_URI],
        identities=[MI_OID],
        authority=issuer.authority,
        fetch=fetch,
        fetch_timeout=1.5,
        clock=clock,
    )
    validator.validate(bearer(issue()))
    assert sorted(url for url, _ in fetched) == sorted(
        [issuer.metadata_url(1), issuer.metadata_url(2), issuer.jwks_url(1), issuer.jwks_url(2)]
    )
    assert {timeout for _, timeout in fetched} == {1.5}


@pytest.mark.parametrize(
    "outcome", [RuntimeError("boom"), b"x" * (MAX_DOCUMENT_SIZE + 1), "a str, not bytes"]
)
def test_custom_fetch_failures_mean_unavailable(
    issuer: LocalEntraIssuer, issue: Callable[..., str], outcome: object
) -> None:
    def fetch(url: str, timeout: float) -> bytes:
        if isinstance(outcome, Exception):
            raise outcome
        return outcome  # type: ignore[return-value]

    validator = EntraTokenValidator(
        tenant_id=TENANT,
        audiences=[API_URI],
        identities=[MI_OID],
        authority=issuer.authority,
        fetch=fetch,
    )
    with pytest.raises(SigningKeysUnavailableError):
        validator.validate(bearer(issue()))


def _run_threads(count: int, work: Callable[[int], object]) -> list[object]:
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index)
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    return results


def test_concurrent_cold_start_fetches_once(
    server: EntraServer,
    issuer: LocalEntraIssuer,
    make_validator: MakeValidator,
    issue: Callable[..., str],
) -> None:
    validator = make_validator(cache_size=0)
    server.delay = 0.1
    tokens = [issue() for _ in range(16)]
    results = _run_threads(16, lambda i: validator.validate(bearer(tokens[i])))
    assert all(isinstance(r, dict) and r["oid"] == MI_OID for r in results), results
    assert loads(server, issuer) == loaded(1)


def test_concurrent_unknown_kids_cause_one_fetch(
    server: EntraServer,
    issuer: LocalEntraIssuer,
    validator: EntraTokenValidator,
    issue: Callable[..., str],
    clock: Clock,
) -> None:
    validator.validate(bearer(issue()))
    clock.advance(301)
    server.delay = 0.1
    tokens = [issue(headers={"kid": f"unknown-{i}"}) for i in range(16)]
    results = _run_threads(16, lambda i: validator.validate(bearer(tokens[i])))
    assert all(isinstance(r, EntraTokenError) for r in results), results
    assert loads(server, issuer) == loaded(2)


def test_concurrent_unavailable_keys_cause_one_fetch(
    server: EntraServer,
    issuer: LocalEntraIssuer,
    validator: EntraTokenValidator,
    issue: Callable[..., str],
) -> None:
    server.override(issuer.metadata_url(1), 500, b"{}")
    server.delay = 0.1
    token = issue()
    results = _run_threads(16, lambda i: validator.validate(bearer(token)))
    assert all(isinstance(r, SigningKeysUnavailableError) for r in results), results
    assert server.count(issuer.metadata_url(1)) == 1


# --- the validated-token cache ------------------------------------------------------------------


def test_cached_claims_are_fresh_copies(
    server: EntraServer, validator: EntraTokenValidator, issue: Callable[..., str]
) -> None:
    token = issue(extra_claims={"roles": ["Upstream.Invoke"]})
    first = validator.validate(bearer(token))
    first["roles"].append("Admin")
    first["oid"] = "changed"
    second = validator.validate(bearer(token))
    assert second["roles"] == ["Upstream.Invoke"]
    assert second["oid"] == MI_OID


def test_cached_token_still_expires(
    validator: EntraTokenValidator, issue: Callable[..., str], clock: Clock
) -> None:
    token = issue(lifetime=600)
    validator.validate(bearer(token))
    clock.advance(600 + 30)
    validator.validate(bearer(token))  # within the leeway
    clock.advance(31)
    refused(validator, bearer(token), "expired")


def test_cache_is_bounded_and_only_holds_valid_tokens(
    make_validator: MakeValidator, issue: Callable[..., str]
) -> None:
    validator = make_validator(cache_size=2)
    for _ in range(5):
        validator.validate(bearer(issue()))
    for audience in ("api://nope", "api://other"):
        with pytest.raises(EntraTokenError):
            validator.validate(bearer(issue(audience)))
    assert len(validator._cache) == 2


def test_cache_disabled(make_validator: MakeValidator, issue: Callable[..., str]) -> None:
    validator = make_validator(cache_size=0)
    token = issue()
    assert validator.validate(bearer(token)) == validator.validate(bearer(token))
    assert len(validator._cache) == 0


# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"identities": []}, ValueError),
        ({"identities": [""]}, ValueError),
        ({"identities": MI_OID}, TypeError),
        ({"audiences": []}, ValueError),
        ({"audiences": API_URI}, TypeError),
        ({"tenant_id": ""}, ValueError),
        ({"tenant_id": "common"}, ValueError),
        ({"tenant_id": "organizations"}, ValueError),
        ({"tenant_id": "contoso.onmicrosoft.com"}, ValueError),
        ({"authority": "http://login.example.com"}, ValueError),
        ({"authority": "ftp://127.0.0.1"}, ValueError),
        ({"authority": "not a url"}, ValueError),
        ({"leeway": -1}, ValueError),
        ({"leeway": float("nan")}, ValueError),
        ({"fetch_timeout": 0}, ValueError),
        ({"min_refresh_interval": float("inf")}, ValueError),
        ({"cache_size": -1}, ValueError),
    ],
)
def test_configuration_is_checked(
    make_validator: MakeValidator, changes: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        make_validator(**changes)


def test_authorities_allowed(make_validator: MakeValidator) -> None:
    for authority in (
        "https://login.microsoftonline.com/",
        "https://login.partner.microsoftonline.cn",
        "http://localhost:8080",
        "http://[::1]:8080",
    ):
        assert make_validator(authority=authority).authority == authority.rstrip("/")


def test_repr_and_errors(validator: EntraTokenValidator, issue: Callable[..., str]) -> None:
    validator.validate(bearer(issue()))
    text = repr(validator)
    assert TENANT in text
    assert MI_OID in text
    assert "eyJ" not in text
    assert "RSAPublicKey" not in text
    assert issubclass(EntraTokenError, ValueError)
    assert issubclass(SigningKeysUnavailableError, RuntimeError)
    assert (EntraTokenError.status, SigningKeysUnavailableError.status) == (401, 503)


def test_issuer_repr_and_documents(issuer: LocalEntraIssuer) -> None:
    assert "PRIVATE" not in repr(issuer)
    assert issuer.document("/nowhere") is None
    assert issuer.document(urllib.parse.urlsplit(issuer.jwks_url(2)).path) == issuer.jwks()
    assert all("d" not in key for key in issuer.jwks()["keys"])
    with pytest.raises(ValueError, match="version"):
        issuer.issuer(3)


# --- properties: nothing the tenant's key did not sign is accepted ---------------------------


@dataclass
class World:
    server: EntraServer
    issuer: LocalEntraIssuer
    forger: LocalEntraIssuer
    validator: EntraTokenValidator
    token: str


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    server = EntraServer()
    issuer = LocalEntraIssuer(server.url, tenant_id=TENANT)
    server.documents = issuer.document
    validator = EntraTokenValidator(
        tenant_id=TENANT,
        audiences=[API_URI, API_CLIENT_ID],
        identities=[MI_OID, MI_APPID],
        authority=server.url,
    )
    token = issuer.issue(API_URI, object_id=MI_OID, app_id=MI_APPID)
    validator.validate(bearer(token))
    yield World(server, issuer, LocalEntraIssuer(server.url, tenant_id=TENANT), validator, token)
    server.stop()


def _assert_refused(world: World, authorization: str) -> None:
    with pytest.raises(EntraTokenError):
        world.validator.validate(authorization)


@SETTINGS
@given(
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.sampled_from(B64URL + ".")), min_size=1, max_size=4
    )
)
def test_property_mutated_tokens_are_refused(
    world: World, edits: list[tuple[int, str]]
) -> None:
    chars = list(world.token)
    for index, char in edits:
        chars[index % len(chars)] = char
    mutated = "".join(chars)
    assume(mutated != world.token)
    _assert_refused(world, bearer(mutated))


_CLAIM_VALUES = st.one_of(
    st.sampled_from([MI_OID, MI_APPID, API_URI, API_CLIENT_ID, TENANT, "app", None]),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.text(max_size=20),
)
_CLAIM_NAMES = st.sampled_from(
    ["aud", "iss", "exp", "nbf", "oid", "appid", "azp", "sub", "tid", "idtyp", "scp", "x"]
)


@SETTINGS
@given(changes=st.dictionaries(_CLAIM_NAMES, _CLAIM_VALUES, min_size=1, max_size=4))
def test_property_tampered_payloads_are_refused(
    world: World, changes: dict[str, object]
) -> None:
    header, payload, signature = world.token.split(".")
    claims = parts(world.token)[1]
    claims.update(changes)
    tampered = b64json(claims)
    assume(tampered != payload)
    _assert_refused(world, bearer(f"{header}.{tampered}.{signature}"))


@SETTINGS
@given(
    changes=st.dictionaries(_CLAIM_NAMES, _CLAIM_VALUES, max_size=3),
    version=st.sampled_from([1, 2]),
    own_kid=st.booleans(),
)
def test_property_tokens_signed_by_another_key_are_refused(
    world: World, changes: dict[str, object], version: int, own_kid: bool
) -> None:
    claims = parts(world.token)[1]
    claims.update(changes)
    headers = {} if own_kid else {"kid": world.issuer.kid, "x5t": world.issuer.kid}
    forged = world.forger.sign(claims, headers=headers, version=version)
    _assert_refused(world, bearer(forged))


@SETTINGS
@given(
    value=st.one_of(
        st.text(max_size=200),
        st.text(max_size=200).map(lambda text: f"Bearer {text}"),
        st.from_regex(
            r"Bearer [A-Za-z0-9_-]{1,80}\.[A-Za-z0-9_-]{1,300}\.[A-Za-z0-9_-]{0,400}",
            fullmatch=True,
        ),
        st.binary(max_size=300).map(lambda raw: f"Bearer {b64(raw)}.{b64(raw[::-1])}.{b64(raw)}"),
    )
)
def test_property_random_strings_are_refused(world: World, value: str) -> None:
    _assert_refused(world, value)


@SETTINGS
@given(
    alg=st.one_of(
        st.sampled_from(["none", "HS256", "HS384", "HS512", "RS384", "RS512", "PS256", "ES256"]),
        st.text(max_size=10),
        st.integers(),
        st.none(),
    ),
    signer=st.sampled_from(["hmac-pem", "empty-ish", "tenant-key"]),
)
def test_property_other_algorithms_are_refused(world: World, alg: object, signer: str) -> None:
    assume(alg != "RS256")
    if signer == "tenant-key":
        token = world.issuer.sign(parts(world.token)[1], headers={"alg": alg})
    else:
        header = b64json({"typ": "JWT", "alg": alg, "kid": world.issuer.kid})
        signing_input = f"{header}.{world.token.split('.')[1]}"
        if signer == "hmac-pem":
            mac = hmac.digest(world.issuer.public_key_pem(), signing_input.encode(), "sha256")
            token = f"{signing_input}.{b64(mac)}"
        else:
            token = f"{signing_input}.{b64(hashlib.sha256(b'').digest())}"
    _assert_refused(world, bearer(token))


def test_properties_did_not_hammer_the_server(world: World) -> None:
    # The forged unknown kids above may refresh at most once per min_refresh_interval.
    assert world.server.count(world.issuer.jwks_url(1)) <= 2
    assert world.validator.validate(bearer(world.token))["oid"] == MI_OID
