"""Every configuration key, its default and its meaning, and their resolution into settings.

Settings are read once, in ``init_app``; keyword arguments of ``WebPubSub`` beat the app's
config, and are never written into it. A missing or malformed value fails there, with a message
that names the key and how to fix it, and never the secret itself.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .core.endpoint import ServiceEndpoint, normalize_endpoint, parse_connection_string
from .core.entra import EntraTokenValidator
from .core.errors import ConfigurationError, InvalidConnectionStringError
from .core.wire import HUB_NAME_RULE, MAX_UPSTREAM_BODY_BYTES, is_hub_name, origin_host

logger = logging.getLogger(__name__)

#: ``WEBPUBSUB_*`` key -> (default, meaning). The configuration reference in
#: docs/configuration.md is generated from it.
CONFIG_KEYS: dict[str, tuple[Any, str]] = {
    "WEBPUBSUB_CONNECTION_STRING": (
        None,
        "The service's connection string (Endpoint, AccessKey, optional Port).",
    ),
    "WEBPUBSUB_ENDPOINT": (
        None,
        "The service endpoint, when there is no connection string.",
    ),
    "WEBPUBSUB_ACCESS_KEY": (
        None,
        "The access key to use with WEBPUBSUB_ENDPOINT. Without one, Microsoft Entra ID is used.",
    ),
    "WEBPUBSUB_ACCESS_KEYS": (
        [],
        "More keys accepted in ce-signature (for example the secondary key, during rotation).",
    ),
    "WEBPUBSUB_CREDENTIAL": (
        None,
        "An azure-core TokenCredential for Entra ID; defaults to DefaultAzureCredential.",
    ),
    "WEBPUBSUB_ENTRA_TENANT_ID": (
        None,
        "The tenant (GUID) that issues the Entra ID tokens the service sends to the event "
        "handler. With the audience and the identities, every event needs a valid token.",
    ),
    "WEBPUBSUB_ENTRA_AUDIENCE": (
        None,
        "The audience of those tokens, as the hub's event handler settings name it (an App ID "
        "URI or a client id); a string or a list.",
    ),
    "WEBPUBSUB_ENTRA_IDENTITIES": (
        [],
        "The object or client ids of the Web PubSub resource's managed identity: the only "
        "callers accepted.",
    ),
    "WEBPUBSUB_ENTRA_AUTHORITY": (
        "https://login.microsoftonline.com",
        "Where the tenant's OpenID Connect metadata and signing keys are (sovereign clouds, or "
        "the emulator's).",
    ),
    "WEBPUBSUB_CLIENT_FACTORY": (
        None,
        "Builds each hub's service client from endpoint=, hub= and credential= keywords; "
        "WebPubSubServiceClient by default. Tests pass one that returns a fake.",
    ),
    "WEBPUBSUB_HUB": (None, "The default hub (required)."),
    "WEBPUBSUB_EVENT_HANDLER_PATH": (
        "/eventhandler",
        "Where the service sends events; None turns the event handler off.",
    ),
    "WEBPUBSUB_NEGOTIATE_PATH": ("/negotiate", "The negotiate route; None turns it off."),
    "WEBPUBSUB_ALLOWED_ORIGINS": (
        None,
        "Hosts allowed to send events (abuse protection); the endpoint's host by default, "
        "or ['*'].",
    ),
    "WEBPUBSUB_VERIFY_SIGNATURE": (
        None,
        "None: verify ce-signature whenever a key is known. False turns verification off, "
        "and lets an app without a way to authenticate the service start (with a warning).",
    ),
    "WEBPUBSUB_MAX_BODY_BYTES": (
        MAX_UPSTREAM_BODY_BYTES,
        "Largest event body accepted (413 above it); the service's limit is 1 MiB.",
    ),
    "WEBPUBSUB_DIRECT_DISPATCH": (
        False,
        "True: serve the event handler in front of Flask's request handling, in an app "
        "context only (several times faster; no request context, after_request or "
        "teardown_request functions or errorhandlers for upstream requests; while the app has "
        "a before_request function, upstream requests go through Flask, so that it runs).",
    ),
}

#: A documentation placeholder left in a setting: ``<name>``, ``<key>``, ``<your-key>``...
_PLACEHOLDER = re.compile(r"<[\w .-]*>")


def _environment_hint() -> str:
    """Why a connection string in the environment did not count, when one is there."""
    for name in ("WEBPUBSUB_CONNECTION_STRING", "FLASK_WEBPUBSUB_CONNECTION_STRING"):
        if os.environ.get(name):
            return (
                f" ({name} is set in the environment, but Flask reads environment variables "
                "only when the app asks: call app.config.from_prefixed_env() before "
                "WebPubSub(app), and name it FLASK_WEBPUBSUB_CONNECTION_STRING.)"
            )
    return ""


def validate_hub_name(name: str) -> str:
    """``name``, when the service accepts it as a hub name; else :class:`ConfigurationError`."""
    if not is_hub_name(name):
        raise ConfigurationError(f"invalid hub name {name!r}: use {HUB_NAME_RULE}")
    return name


@dataclass(frozen=True)
class Settings:
    """The resolved configuration of one app."""

    hub: str
    endpoint: ServiceEndpoint
    #: Keys that ce-signature may be made with (the access key first). Never in ``repr``.
    signature_keys: tuple[str, ...] = field(repr=False)
    verify_signature: bool
    #: Lower-case hosts; ``("*",)`` allows any.
    allowed_origins: tuple[str, ...]
    #: None: the app serves no events.
    event_handler_path: str | None
    negotiate_path: str | None
    max_body_bytes: int
    #: Serve the event handler in front of Flask's request handling (app context only).
    direct_dispatch: bool = False
    credential: Any = field(default=None, repr=False)
    #: Checks the service's Entra ID bearer token on every event; None when not configured.
    entra: EntraTokenValidator | None = field(default=None, repr=False)
    #: Builds a hub's service client (``endpoint=``, ``hub=``, ``credential=``); None: the SDK's.
    client_factory: Any = field(default=None, repr=False)

    @property
    def access_key(self) -> str | None:
        """The key tokens are signed with, or None with Microsoft Entra ID."""
        return self.endpoint.access_key


def _path(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise ConfigurationError(f"{key} must be a path starting with '/', not {value!r}")
    return value.rstrip("/") or "/"


def _strings(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple, set)) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"{key} must be a list of strings")
    return tuple(value)


def resolve_settings(
    config: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Turn ``WEBPUBSUB_*`` values into :class:`Settings`, or raise :class:`ConfigurationError`.

    ``overrides`` (the keyword arguments of ``WebPubSub``, by config key) beat ``config``; a key
    in neither takes its default from :data:`CONFIG_KEYS`.
    """
    config = {
        key: (overrides or {}).get(key, config.get(key, default))
        for key, (default, _) in CONFIG_KEYS.items()
    }
    hub = config.get("WEBPUBSUB_HUB")
    if not hub:
        raise ConfigurationError(
            "WEBPUBSUB_HUB is not set: set it to the hub name your clients connect to"
        )
    validate_hub_name(hub)

    connection_string = config.get("WEBPUBSUB_CONNECTION_STRING")
    endpoint_url = config.get("WEBPUBSUB_ENDPOINT")
    access_key = config.get("WEBPUBSUB_ACCESS_KEY")
    endpoint: ServiceEndpoint
    if connection_string:
        if not isinstance(connection_string, str):
            raise ConfigurationError("WEBPUBSUB_CONNECTION_STRING must be a string")
        try:
            endpoint = parse_connection_string(connection_string)
        except InvalidConnectionStringError as exc:
            raise InvalidConnectionStringError(
                f"WEBPUBSUB_CONNECTION_STRING is invalid: {exc}. Copy it from the Keys page of "
                "your Web PubSub resource (Endpoint=https://<name>.webpubsub.azure.com;"
                "AccessKey=<key>;Version=1.0;)"
            ) from None
    elif endpoint_url:
        if not isinstance(endpoint_url, str):
            raise ConfigurationError("WEBPUBSUB_ENDPOINT must be a string")
        try:
            url = normalize_endpoint(endpoint_url)
        except ValueError as exc:
            raise ConfigurationError(f"WEBPUBSUB_ENDPOINT is invalid: {exc}") from None
        if access_key is not None and (not isinstance(access_key, str) or not access_key):
            raise ConfigurationError("WEBPUBSUB_ACCESS_KEY must be a non-empty string")
        endpoint = ServiceEndpoint(url, access_key or None)
    else:
        raise ConfigurationError(
            "set WEBPUBSUB_CONNECTION_STRING to your Web PubSub resource's connection string "
            "(portal: Settings > Keys), or WEBPUBSUB_ENDPOINT with WEBPUBSUB_ACCESS_KEY or "
            "Microsoft Entra ID. For local development, `flask webpubsub emulator` runs the "
            "emulator and prints a connection string to use."
            + _environment_hint()
        )
    for key, value in (
        ("WEBPUBSUB_CONNECTION_STRING", connection_string),
        ("WEBPUBSUB_ENDPOINT", endpoint_url),
        ("WEBPUBSUB_ACCESS_KEY", access_key),
    ):
        if isinstance(value, str) and _PLACEHOLDER.search(value):
            raise ConfigurationError(
                f"{key} still holds a placeholder such as <name> or <key>: paste the real value "
                "from your Web PubSub resource (portal: Settings > Keys), or run `flask "
                "webpubsub emulator` for a local one"
            )

    extra_keys = _strings(config.get("WEBPUBSUB_ACCESS_KEYS"), "WEBPUBSUB_ACCESS_KEYS")
    keys = tuple(dict.fromkeys(k for k in (endpoint.access_key, *extra_keys) if k))

    verify = config.get("WEBPUBSUB_VERIFY_SIGNATURE")
    if verify not in (None, True, False):
        raise ConfigurationError("WEBPUBSUB_VERIFY_SIGNATURE must be None, True or False")
    if verify is True and not keys:
        raise ConfigurationError(
            "WEBPUBSUB_VERIFY_SIGNATURE is True but no access key is known: add the keys to "
            "WEBPUBSUB_ACCESS_KEYS"
        )
    origins = config.get("WEBPUBSUB_ALLOWED_ORIGINS")
    allowed: tuple[str, ...]
    if origins is None:
        allowed = (endpoint.host,)
    else:
        allowed = tuple("*" if o.strip() == "*" else origin_host(o) for o in
                        _strings(origins, "WEBPUBSUB_ALLOWED_ORIGINS"))
        if not allowed or not all(allowed):
            raise ConfigurationError(
                "WEBPUBSUB_ALLOWED_ORIGINS must list hosts such as 'x.webpubsub.azure.com', or '*'"
            )
        if "*" in allowed:
            allowed = ("*",)

    negotiate_path = config.get("WEBPUBSUB_NEGOTIATE_PATH", "/negotiate")
    max_body = config.get("WEBPUBSUB_MAX_BODY_BYTES")
    if not isinstance(max_body, int) or isinstance(max_body, bool) or max_body <= 0:
        raise ConfigurationError("WEBPUBSUB_MAX_BODY_BYTES must be a positive number of bytes")
    handler_path = config.get("WEBPUBSUB_EVENT_HANDLER_PATH")
    event_handler_path = (
        None if handler_path is None else _path(handler_path, "WEBPUBSUB_EVENT_HANDLER_PATH")
    )
    direct = config.get("WEBPUBSUB_DIRECT_DISPATCH", False)
    if direct not in (True, False):
        raise ConfigurationError("WEBPUBSUB_DIRECT_DISPATCH must be True or False")
    if direct and event_handler_path is None:
        raise ConfigurationError(
            "WEBPUBSUB_DIRECT_DISPATCH serves the event handler, and WEBPUBSUB_EVENT_HANDLER_PATH "
            "is None: turn one of them off"
        )
    if direct and event_handler_path == "/":
        raise ConfigurationError(
            "WEBPUBSUB_DIRECT_DISPATCH needs a WEBPUBSUB_EVENT_HANDLER_PATH of its own: with '/' "
            "it would take every POST and OPTIONS request of the app"
        )

    entra = _entra_validator(config)
    if event_handler_path is not None and not keys and entra is None and verify is not False:
        raise ConfigurationError(
            "the event handler cannot authenticate the Web PubSub service: configure an access "
            "key (WEBPUBSUB_CONNECTION_STRING, or WEBPUBSUB_ACCESS_KEY / WEBPUBSUB_ACCESS_KEYS) "
            "to verify ce-signature, or Microsoft Entra ID (WEBPUBSUB_ENTRA_TENANT_ID, "
            "WEBPUBSUB_ENTRA_AUDIENCE and WEBPUBSUB_ENTRA_IDENTITIES) to verify the service's "
            "bearer token. An app that serves no events sets WEBPUBSUB_EVENT_HANDLER_PATH = None"
        )
    if verify is False:
        logger.warning(
            "WEBPUBSUB_VERIFY_SIGNATURE is False: ce-signature is not verified%s.",
            ", and nothing else authenticates the service: anyone who can reach the event "
            "handler URL can send events as any user"
            if entra is None
            else "; the service's Entra ID token still is",
        )

    return Settings(
        hub=hub,
        endpoint=endpoint,
        signature_keys=keys,
        verify_signature=bool(keys) and verify is not False,
        allowed_origins=allowed,
        event_handler_path=event_handler_path,
        negotiate_path=None
        if negotiate_path is None
        else _path(negotiate_path, "WEBPUBSUB_NEGOTIATE_PATH"),
        max_body_bytes=max_body,
        direct_dispatch=bool(direct),
        credential=config.get("WEBPUBSUB_CREDENTIAL"),
        entra=entra,
        client_factory=_callable(
            config.get("WEBPUBSUB_CLIENT_FACTORY"), "WEBPUBSUB_CLIENT_FACTORY"
        ),
    )


def _callable(value: Any, key: str) -> Any:
    if value is not None and not callable(value):
        raise ConfigurationError(f"{key} must be callable, not {type(value).__name__}")
    return value


_ENTRA_KEYS = (
    "WEBPUBSUB_ENTRA_TENANT_ID",
    "WEBPUBSUB_ENTRA_AUDIENCE",
    "WEBPUBSUB_ENTRA_IDENTITIES",
)


def _entra_validator(config: Mapping[str, Any]) -> EntraTokenValidator | None:
    """The bearer-token check, when the ``WEBPUBSUB_ENTRA_*`` keys are set (all of them)."""
    given = [key for key in _ENTRA_KEYS if config.get(key)]
    if not given:
        return None
    missing = [key for key in _ENTRA_KEYS if key not in given]
    if missing:
        raise ConfigurationError(
            f"Microsoft Entra ID authentication of the service needs {', '.join(_ENTRA_KEYS)}; "
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set"
        )
    tenant = config["WEBPUBSUB_ENTRA_TENANT_ID"]
    if not isinstance(tenant, str):
        raise ConfigurationError("WEBPUBSUB_ENTRA_TENANT_ID must be a string (the tenant's GUID)")
    authority = config.get("WEBPUBSUB_ENTRA_AUTHORITY")
    if not isinstance(authority, str) or not authority:
        raise ConfigurationError("WEBPUBSUB_ENTRA_AUTHORITY must be a URL")
    try:
        return EntraTokenValidator(
            tenant_id=tenant,
            audiences=_strings(config["WEBPUBSUB_ENTRA_AUDIENCE"], "WEBPUBSUB_ENTRA_AUDIENCE"),
            identities=_strings(
                config["WEBPUBSUB_ENTRA_IDENTITIES"], "WEBPUBSUB_ENTRA_IDENTITIES"
            ),
            authority=authority,
        )
    except ValueError as exc:
        raise ConfigurationError(f"Microsoft Entra ID settings: {exc}") from None
