"""The emulator as Microsoft Entra ID, so that the whole Entra set-up runs locally.

With :class:`IdentityProvider`, the emulator plays the service with local auth disabled and the
tenant both:

- **Upstream.** Every upstream call carries ``Authorization: Bearer <token>`` and no
  ``ce-signature``, as the service does when its managed identity authenticates to the event
  handler: an app-only RS256 token for the handler's audience, issued to the managed identity
  (``oid`` :attr:`~IdentityProvider.managed_identity`), from the tenant
  :attr:`~IdentityProvider.tenant_id` whose OpenID Connect metadata and keys the emulator serves
  at ``http://<emulator>/<tenant>/...`` (``WEBPUBSUB_ENTRA_AUTHORITY`` is the emulator's URL).
- **REST.** The REST API takes bearer tokens from that tenant (audience
  ``https://webpubsub.azure.com``, the service SDKs' scope) issued to the app's registration, and
  refuses access-key tokens (local auth is disabled). The app gets its tokens as a service
  principal does, with the client-credentials grant at ``/<tenant>/oauth2/v2.0/token``:
  :class:`EmulatorCredential` is that credential (``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID``,
  ``AZURE_CLIENT_SECRET``, ``AZURE_AUTHORITY_HOST``, as azure-identity's environment credential
  names them).

azure-core sends a bearer token only over HTTPS; :func:`client_factory` (for
``WEBPUBSUB_CLIENT_FACTORY``) builds the service client so that it sends one to a loopback
``http://`` endpoint too, and only there.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from typing import Any

import jwt
from aiohttp import web
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from cryptography.hazmat.primitives.asymmetric import rsa

from flask_webpubsub.core.entra_issuer import LocalEntraIssuer
from flask_webpubsub.core.errors import InvalidTokenError
from flask_webpubsub.core.jsoncodec import decode_json, encode_json
from flask_webpubsub.core.wire import JSON_CONTENT_TYPE, is_loopback_host

logger = logging.getLogger(__name__)

#: The audience of REST tokens: the service SDKs ask for ``https://webpubsub.azure.com/.default``.
SERVICE_AUDIENCE = "https://webpubsub.azure.com"
#: The audience of upstream tokens unless one is given (the event handler's App ID URI).
DEFAULT_UPSTREAM_AUDIENCE = "api://flask-webpubsub-upstream"
#: Tokens live this long, like Entra's (60-90 minutes); an upstream token is renewed well before.
TOKEN_LIFETIME = 3600
_RENEW_BEFORE = 300


def _stable_id(name: str) -> str:
    """A GUID that is the same on every run, so that the app's settings survive a restart."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://flask-webpubsub.invalid/emulator/{name}"))


class IdentityProvider:
    """The tenant the emulator plays. Every id has a default that is the same on every run; the
    signing key is new on every run (the app fetches the keys again), the client secret too
    unless given.

    ``audience`` is the upstream tokens' audience (the handler's App ID URI, as the hub's event
    handler settings name it); ``managed_identity`` the object id of the service's managed
    identity (the only caller the app allows), ``managed_identity_client_id`` its client id;
    ``client_id`` and ``client_secret`` the app's registration, for REST tokens.
    """

    def __init__(
        self,
        *,
        tenant_id: str | None = None,
        managed_identity: str | None = None,
        managed_identity_client_id: str | None = None,
        audience: str = DEFAULT_UPSTREAM_AUDIENCE,
        client_id: str | None = None,
        client_secret: str | None = None,
        signing_key: rsa.RSAPrivateKey | None = None,
    ) -> None:
        self.tenant_id = _guid(tenant_id or _stable_id("tenant"), "tenant_id")
        self.managed_identity = _guid(managed_identity or _stable_id("managed-identity"),
                                      "managed_identity")
        self.managed_identity_client_id = _guid(
            managed_identity_client_id or _stable_id("managed-identity-client"),
            "managed_identity_client_id",
        )
        self.client_id = _guid(client_id or _stable_id("app"), "client_id")
        if not audience.strip():
            raise ValueError("the upstream audience must not be empty")
        self.audience = audience.strip()
        if client_secret is not None and len(client_secret) < 16:
            raise ValueError("the client secret must be at least 16 characters")
        self._client_secret = client_secret or secrets.token_urlsafe(32)
        self._signing_key = signing_key or rsa.generate_private_key(
            public_exponent=65537, key_size=2048
        )
        self._issuer: LocalEntraIssuer | None = None
        self._upstream_token: tuple[str, float] | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<IdentityProvider tenant {self.tenant_id}>"

    @property
    def client_secret(self) -> str:
        """The app registration's secret (for :class:`EmulatorCredential`)."""
        return self._client_secret

    @property
    def issuer(self) -> LocalEntraIssuer:
        if self._issuer is None:
            raise RuntimeError("the identity provider has no authority yet: start the emulator")
        return self._issuer

    def bind(self, authority: str) -> None:
        """Serve the tenant under ``authority`` (the emulator's URL, once it listens)."""
        self._issuer = LocalEntraIssuer(
            authority, tenant_id=self.tenant_id, signing_key=self._signing_key
        )

    # -- what the app configures ----------------------------------------------------------------

    def app_settings(self, endpoint: str) -> dict[str, Any]:
        """The extension's settings for an app that trusts this tenant (no access key), where
        ``endpoint`` is the emulator's URL (the tenant's authority too)."""
        return {
            "WEBPUBSUB_ENDPOINT": endpoint,
            "WEBPUBSUB_ENTRA_TENANT_ID": self.tenant_id,
            "WEBPUBSUB_ENTRA_AUDIENCE": self.audience,
            "WEBPUBSUB_ENTRA_IDENTITIES": [self.managed_identity],
            "WEBPUBSUB_ENTRA_AUTHORITY": endpoint,
        }

    def credential_environment(self) -> dict[str, str]:
        """The environment :meth:`EmulatorCredential.from_environment` reads."""
        return {
            "AZURE_TENANT_ID": self.tenant_id,
            "AZURE_CLIENT_ID": self.client_id,
            "AZURE_CLIENT_SECRET": self._client_secret,
            "AZURE_AUTHORITY_HOST": self.issuer.authority,
        }

    def credential(self) -> EmulatorCredential:
        """The app's credential, for code in the emulator's own process (tests)."""
        return EmulatorCredential(
            self.tenant_id, self.client_id, self._client_secret, authority=self.issuer.authority
        )

    # -- the service's side -----------------------------------------------------------------------

    async def authorization(self) -> str:
        """The ``Authorization`` header of an upstream call: the managed identity's token, reused
        until shortly before it expires (as the service caches its tokens)."""
        async with self._lock:
            now = time.time()
            if self._upstream_token is None or self._upstream_token[1] - _RENEW_BEFORE < now:
                token = self.issuer.issue(
                    self.audience, object_id=self.managed_identity,
                    app_id=self.managed_identity_client_id, lifetime=TOKEN_LIFETIME, now=now,
                )
                self._upstream_token = (token, now + TOKEN_LIFETIME)
            return f"Bearer {self._upstream_token[0]}"

    def verify_rest_token(self, token: str) -> dict[str, Any]:
        """The claims of a REST bearer token from this tenant, for the service, issued to the
        app's registration; else :class:`InvalidTokenError` (its reason has no token)."""
        issuer = self.issuer
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                issuer.public_key_pem(),
                algorithms=["RS256"],
                audience=[SERVICE_AUDIENCE, SERVICE_AUDIENCE + "/"],
                issuer=[issuer.issuer(1), issuer.issuer(2)],
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidTokenError("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise InvalidTokenError(f"the token's audience is not {SERVICE_AUDIENCE}") from None
        except jwt.InvalidIssuerError:
            raise InvalidTokenError("the token is not from the emulator's tenant") from None
        except jwt.PyJWTError:
            raise InvalidTokenError(
                "the token is not an Entra ID token of the emulator's tenant (with local auth "
                "disabled, access-key tokens are refused)"
            ) from None
        caller = claims.get("appid") or claims.get("azp")
        if caller != self.client_id:
            raise InvalidTokenError("the token was not issued to the app's registration")
        return claims

    # -- the tenant's HTTP side -----------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        """The tenant's documents and token endpoint under ``/<tenant id>/``."""
        base = f"/{self.tenant_id}"
        app.router.add_post(f"{base}/oauth2/v2.0/token", self._token)
        app.router.add_post(f"{base}/oauth2/token", self._token)
        app.router.add_get(base + "/{tail:.*}", self._document)

    async def _document(self, request: web.Request) -> web.StreamResponse:
        document = self.issuer.document(request.path)
        if document is None:
            raise web.HTTPNotFound()
        return _json(document)

    async def _token(self, request: web.Request) -> web.StreamResponse:
        """The client-credentials grant, for the app's registration only."""
        form = await request.post()
        grant = form.get("grant_type")
        if grant != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type",
                                "Only the client_credentials grant is supported.")
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if not (
            isinstance(client_id, str) and isinstance(secret, str)
            and client_id.lower() == self.client_id
            and secrets.compare_digest(secret.encode(), self._client_secret.encode())
        ):
            logger.warning("Refused a token request: unknown client or wrong secret.")
            return _oauth_error(401, "invalid_client", "Unknown client, or a wrong secret.")
        scope = str(form.get("scope", ""))
        resources = {s.removesuffix("/.default").rstrip("/") for s in scope.split() if s}
        if resources != {SERVICE_AUDIENCE}:
            return _oauth_error(400, "invalid_scope",
                                f"The only scope issued here is {SERVICE_AUDIENCE}/.default.")
        token = self.issuer.issue(
            SERVICE_AUDIENCE, object_id=_stable_id(f"app-principal/{self.client_id}"),
            app_id=self.client_id, lifetime=TOKEN_LIFETIME,
        )
        return _json({"token_type": "Bearer", "expires_in": TOKEN_LIFETIME,
                      "ext_expires_in": TOKEN_LIFETIME, "access_token": token})


class EmulatorCredential:
    """An azure-core ``TokenCredential`` for the app's registration in the emulator's tenant:
    the client-credentials grant at ``{authority}/{tenant}/oauth2/v2.0/token``, as
    azure-identity's ``ClientSecretCredential`` does against Entra ID (which refuses a plain
    ``http://`` authority). The secret never appears in its ``repr``."""

    def __init__(self, tenant_id: str, client_id: str, client_secret: str, *,
                 authority: str) -> None:
        parts = urllib.parse.urlsplit(authority)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("authority must be the emulator's URL")
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._client_secret = client_secret
        self.authority = authority.rstrip("/")
        self._loopback = is_loopback_host(parts.hostname)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> EmulatorCredential:
        """From ``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID``, ``AZURE_CLIENT_SECRET`` and
        ``AZURE_AUTHORITY_HOST``, as the emulator prints them."""
        environ = os.environ if environ is None else environ
        names = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET",
                 "AZURE_AUTHORITY_HOST")
        missing = [name for name in names if not environ.get(name)]
        if missing:
            raise ValueError(f"{', '.join(missing)} not set: run the emulator with --entra and "
                             "set what it prints")
        return cls(environ["AZURE_TENANT_ID"], environ["AZURE_CLIENT_ID"],
                   environ["AZURE_CLIENT_SECRET"], authority=environ["AZURE_AUTHORITY_HOST"])

    def __repr__(self) -> str:
        return f"EmulatorCredential(tenant_id={self.tenant_id!r}, client_id={self.client_id!r})"

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        """A token for ``scopes``; azure-core's ``ClientAuthenticationError`` when the emulator
        refuses or cannot be reached."""
        data = urllib.parse.urlencode({
            "grant_type": "client_credentials", "client_id": self.client_id,
            "client_secret": self._client_secret, "scope": " ".join(scopes),
        }).encode()
        url = f"{self.authority}/{self.tenant_id}/oauth2/v2.0/token"
        handlers: list[urllib.request.BaseHandler] = []
        if self._loopback:
            handlers.append(urllib.request.ProxyHandler({}))
        request = urllib.request.Request(url, data=data, method="POST")  # noqa: S310
        try:
            with urllib.request.build_opener(*handlers).open(request, timeout=10) as response:
                answer = decode_json(response.read(1024 * 1024))
        except urllib.error.HTTPError as exc:
            detail = exc.read(2048).decode("utf-8", "replace")
            raise ClientAuthenticationError(
                f"the emulator refused the token request ({exc.code}): {detail}"
            ) from None
        except (OSError, ValueError) as exc:
            raise ClientAuthenticationError(f"no token from the emulator: {exc}") from None
        return AccessToken(answer["access_token"], int(time.time()) + int(answer["expires_in"]))

    def close(self) -> None:
        """Nothing to release (``TokenCredential`` may be closed)."""


def client_factory(*, endpoint: str, hub: str, credential: Any) -> Any:
    """``WEBPUBSUB_CLIENT_FACTORY`` for an app that uses the emulator with Entra ID: the SDK's
    ``WebPubSubServiceClient``, whose bearer token also goes to a loopback ``http://`` endpoint
    (azure-core refuses to send one over plain HTTP anywhere else, and still does)."""
    from azure.core.pipeline.policies import BearerTokenCredentialPolicy
    from azure.messaging.webpubsubservice import WebPubSubServiceClient

    class LoopbackBearerTokenPolicy(BearerTokenCredentialPolicy[Any, Any]):
        def on_request(self, request: Any) -> None:
            host = urllib.parse.urlsplit(request.http_request.url).hostname
            if is_loopback_host(host):
                request.context["enforce_https"] = False
            super().on_request(request)

    policy = LoopbackBearerTokenPolicy(credential, f"{SERVICE_AUDIENCE}/.default")
    return WebPubSubServiceClient(
        endpoint=endpoint, hub=hub, credential=credential, authentication_policy=policy
    )


def _guid(value: str, name: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError(f"{name} must be a GUID") from None


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=encode_json(value), status=status,
                        headers={"Content-Type": JSON_CONTENT_TYPE, "Cache-Control": "no-store"})


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return _json({"error": error, "error_description": description}, status)
