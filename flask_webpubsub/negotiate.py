"""Client access for browsers: who a negotiating client is, and its token and URL."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from flask import current_app

from .binding import AppBinding
from .core.tokens import build_client_token, client_access_url
from .core.wire import client_path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NegotiateOptions:
    """What a client access token grants. The app decides these, never the client."""

    user_id: str | None = None
    roles: Sequence[str] = ()
    #: Groups the connection joins as soon as it connects.
    groups: Sequence[str] = ()
    minutes_to_expire: float = 60
    #: ``default`` (Web PubSub clients), ``mqtt`` or ``socketio``.
    client_protocol: str = "default"

    def __post_init__(self) -> None:
        if self.user_id is not None and not isinstance(self.user_id, str):
            raise TypeError("NegotiateOptions.user_id must be a string")
        for name in ("roles", "groups"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise TypeError(f"NegotiateOptions.{name} must be a list of strings")
        if not isinstance(self.minutes_to_expire, (int, float)) or self.minutes_to_expire <= 0:
            raise ValueError("NegotiateOptions.minutes_to_expire must be a positive number")
        client_path("hub", self.client_protocol)  # raises ValueError for an unknown protocol

    @classmethod
    def from_value(cls, value: NegotiateOptions | dict[str, Any] | None) -> NegotiateOptions:
        """Options from what an ``on_negotiate`` hook returned."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            unknown = set(value) - {f.name for f in fields(cls)}
            if unknown:
                raise TypeError(
                    f"unknown negotiate options {sorted(unknown)}: use user_id, roles, groups, "
                    "minutes_to_expire and client_protocol"
                )
            return cls(**value)
        raise TypeError(
            f"an on_negotiate hook returned {type(value).__name__}; return NegotiateOptions, "
            "a dict with the same keys, or None"
        )


def logged_in_user_id() -> str | None:
    """The Flask-Login user's id, when Flask-Login is set up and somebody is logged in."""
    if getattr(current_app, "login_manager", None) is None:
        return None
    from flask_login import current_user

    if current_user.is_authenticated:
        user_id = current_user.get_id()
        return str(user_id) if user_id is not None else None
    return None


def client_access(
    binding: AppBinding, hub: str, options: NegotiateOptions | dict[str, Any] | None
) -> dict[str, str]:
    """``{"url", "baseUrl", "token"}`` for a client of ``hub``, as the service SDK returns it.

    With an access key the token is signed here, with no network call; with Microsoft Entra ID
    the service issues it.
    """
    opts = NegotiateOptions.from_value(options)
    name = binding.canonical_hub_name(hub)
    if name is None:
        raise KeyError(f"this app does not serve the hub {hub!r}")
    endpoint = binding.settings.endpoint
    base_url = client_access_url(endpoint, name, opts.client_protocol)
    if endpoint.access_key:
        token = build_client_token(
            endpoint,
            name,
            user_id=opts.user_id,
            roles=opts.roles,
            groups=opts.groups,
            minutes_to_expire=opts.minutes_to_expire,
            client_protocol=opts.client_protocol,
        )
    else:
        token = binding.client_for(name).get_client_access_token(
            user_id=opts.user_id,
            roles=list(opts.roles),
            groups=list(opts.groups),
            minutes_to_expire=int(opts.minutes_to_expire),
            client_protocol=opts.client_protocol,
        )["token"]
    return {"baseUrl": base_url, "token": token, "url": f"{base_url}?access_token={token}"}
