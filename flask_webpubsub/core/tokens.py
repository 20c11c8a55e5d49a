"""Client access tokens and URLs, and REST bearer tokens, as the app signs them.

Pure functions over PyJWT. Client tokens are byte-compatible with what
``WebPubSubServiceClient.get_client_access_token`` builds for key credentials, so an app can
switch between the two freely. The service's check of these tokens is in :mod:`.service`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import jwt

from .endpoint import ServiceEndpoint
from .wire import client_path

#: The claim the REST API reads the calling user from.
NAME_CLAIM = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"


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
