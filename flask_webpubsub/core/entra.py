"""Microsoft Entra ID bearer tokens on upstream requests: the checks, without a web framework.

With access keys disabled, Azure Web PubSub proves itself to the event handler with an Entra ID
access token issued to the resource's managed identity (``Authorization: Bearer <jwt>`` on every
upstream request). :class:`EntraTokenValidator` accepts such a token only if all of these hold,
and fails closed otherwise:

1. **Shape.** ``Bearer <jwt>`` (scheme case-insensitive), at most 16 KiB, three canonical
   base64url parts. Nothing is parsed before the length check.
2. **Algorithm.** The header's ``alg`` is exactly ``RS256``; this is checked before anything
   else is looked at. A header that brings its own key (``jwk``, ``jku``, ``x5u``, ``x5c``) or
   a ``crit`` extension is refused: keys come only from the tenant.
3. **Signature.** Verified with the key named by ``kid`` in the JWKS that the configured tenant's
   OpenID Connect metadata (v1 and v2) points to, fetched over HTTPS (plain HTTP only on a
   loopback host, for the local issuer).
4. **Issuer.** One of the ``issuer`` values of those two metadata documents (``{tenantid}`` is
   replaced by the configured tenant), so sovereign clouds and a local authority work; the
   signing key must be published by that issuer's JWKS; a ``tid`` claim must be the tenant.
5. **Audience.** One of the configured values; an App ID URI matches with or without its
   trailing slash (v1 tokens carry either), a client-id GUID is just another value.
6. **Lifetime.** ``exp`` required, ``nbf`` honoured, both with leeway.
7. **App-only.** A token with ``scp`` is delegated (a user's) and refused; ``idtyp``, when the
   API emits it, must be ``app``; otherwise ``sub`` must equal ``oid`` (true only of app tokens).
8. **Caller.** ``oid``, or ``appid`` (v1) / ``azp`` (v2), is one of the allowed identities: the
   Web PubSub resource's managed identity.

Keys are fetched lazily and cached. A token naming an unknown ``kid`` causes a refresh, at most
once per ``min_refresh_interval`` and by one thread at a time (the others wait for its result);
a failed refresh keeps the old keys. Keys older than ``key_max_age`` are refreshed on the next
request, by whichever thread gets there first without blocking the others, so a key the tenant
withdraws stops being trusted.

:class:`EntraTokenError` means the request is not authenticated (answer 401);
:class:`SigningKeysUnavailableError` means it could not be checked because the tenant's keys
were never obtained (answer 503). Neither message ever contains the token.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import RSAAlgorithm

from .jsoncodec import decode_json, encode_json
from .wire import is_loopback_host

__all__ = [
    "MAX_DOCUMENT_SIZE",
    "MAX_TOKEN_LENGTH",
    "EntraTokenError",
    "EntraTokenValidator",
    "SigningKeysUnavailableError",
    "fetch_url",
]

logger = logging.getLogger(__name__)

#: Longest ``Authorization`` value considered at all (Entra access tokens are 1-3 KB).
MAX_TOKEN_LENGTH: Final = 16 * 1024
#: Most bytes read from a metadata or JWKS document.
MAX_DOCUMENT_SIZE: Final = 1024 * 1024

_MAX_KEYS = 100
_MIN_KEY_BITS = 2048
_MAX_KEY_BITS = 8192
_MAX_KID_LENGTH = 128
_MAX_URL_LENGTH = 2048
_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_OWN_KEY_HEADERS = ("jwk", "jku", "x5u", "x5c")
_METADATA_PATHS = (
    (1, ".well-known/openid-configuration"),
    (2, "v2.0/.well-known/openid-configuration"),
)
_RS256 = RSAAlgorithm(RSAAlgorithm.SHA256)


class EntraTokenError(ValueError):
    """The bearer token is missing or not acceptable: answer 401. The message is the reason."""

    status = 401

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SigningKeysUnavailableError(RuntimeError):
    """The tenant's signing keys were never obtained, so no token can be checked: answer 503."""

    status = 503

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Unavailable(Exception):
    """A fetch or a document failed; the message says why (a URL at most, never a token)."""


@dataclass(frozen=True)
class _KeySet:
    """One successful fetch: the keys by ``kid``, which issuers publish each, when."""

    keys: Mapping[str, RSAPublicKey]
    issuers_by_kid: Mapping[str, frozenset[str]]
    issuers: frozenset[str]
    fetched_at: float


@dataclass(frozen=True)
class _Validated:
    """A token that passed every check, remembered by its exact string."""

    payload: bytes
    kid: str
    key: RSAPublicKey
    not_before: float | None
    expires: float


def _check_url(url: str, what: str) -> str:
    """``url`` if it is HTTPS, or HTTP on a loopback host; otherwise a ValueError."""
    if len(url) > _MAX_URL_LENGTH:
        raise ValueError(f"the {what} is longer than {_MAX_URL_LENGTH} characters")
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise ValueError(f"the {what} is not a URL") from None
    if not host:
        raise ValueError(f"the {what} {url!r} has no host")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(host)):
        return url
    raise ValueError(f"the {what} {url!r} must be https (plain http only on a loopback host)")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError for the 3xx


def fetch_url(url: str, timeout: float) -> bytes:
    """GET ``url``: the body of a 200 answer, at most :data:`MAX_DOCUMENT_SIZE` bytes, within
    ``timeout`` seconds in all. Redirects are refused; loopback hosts bypass any proxy."""
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if is_loopback_host(urllib.parse.urlsplit(url).hostname):
        handlers.append(urllib.request.ProxyHandler({}))
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked by _check_url
        url, headers={"Accept": "application/json", "User-Agent": "flask-webpubsub"}
    )
    deadline = time.monotonic() + timeout
    try:
        with opener.open(request, timeout=timeout) as response:
            if response.status != 200:
                raise OSError(f"HTTP {response.status}")
            chunks: list[bytes] = []
            size = 0
            while chunk := response.read(64 * 1024):
                size += len(chunk)
                if size > MAX_DOCUMENT_SIZE:
                    raise OSError(f"the document is larger than {MAX_DOCUMENT_SIZE} bytes")
                if time.monotonic() > deadline:
                    raise TimeoutError("timed out")
                chunks.append(chunk)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise OSError(f"HTTP {exc.code}") from None
    return b"".join(chunks)


def _b64decode(segment: str) -> bytes | None:
    """Canonical unpadded base64url only (one encoding per value), else None."""
    if len(segment) % 4 == 1:
        return None
    try:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None
    if base64.urlsafe_b64encode(data).rstrip(b"=") != segment.encode("ascii"):
        return None
    return data


def _json_object(data: bytes) -> dict[str, Any] | None:
    try:
        value = decode_json(data)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _shown(value: object, limit: int = 36) -> str:
    """A claim or header value for a message: printable ASCII, at most ``limit`` characters."""
    text = value if isinstance(value, str) else encode_json(value).decode()
    text = "".join(c if " " <= c <= "~" else "?" for c in text[: limit + 1])
    return text if len(text) <= limit else text[:limit] + "..."


def _numeric(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise EntraTokenError(f"the token's {name!r} is not a number")
    return float(value)


def _strip_slash(value: str) -> str:
    return value[:-1] if value.endswith("/") else value


def _strings(name: str, values: Sequence[str], lower: bool) -> frozenset[str]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a sequence of strings, not {type(values).__name__}")
    if not values:
        raise ValueError(f"{name} must not be empty")
    result = set()
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name} must hold non-empty strings")
        value = value.strip()
        result.add(value.lower() if lower else _strip_slash(value))
    return frozenset(result)


class EntraTokenValidator:
    """Checks the ``Authorization`` header of upstream requests; see the module docstring.

    ``tenant_id`` is the tenant's GUID; ``audiences`` the values the hub's event handler is
    configured to request (App ID URI and/or client id); ``identities`` the managed identity's
    object id (``oid``) and/or client id (``appid``/``azp``). ``fetch(url, timeout)`` returns a
    document's body (default :func:`fetch_url`). ``retry_interval``: with no keys yet, how long
    after a failed fetch requests are refused (503) without fetching again. ``cache_size``: how
    many validated tokens are remembered (0 turns the cache off). Thread-safe.
    """

    def __init__(
        self,
        *,
        tenant_id: str,
        audiences: Sequence[str],
        identities: Sequence[str],
        authority: str = "https://login.microsoftonline.com",
        leeway: float = 60.0,
        min_refresh_interval: float = 300.0,
        retry_interval: float = 10.0,
        key_max_age: float = 24 * 3600.0,
        fetch_timeout: float = 5.0,
        cache_size: int = 64,
        fetch: Callable[[str, float], bytes] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(tenant_id, str) or not tenant_id.strip():
            raise ValueError("tenant_id must not be empty")
        if not _GUID.fullmatch(tenant_id.strip()):
            raise ValueError(
                "tenant_id must be the tenant's GUID (not a domain name, 'common' or "
                "'organizations', which would accept other tenants)"
            )
        for name, number in (
            ("leeway", leeway),
            ("min_refresh_interval", min_refresh_interval),
            ("retry_interval", retry_interval),
            ("key_max_age", key_max_age),
        ):
            if not math.isfinite(number) or number < 0:
                raise ValueError(f"{name} must be a finite number >= 0")
        if not math.isfinite(fetch_timeout) or fetch_timeout <= 0:
            raise ValueError("fetch_timeout must be a finite number > 0")
        if cache_size < 0:
            raise ValueError("cache_size must be >= 0")
        self._tenant_id = tenant_id.strip().lower()
        self._audiences = _strings("audiences", audiences, lower=False)
        self._identities = _strings("identities", identities, lower=True)
        self._authority = _check_url(authority.strip().rstrip("/"), "authority")
        self._leeway = float(leeway)
        self._min_refresh_interval = float(min_refresh_interval)
        self._retry_interval = float(retry_interval)
        self._key_max_age = float(key_max_age)
        self._fetch_timeout = float(fetch_timeout)
        self._cache_size = cache_size
        self._fetch = fetch if fetch is not None else fetch_url
        self._clock = clock
        self._keyset: _KeySet | None = None
        self._fetch_lock = threading.Lock()
        self._last_attempt: float | None = None
        self._last_error = "they have not been fetched yet"
        self._cache: OrderedDict[str, _Validated] = OrderedDict()
        self._cache_lock = threading.Lock()

    @property
    def tenant_id(self) -> str:
        return self._tenant_id

    @property
    def authority(self) -> str:
        return self._authority

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(tenant_id={self._tenant_id!r}, "
            f"audiences={sorted(self._audiences)!r}, identities={sorted(self._identities)!r}, "
            f"authority={self._authority!r})"
        )

    # --- the checks ---------------------------------------------------------------------------

    def validate(self, authorization: str | None) -> dict[str, Any]:
        """The claims of the bearer token in ``authorization`` (the header's value).

        Raises :class:`EntraTokenError` (401) or :class:`SigningKeysUnavailableError` (503).
        """
        token = self._bearer(authorization)
        cached = self._cached(token)  # holds only tokens that passed every check
        if cached is not None:
            return cached
        if not _JWT.fullmatch(token):
            raise EntraTokenError("the bearer token is not a JWT")
        header_b64, payload_b64, signature_b64 = token.split(".")
        header = self._header(header_b64)
        payload = _b64decode(payload_b64)
        signature = _b64decode(signature_b64)
        if payload is None or signature is None:
            raise EntraTokenError("the bearer token is not a JWT (a part is not base64url)")
        kid = header["kid"]
        keyset, key = self._key_for(kid)
        signing_input = token[: len(header_b64) + 1 + len(payload_b64)].encode("ascii")
        try:
            valid = _RS256.verify(signing_input, key, signature)
        except (ValueError, TypeError):
            valid = False
        if not valid:
            raise EntraTokenError("the token's signature is not valid")
        claims = _json_object(payload)
        if claims is None:
            raise EntraTokenError("the token's payload is not a JSON object")
        not_before, expires = self._check_claims(claims, keyset, kid)
        self._remember(token, _Validated(payload, kid, key, not_before, expires))
        return claims

    def _bearer(self, authorization: str | None) -> str:
        if not authorization:
            raise EntraTokenError("no Authorization header")
        if len(authorization) > MAX_TOKEN_LENGTH:
            raise EntraTokenError(
                f"the Authorization header is longer than {MAX_TOKEN_LENGTH} characters"
            )
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise EntraTokenError("the Authorization header is not a Bearer token")
        token = token.strip()
        if not token:
            raise EntraTokenError("the Authorization header has no token")
        return token

    def _header(self, header_b64: str) -> dict[str, Any]:
        raw = _b64decode(header_b64)
        header = _json_object(raw) if raw is not None else None
        if header is None:
            raise EntraTokenError("the token's header is not base64url of a JSON object")
        alg = header.get("alg")
        if alg != "RS256":
            raise EntraTokenError(f"the token's algorithm '{_shown(alg, 20)}' is not RS256")
        for name in _OWN_KEY_HEADERS:
            if name in header:
                raise EntraTokenError(
                    f"the token's header brings its own key ({name!r}); only the tenant's keys "
                    "are trusted"
                )
        if "crit" in header:
            raise EntraTokenError("the token's header has a 'crit' extension, not supported")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > _MAX_KID_LENGTH:
            raise EntraTokenError("the token's header has no valid key id ('kid')")
        return header

    def _check_claims(
        self, claims: Mapping[str, Any], keyset: _KeySet, kid: str
    ) -> tuple[float | None, float]:
        issuer = claims.get("iss")
        if not isinstance(issuer, str) or issuer not in keyset.issuers:
            raise EntraTokenError("the token's issuer is not the configured tenant's")
        if issuer not in keyset.issuers_by_kid.get(kid, ()):
            raise EntraTokenError("the token's signing key is not published by its issuer")
        if "tid" in claims:
            tid = claims["tid"]
            if not isinstance(tid, str) or tid.lower() != self._tenant_id:
                raise EntraTokenError("the token's tenant ('tid') is not the configured tenant")
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or not any(
            isinstance(value, str) and _strip_slash(value) in self._audiences
            for value in audiences
        ):
            raise EntraTokenError("the token's audience is not one of the configured audiences")
        now = self._clock()
        expires = _numeric(claims, "exp")
        if expires is None:
            raise EntraTokenError("the token has no expiry ('exp')")
        if now > expires + self._leeway:
            raise EntraTokenError("the token has expired")
        not_before = _numeric(claims, "nbf")
        if not_before is not None and now + self._leeway < not_before:
            raise EntraTokenError("the token is not valid yet ('nbf')")
        self._check_caller(claims)
        return not_before, expires

    def _check_caller(self, claims: Mapping[str, Any]) -> None:
        if "scp" in claims:
            raise EntraTokenError("the token is delegated (it has 'scp'), not an application's")
        oid = claims.get("oid")
        if "idtyp" in claims:
            if claims["idtyp"] != "app":
                raise EntraTokenError(
                    f"the token's identity type ('idtyp') is '{_shown(claims['idtyp'], 20)}', "
                    "not 'app'"
                )
        elif not isinstance(oid, str) or claims.get("sub") != oid:
            raise EntraTokenError("the token is not app-only (its 'sub' is not its 'oid')")
        callers = [(name, claims.get(name)) for name in ("oid", "appid", "azp")]
        present = [(name, value) for name, value in callers if isinstance(value, str)]
        if not present:
            raise EntraTokenError("the token names no caller ('oid', 'appid' or 'azp')")
        if not any(value.lower() in self._identities for _, value in present):
            name, value = present[0]
            raise EntraTokenError(f"the caller '{name} {_shown(value)}' is not an allowed identity")

    # --- validated tokens -----------------------------------------------------------------------

    def _cached(self, token: str) -> dict[str, Any] | None:
        if not self._cache_size:
            return None
        with self._cache_lock:
            entry = self._cache.get(token)
            if entry is None:
                return None
            self._cache.move_to_end(token)
        now = self._clock()
        keyset = self._current_keys(now)
        if (
            keyset is not None
            and keyset.keys.get(entry.kid) is entry.key
            and now <= entry.expires + self._leeway
            and (entry.not_before is None or now + self._leeway >= entry.not_before)
        ):
            claims: dict[str, Any] = decode_json(entry.payload)
            return claims
        with self._cache_lock:  # expired, or its key was withdrawn: check it again in full
            self._cache.pop(token, None)
        return None

    def _remember(self, token: str, entry: _Validated) -> None:
        if not self._cache_size:
            return
        with self._cache_lock:
            self._cache[token] = entry
            self._cache.move_to_end(token)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    # --- signing keys ---------------------------------------------------------------------------

    def _current_keys(self, now: float) -> _KeySet | None:
        """The cached keys, refreshed first if older than ``key_max_age`` (by one thread; the
        others go on with the current keys meanwhile)."""
        keyset = self._keyset
        if keyset is not None and now - keyset.fetched_at >= self._key_max_age:
            self._refresh_stale()
            keyset = self._keyset
        return keyset

    def _key_for(self, kid: str) -> tuple[_KeySet, RSAPublicKey]:
        keyset = self._current_keys(self._clock())
        if keyset is not None:
            key = keyset.keys.get(kid)
            if key is not None:
                return keyset, key
        with self._fetch_lock:  # single flight: whoever waited here sees the fetch's result
            keyset = self._keyset
            if keyset is None or kid not in keyset.keys:
                if self._may_fetch(self._clock()):
                    self._fetch_keys()
                keyset = self._keyset
        if keyset is None:
            raise SigningKeysUnavailableError(
                f"the tenant's signing keys are unavailable: {self._last_error}"
            )
        key = keyset.keys.get(kid)
        if key is None:
            raise EntraTokenError(
                f"the token's signing key (kid '{_shown(kid, 40)}') is not one of the tenant's"
            )
        return keyset, key

    def _may_fetch(self, now: float) -> bool:
        last = self._last_attempt
        if last is None or now < last:  # never tried, or the clock went back
            return True
        interval = self._min_refresh_interval if self._keyset is not None else self._retry_interval
        return now - last >= interval

    def _refresh_stale(self) -> None:
        if not self._fetch_lock.acquire(blocking=False):
            return  # another thread is fetching; the current keys serve meanwhile
        try:
            keyset, now = self._keyset, self._clock()
            stale = keyset is not None and now - keyset.fetched_at >= self._key_max_age
            if stale and self._may_fetch(now):
                self._fetch_keys()
        finally:
            self._fetch_lock.release()

    def _fetch_keys(self) -> None:
        """Fetch metadata and keys (the caller holds the lock); on failure keep the old keys."""
        now = self._clock()
        self._last_attempt = now
        try:
            keyset = self._load(now)
        except _Unavailable as exc:
            self._last_error = str(exc)
            logger.warning(
                "Entra ID signing keys for tenant %s: %s%s",
                self._tenant_id,
                exc,
                "; keeping the keys fetched before" if self._keyset is not None else "",
            )
            return
        self._keyset = keyset
        logger.info(
            "Entra ID signing keys for tenant %s: %d key(s) from %s",
            self._tenant_id,
            len(keyset.keys),
            self._authority,
        )

    def _load(self, now: float) -> _KeySet:
        issuers_by_jwks: dict[str, set[str]] = {}
        for version, path in _METADATA_PATHS:
            url = f"{self._authority}/{self._tenant_id}/{path}"
            document = self._document(url)
            issuer, jwks_uri = document.get("issuer"), document.get("jwks_uri")
            if not isinstance(issuer, str) or not isinstance(jwks_uri, str):
                raise _Unavailable(f"the v{version} metadata {url} has no 'issuer' or 'jwks_uri'")
            issuer = issuer.replace("{tenantid}", self._tenant_id)
            try:
                issuer_path = urllib.parse.urlsplit(issuer).path.lower().split("/")
                _check_url(jwks_uri, "jwks_uri")
            except ValueError as exc:
                raise _Unavailable(f"the v{version} metadata {url}: {exc}") from None
            if self._tenant_id not in issuer_path:
                raise _Unavailable(f"the v{version} metadata {url} names another tenant's issuer")
            issuers_by_jwks.setdefault(jwks_uri, set()).add(issuer)
        previous = self._keyset.keys if self._keyset is not None else {}
        keys: dict[str, RSAPublicKey] = {}
        issuers_by_kid: dict[str, set[str]] = {}
        ambiguous: set[str] = set()
        for jwks_uri, issuers in issuers_by_jwks.items():
            for kid, key in self._jwks(jwks_uri).items():
                if kid in keys and not _same_key(keys[kid], key):
                    ambiguous.add(kid)  # the key sets disagree about this kid: trust neither
                old = previous.get(kid)
                # The same key object as before, so a refresh keeps validated tokens cached.
                keys[kid] = old if old is not None and _same_key(old, key) else key
                issuers_by_kid.setdefault(kid, set()).update(issuers)
        for kid in ambiguous:
            del keys[kid], issuers_by_kid[kid]
        if not keys:
            raise _Unavailable("the tenant's key sets have no usable key in common")
        return _KeySet(
            keys=keys,
            issuers_by_kid={kid: frozenset(issuers) for kid, issuers in issuers_by_kid.items()},
            issuers=frozenset(set().union(*issuers_by_jwks.values())),
            fetched_at=now,
        )

    def _document(self, url: str) -> dict[str, Any]:
        try:
            body = self._fetch(url, self._fetch_timeout)
        except Exception as exc:  # fail closed on whatever the fetch raises
            raise _Unavailable(f"fetching {url} failed: {type(exc).__name__}: {exc}") from None
        if not isinstance(body, bytes):
            raise _Unavailable(f"fetching {url} gave {type(body).__name__}, not bytes")
        if len(body) > MAX_DOCUMENT_SIZE:
            raise _Unavailable(f"{url} answered more than {MAX_DOCUMENT_SIZE} bytes")
        document = _json_object(body)
        if document is None:
            raise _Unavailable(f"{url} did not answer a JSON object")
        return document

    def _jwks(self, url: str) -> dict[str, RSAPublicKey]:
        entries = self._document(url).get("keys")
        if not isinstance(entries, list) or len(entries) > _MAX_KEYS:
            raise _Unavailable(f"{url} has no 'keys' list (of at most {_MAX_KEYS})")
        keys: dict[str, RSAPublicKey] = {}
        ambiguous: set[str] = set()
        for entry in entries:
            key = _public_key(entry)
            if key is None:
                continue
            kid = entry["kid"]
            if kid in keys and not _same_key(keys[kid], key):
                ambiguous.add(kid)  # two keys under one kid: trust neither
            keys[kid] = key
        for kid in ambiguous:
            del keys[kid]
        if not keys:
            raise _Unavailable(f"{url} has no usable RS256 signing key")
        return keys


def _same_key(one: RSAPublicKey, other: RSAPublicKey) -> bool:
    return one.public_numbers() == other.public_numbers()


def _public_key(entry: object) -> RSAPublicKey | None:
    """The RSA public signing key of a JWKS entry, or None for anything else."""
    if not isinstance(entry, dict):
        return None
    kid, n, e = entry.get("kid"), entry.get("n"), entry.get("e")
    if not isinstance(kid, str) or not kid or len(kid) > _MAX_KID_LENGTH:
        return None
    if entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
        return None
    if entry.get("alg", "RS256") != "RS256" or "d" in entry:  # never a private key
        return None
    if not isinstance(n, str) or not isinstance(e, str) or len(n) > 1400 or len(e) > 16:
        return None
    try:
        key = RSAAlgorithm.from_jwk({"kty": "RSA", "n": n, "e": e})
    except Exception:  # InvalidKeyError, ValueError...: a malformed entry is skipped, never a crash
        return None
    if not isinstance(key, RSAPublicKey) or not _MIN_KEY_BITS <= key.key_size <= _MAX_KEY_BITS:
        return None
    return key
