"""The Flask extension: :class:`WebPubSub`."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from flask import Blueprint, Flask, current_app

from .binding import EXTENSION_KEY, AppBinding, ClientFactory
from .config import CONFIG_KEYS, Settings, resolve_settings
from .core.errors import ConfigurationError
from .direct_dispatch import INTERNAL_HOOK, DirectDispatch
from .hubs import Hub
from .views import create_blueprint

if TYPE_CHECKING:
    from azure.messaging.webpubsubservice import WebPubSubServiceClient

    from .negotiate import NegotiateOptions


class _Unset(enum.Enum):
    UNSET = enum.auto()


_UNSET: Literal[_Unset.UNSET] = _Unset.UNSET


class WebPubSub(Hub):
    """Azure Web PubSub for a Flask app.

    ``WebPubSub(app)``, or ``WebPubSub()`` and later ``init_app(app)`` in an app factory; one
    instance may serve several apps. Its decorators register the default hub's handlers.

    Every keyword argument stands for the ``WEBPUBSUB_*`` config key of the same name in upper
    case, and beats it (``hub="chat"`` beats ``WEBPUBSUB_HUB``) without being written into the
    app's config (``init_app`` only fills in the defaults of keys the config lacks).
    ``client_factory`` builds the service client of each hub,
    ``WebPubSubServiceClient(endpoint=..., hub=..., credential=...)`` by default: tests pass a
    function with the same keyword arguments that returns a fake.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        connection_string: str | _Unset | None = _UNSET,
        endpoint: str | _Unset | None = _UNSET,
        access_key: str | _Unset | None = _UNSET,
        access_keys: Sequence[str] | _Unset = _UNSET,
        credential: Any = _UNSET,
        hub: str | _Unset | None = _UNSET,
        event_handler_path: str | _Unset = _UNSET,
        negotiate_path: str | _Unset | None = _UNSET,
        allowed_origins: Sequence[str] | _Unset | None = _UNSET,
        verify_signature: bool | _Unset | None = _UNSET,
        max_body_bytes: int | _Unset = _UNSET,
        direct_dispatch: bool | _Unset = _UNSET,
        client_factory: ClientFactory | _Unset | None = _UNSET,
    ) -> None:
        super().__init__()
        arguments = {
            "connection_string": connection_string,
            "endpoint": endpoint,
            "access_key": access_key,
            "access_keys": access_keys,
            "credential": credential,
            "hub": hub,
            "event_handler_path": event_handler_path,
            "negotiate_path": negotiate_path,
            "allowed_origins": allowed_origins,
            "verify_signature": verify_signature,
            "max_body_bytes": max_body_bytes,
            "direct_dispatch": direct_dispatch,
            "client_factory": client_factory,
        }
        self._overrides = {
            f"WEBPUBSUB_{name.upper()}": value
            for name, value in arguments.items()
            if value is not _UNSET
        }
        assert set(self._overrides) <= set(CONFIG_KEYS)
        self.hubs: dict[str, Hub] = {}
        if app is not None:
            self.init_app(app)

    def __repr__(self) -> str:
        return f"<WebPubSub hubs={[h.name for h in self.hubs.values()]!r}>"

    def register_hub(self, hub: Hub) -> None:
        """Serve another hub's events from the same event handler URL."""
        if hub.name is None:
            raise ValueError("a registered Hub needs a name: Hub('notifications')")
        key = hub.name.lower()
        if key in self.hubs and self.hubs[key] is not hub:
            raise ValueError(f"a hub named {hub.name!r} is registered already")
        self.hubs[key] = hub

    def init_app(self, app: Flask) -> None:
        """Read the config, and register the event handler and negotiate routes on ``app``."""
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "A 'WebPubSub' instance has already been registered on this Flask app. Import "
                "and use that instance instead."
            )
        for key, (default, _) in CONFIG_KEYS.items():
            app.config.setdefault(key, default)
        settings = resolve_settings(app.config, self._overrides)
        default_hub = settings.hub.lower()
        if default_hub in self.hubs:
            raise ConfigurationError(
                f"the hub {self.hubs[default_hub].name!r} is registered and is also "
                "WEBPUBSUB_HUB: use the extension's own decorators for the default hub"
            )
        binding = AppBinding(self, self.hubs, app, settings)
        app.extensions[EXTENSION_KEY] = binding
        blueprint = create_blueprint(binding)
        app.register_blueprint(blueprint)
        _exempt_from_csrf(app, blueprint)
        if settings.direct_dispatch:
            app.wsgi_app = DirectDispatch(binding, app.wsgi_app)  # type: ignore[method-assign]

    def _binding(self) -> AppBinding:
        try:
            binding = current_app.extensions[EXTENSION_KEY]
        except KeyError:
            raise RuntimeError(
                "The current Flask app is not registered with this 'WebPubSub' instance. Did "
                "you forget to call 'init_app', or did you create a new instance?"
            ) from None
        if binding.extension is not self:
            raise RuntimeError("The current Flask app is registered with another WebPubSub.")
        return binding  # type: ignore[no-any-return]

    @property
    def settings(self) -> Settings:
        """The current app's resolved settings."""
        return self._binding().settings

    @property
    def hub_names(self) -> list[str]:
        """The hubs the current app serves: the default one first."""
        return self._binding().hub_names

    @property
    def client(self) -> WebPubSubServiceClient:
        """The current app's service client for the default hub."""
        return self._binding().client

    def client_for(self, hub: str) -> WebPubSubServiceClient:
        """The current app's service client for one of its hubs."""
        return self._binding().client_for(hub)

    @property
    def credential(self) -> Any:
        """The Microsoft Entra ID credential the current app's service clients use without an
        access key: ``WEBPUBSUB_CREDENTIAL``, else ``DefaultAzureCredential``."""
        return self._binding().credential

    def get_client_access(
        self, options: NegotiateOptions | dict[str, Any] | None = None, *, hub: str | None = None
    ) -> dict[str, str]:
        """A client access token and URL, as the negotiate route returns them:
        ``{"url", "baseUrl", "token"}``."""
        from .negotiate import client_access

        return client_access(self._binding(), hub or self.settings.hub, options)


def _exempt_from_csrf(app: Flask, blueprint: Blueprint) -> None:
    """The service cannot send a CSRF token: exempt the upstream routes from Flask-WTF's check,
    whether CSRFProtect was set up before this extension or after it (before the first
    request)."""
    csrf = app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(blueprint)
        return

    def exempt_late_csrf() -> None:
        late = app.extensions.get("csrf")
        if late is not None:
            late.exempt(blueprint)
        # Done after the first request: drop this hook by rebinding the list. Flask is iterating
        # the old list object right now, so this skips nothing, as removing in place would.
        funcs = app.before_request_funcs
        funcs[None] = [f for f in funcs.get(None, []) if f is not exempt_late_csrf]

    setattr(exempt_late_csrf, INTERNAL_HOOK, True)
    app.before_request(exempt_late_csrf)
