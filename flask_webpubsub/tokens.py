"""Connection strings, client access tokens and URLs, and REST bearer tokens.

Pure functions over PyJWT. Client tokens are byte-compatible with what
``WebPubSubServiceClient.get_client_access_token`` builds for key credentials, so an app can
switch between the two freely; the emulator verifies both kinds of token with the same module.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import jwt

from .errors import InvalidConnectionStringError, InvalidTokenError

ClientProtocol = Literal["default", "mqtt", "socketio"]

_CLIENT_PATHS: dict[str, str] = {
    "default": "/client/hubs/",
    "mqtt": "/clients/mqtt/hubs/",
    "socketio": "/clients/socketio/hubs/",
}

#: The claim the REST API reads the calling user from.
NAME_CLAIM = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"


@dataclass(frozen=True)
class ServiceEndpoint:
    """Where the service is, and the key to talk to it with (never shown in ``repr``)."""

    #: ``scheme://host[:port]`` in lower case, without a trailing slash.
    url: str
    access_key: str | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        """The host name, without the port."""
        return urlsplit(self.url).hostname or ""

    @property
    def websocket_url(self) -> str:
        """The endpoint with ``http`` mapped to ``ws`` and ``https`` to ``wss``."""
        return "ws" + self.url[4:]


def normalize_endpoint(endpoint: str, port: str | int | None = None) -> str:
    """Validate an endpoint URL and return ``scheme://host[:port]`` in lower case.

    Raises ``ValueError`` with a message that names what is wrong.
    """
    parts = urlsplit(endpoint.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("the endpoint must be an http:// or https:// URL with a host")
    try:
        explicit_port = parts.port
    except ValueError as exc:
        raise ValueError("the endpoint's port is not a number") from exc
    if port is not None and str(port).strip():
        try:
            explicit_port = int(str(port).strip())
        except ValueError as exc:
            raise ValueError("Port must be a number") from exc
        if not 0 < explicit_port < 65536:
            raise ValueError("Port must be between 1 and 65535")
    netloc = parts.hostname.lower()
    if ":" in netloc:  # IPv6 literal
        netloc = f"[{netloc}]"
    if explicit_port is not None:
        netloc = f"{netloc}:{explicit_port}"
    return f"{parts.scheme.lower()}://{netloc}"


def parse_connection_string(connection_string: str) -> ServiceEndpoint:
    """Parse ``Endpoint=...;AccessKey=...;Version=1.0;[Port=...]``.

    Keys are case-insensitive; values are split on the first ``=``. Errors name the missing or
    malformed part and never include the access key.
    """
    values: dict[str, str] = {}
    for segment in connection_string.split(";"):
        if not segment.strip():
            continue
        name, sep, value = segment.partition("=")
        if not sep:
            raise InvalidConnectionStringError(
                "malformed connection string: every part must look like Name=value"
            )
        values[name.strip().lower()] = value.strip()
    if not values.get("endpoint"):
        raise InvalidConnectionStringError("the connection string has no Endpoint=...")
    if not values.get("accesskey"):
        raise InvalidConnectionStringError("the connection string has no AccessKey=...")
    try:
        url = normalize_endpoint(values["endpoint"], values.get("port"))
    except ValueError as exc:
        raise InvalidConnectionStringError(f"the connection string's {exc}") from None
    return ServiceEndpoint(url=url, access_key=values["accesskey"])


def client_path(hub: str, client_protocol: str = "default") -> str:
    """The client connection path for a hub: ``/client/hubs/{hub}`` and its MQTT/Socket.IO forms."""
    try:
        return _CLIENT_PATHS[client_protocol.lower()] + hub
    except KeyError:
        raise ValueError(
            f"unknown client protocol {client_protocol!r}: use default, mqtt or socketio"
        ) from None


def client_access_url(endpoint: ServiceEndpoint, hub: str, client_protocol: str = "default") -> str:
    """``ws(s)://host[:port]/client/hubs/{hub}`` (without the token)."""
    return endpoint.websocket_url + client_path(hub, client_protocol)


def build_client_token(
    endpoint: ServiceEndpoint,
    hub: str,
    *,
    user_id: str | None = None,
    roles: Sequence[str] = (),
    groups: Sequence[str] = (),
    minutes_to_expire: float = 60,
    client_protocol: str = "default",
    now: float | None = None,
) -> str:
    """Sign a client access token with the endpoint's access key."""
    if not endpoint.access_key:
        raise ValueError("building a client token needs an access key")
    issued = int(time.time() if now is None else now)
    payload: dict[str, Any] = {
        "aud": endpoint.url + client_path(hub, client_protocol),
        "iat": issued,
        "exp": issued + int(minutes_to_expire * 60),
    }
    if user_id:
        payload["sub"] = user_id
    if roles:
        payload["role"] = list(roles)
    if groups:
        payload["webpubsub.group"] = list(groups)
    return jwt.encode(payload, endpoint.access_key, algorithm="HS256")


def build_service_token(url: str, access_key: str, *, user_id: str | None = None,
                        seconds_to_expire: int = 60, now: float | None = None) -> str:
    """A REST API bearer token for ``url``, as the service SDK builds it."""
    payload: dict[str, Any] = {
        "aud": url,
        "exp": int(time.time() if now is None else now) + seconds_to_expire,
    }
    if user_id:
        payload[NAME_CLAIM] = user_id
    return jwt.encode(payload, access_key, algorithm="HS256")


def _normalize_audience(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def verify_token(token: str, keys: Sequence[str], audience: str) -> dict[str, Any]:
    """Verify an HS256 token's signature (with any key), expiry and audience; return its claims.

    The audience is compared without query string, trailing slash or case of scheme and host.
    Raises :class:`InvalidTokenError` with a reason that does not contain the token.
    """
    claims: dict[str, Any] | None = None
    for key in keys:
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["HS256"],
                options={"verify_aud": False, "require": ["exp"]},
            )
            break
        except jwt.ExpiredSignatureError:
            raise InvalidTokenError("the token has expired") from None
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError:
            raise InvalidTokenError("the token is malformed") from None
    if claims is None:
        raise InvalidTokenError("the token's signature does not match any access key")
    aud = claims.get("aud")
    if not isinstance(aud, str) or _normalize_audience(aud) != _normalize_audience(audience):
        raise InvalidTokenError("the token's audience does not match this URL")
    return claims
