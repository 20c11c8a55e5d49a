"""A local stand-in for Microsoft Entra ID: an RSA signing key, OpenID Connect metadata, a JWKS
and app-only access tokens shaped like the ones Azure Web PubSub's managed identity presents.

For tests and for an emulator mode. Pure: it serves no HTTP. :meth:`LocalEntraIssuer.document`
maps a request path to the JSON document the real service would answer, so any small server
(or a test's fetch function) can serve it under ``authority``.

One deliberate difference from the real service: the issuers are derived from the authority,
v1 ``{authority}/{tenant}/`` and v2 ``{authority}/{tenant}/v2.0``. The real v1 metadata at
``https://login.microsoftonline.com/{tenant}/.well-known/openid-configuration`` names
``https://sts.windows.net/{tenant}/``, another host; that is why
:class:`~flask_webpubsub.core.entra.EntraTokenValidator` reads the issuers from the metadata
documents instead of building them, and the same code accepts both.

The private keys never leave this object: no method returns them.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
import urllib.parse
import uuid
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from jwt.algorithms import RSAAlgorithm

from .jsoncodec import encode_json

__all__ = ["LocalEntraIssuer"]

_VERSIONS = (1, 2)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _compact(value: Mapping[str, Any]) -> bytes:
    return encode_json(value)


def _kid(key: rsa.RSAPrivateKey) -> str:
    """A key id derived from the public key, the length and alphabet of Entra's kids."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _b64(hashlib.sha256(der).digest()[:20])


def _merge(base: dict[str, Any], changes: Mapping[str, Any] | None) -> dict[str, Any]:
    """``base`` updated with ``changes``; a change to None removes the entry."""
    for name, value in (changes or {}).items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base


class LocalEntraIssuer:
    """A tenant at ``authority`` (a base URL, e.g. ``http://127.0.0.1:8123``) that issues
    app-only access tokens signed with RS256: a new ``key_size`` key, or ``signing_key`` (for an
    emulator that keeps its key across restarts). Thread-safe."""

    def __init__(
        self,
        authority: str,
        *,
        tenant_id: str | None = None,
        key_size: int = 2048,
        signing_key: rsa.RSAPrivateKey | None = None,
    ) -> None:
        self._authority = authority.strip().rstrip("/")
        if not urllib.parse.urlsplit(self._authority).hostname:
            raise ValueError("authority must be a base URL with a host")
        self._tenant_id = (tenant_id or str(uuid.uuid4())).lower()
        self._key_size = key_size
        self._lock = threading.Lock()
        key = signing_key or rsa.generate_private_key(public_exponent=65537, key_size=key_size)
        #: Published keys, the signing one first.
        self._keys: list[tuple[str, rsa.RSAPrivateKey]] = [(_kid(key), key)]

    @property
    def authority(self) -> str:
        return self._authority

    @property
    def tenant_id(self) -> str:
        return self._tenant_id

    @property
    def kid(self) -> str:
        """The key id of the current signing key."""
        with self._lock:
            return self._keys[0][0]

    @property
    def kids(self) -> list[str]:
        """The key ids the JWKS publishes, the signing one first."""
        with self._lock:
            return [kid for kid, _ in self._keys]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(authority={self._authority!r}, "
            f"tenant_id={self._tenant_id!r}, kid={self.kid!r})"
        )

    # --- documents ------------------------------------------------------------------------------

    def issuer(self, version: int = 1) -> str:
        """The ``iss`` of version ``version`` tokens (and of that version's metadata)."""
        base = f"{self._authority}/{self._tenant_id}"
        return f"{base}/" if _version(version) == 1 else f"{base}/v2.0"

    def metadata_url(self, version: int = 1) -> str:
        suffix = "" if _version(version) == 1 else "/v2.0"
        return f"{self._authority}/{self._tenant_id}{suffix}/.well-known/openid-configuration"

    def jwks_url(self, version: int = 1) -> str:
        suffix = "" if _version(version) == 1 else "/v2.0"
        return f"{self._authority}/{self._tenant_id}/discovery{suffix}/keys"

    def metadata(self, version: int = 1) -> dict[str, Any]:
        """The OpenID Connect discovery document of ``version``, shaped like Entra's."""
        base = f"{self._authority}/{self._tenant_id}"
        oauth = f"{base}/oauth2" if _version(version) == 1 else f"{base}/oauth2/v2.0"
        return {
            "issuer": self.issuer(version),
            "jwks_uri": self.jwks_url(version),
            "token_endpoint": f"{oauth}/token",
            "authorization_endpoint": f"{oauth}/authorize",
            "response_types_supported": ["code", "id_token", "code id_token", "token id_token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "tenant_region_scope": "EU",
        }

    def jwks(self) -> dict[str, Any]:
        """The published keys (public parts only), like Entra's ``discovery/keys``."""
        with self._lock:
            keys = list(self._keys)
        entries = []
        for kid, key in keys:
            entry = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            entries.append(
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": kid,
                    "x5t": kid,
                    "n": entry["n"],
                    "e": entry["e"],
                }
            )
        return {"keys": entries}

    def document(self, path: str) -> dict[str, Any] | None:
        """The JSON document for a request ``path`` under the authority, or None (404)."""
        path = urllib.parse.urlsplit(path).path
        for version in _VERSIONS:
            if path == urllib.parse.urlsplit(self.metadata_url(version)).path:
                return self.metadata(version)
            if path == urllib.parse.urlsplit(self.jwks_url(version)).path:
                return self.jwks()
        return None

    def public_key_pem(self) -> bytes:
        """The current signing key's public half, PEM (what an algorithm-confusion attack uses)."""
        with self._lock:
            key = self._keys[0][1]
        return key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    # --- keys -----------------------------------------------------------------------------------

    def rotate(self, *, keep_old: bool = True) -> str:
        """Sign with a new key from now on and return its kid. ``keep_old`` keeps publishing the
        previous keys (as Entra does during a rollover); otherwise they are withdrawn."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=self._key_size)
        kid = _kid(key)
        with self._lock:
            self._keys = [(kid, key), *self._keys] if keep_old else [(kid, key)]
        return kid

    # --- tokens ---------------------------------------------------------------------------------

    def issue(
        self,
        audience: str,
        *,
        object_id: str,
        app_id: str | None = None,
        version: int = 1,
        lifetime: float = 3600,
        not_before: float | None = None,
        extra_claims: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> str:
        """An app-only access token for ``audience``, as Entra issues to a managed identity
        whose service principal is ``object_id`` and client id ``app_id`` (random if None).

        ``extra_claims`` and ``headers`` are merged over the defaults (None removes an entry);
        the token is always signed with the current key, whatever the header then says.
        """
        claims = self._claims(audience, object_id, app_id, version, lifetime, not_before, now)
        return self.sign(_merge(claims, extra_claims), headers=headers, version=version)

    def issue_delegated(
        self,
        audience: str,
        *,
        object_id: str,
        app_id: str | None = None,
        scope: str = "user_impersonation",
        version: int = 1,
        lifetime: float = 3600,
        extra_claims: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> str:
        """A delegated token: user ``object_id`` signed in to client ``app_id`` with ``scope``
        (``scp``), and a pairwise ``sub`` that is not the ``oid``."""
        claims = self._claims(audience, object_id, app_id, version, lifetime, None, now)
        claims.update(
            scp=scope,
            sub=_b64(hashlib.sha256(f"{object_id}/{claims['aud']}".encode()).digest()[:32]),
            amr=["pwd", "mfa"],
            name="Test User",
            upn=f"user-{object_id[:8]}@contoso.example",
        )
        return self.sign(_merge(claims, extra_claims), version=version)

    def sign(
        self,
        claims: Mapping[str, Any],
        *,
        headers: Mapping[str, Any] | None = None,
        version: int = 1,
    ) -> str:
        """``claims`` signed with RS256 by the current key; the header is Entra's
        (``typ``, ``alg``, ``kid``, and ``x5t`` for v1) merged with ``headers``."""
        with self._lock:
            kid, key = self._keys[0]
        header: dict[str, Any] = {"typ": "JWT", "alg": "RS256"}
        if _version(version) == 1:
            header["x5t"] = kid
        header["kid"] = kid
        _merge(header, headers)
        signing_input = f"{_b64(_compact(header))}.{_b64(_compact(claims))}".encode("ascii")
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input.decode('ascii')}.{_b64(signature)}"

    def _claims(
        self,
        audience: str,
        object_id: str,
        app_id: str | None,
        version: int,
        lifetime: float,
        not_before: float | None,
        now: float | None,
    ) -> dict[str, Any]:
        issued = int(time.time() if now is None else now)
        app_id = app_id or str(uuid.uuid4())
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": self.issuer(version),
            "iat": issued,
            "nbf": int(issued if not_before is None else not_before),
            "exp": int(issued + lifetime),
            "aio": _b64(uuid.uuid4().bytes * 2),
        }
        if version == 1:
            claims.update(appid=app_id, appidacr="2", idp=self.issuer(1))
        else:
            claims.update(azp=app_id, azpacr="2")
        claims.update(
            oid=object_id,
            rh=f"0.{_b64(uuid.uuid4().bytes)}.",
            sub=object_id,
            tid=self._tenant_id,
            uti=_b64(uuid.uuid4().bytes),
            ver="1.0" if version == 1 else "2.0",
        )
        return claims


def _version(version: int) -> int:
    if version not in _VERSIONS:
        raise ValueError(f"version must be 1 or 2, not {version!r}")
    return version
