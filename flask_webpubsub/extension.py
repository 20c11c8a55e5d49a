"""The Flask extension: handler registration, per-app state and the service clients."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from flask import Blueprint, Flask, Response, current_app

from .config import CONFIG_KEYS, Settings, resolve_settings, validate_hub_name
from .errors import ConfigurationError

if TYPE_CHECKING:
    from azure.messaging.webpubsubservice import WebPubSubServiceClient

    from .negotiate import NegotiateOptions

F = TypeVar("F", bound=Callable[..., Any])

#: Where the extension keeps its per-app state: ``app.extensions[EXTENSION_KEY]``.
EXTENSION_KEY = "webpubsub"


class Hub:
    """The event handlers of one hub, registered with decorators, like a Flask ``Blueprint``.

    The :class:`WebPubSub` extension is itself the hub named by ``WEBPUBSUB_HUB``; serve more
    hubs from the same event handler URL with :meth:`WebPubSub.register_hub`::

        notifications = Hub("notifications")

        @notifications.on_connect
        def connect(event): ...

        webpubsub.register_hub(notifications)
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = validate_hub_name(name) if name is not None else None
        self.connect_handler: Callable[..., Any] | None = None
        self.connected_handler: Callable[..., Any] | None = None
        self.disconnected_handler: Callable[..., Any] | None = None
        self.group_joined_handler: Callable[..., Any] | None = None
        self.group_left_handler: Callable[..., Any] | None = None
        self.negotiate_handler: Callable[..., Any] | None = None
        self.user_event_handlers: dict[str, Callable[..., Any]] = {}
        self.default_user_event_handler: Callable[..., Any] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def on_connect(self, f: F) -> F:
        """Register the handler of ``connect`` (a :class:`ConnectEvent`).

        It returns a :class:`ConnectResponse` or None to accept, and rejects with ``abort()``.
        """
        self.connect_handler = f
        return f

    def on_connected(self, f: F) -> F:
        """Register the handler of ``connected`` (a :class:`ConnectedEvent`)."""
        self.connected_handler = f
        return f

    def on_disconnected(self, f: F) -> F:
        """Register the handler of ``disconnected`` (a :class:`DisconnectedEvent`)."""
        self.disconnected_handler = f
        return f

    def on_group_joined(self, f: F) -> F:
        """Register the handler of ``gp.joined`` (a :class:`GroupJoinedEvent`)."""
        self.group_joined_handler = f
        return f

    def on_group_left(self, f: F) -> F:
        """Register the handler of ``gp.left`` (a :class:`GroupLeftEvent`)."""
        self.group_left_handler = f
        return f

    @overload
    def on_user_event(self, name: F) -> F: ...

    @overload
    def on_user_event(self, name: str | None = None) -> Callable[[F], F]: ...

    def on_user_event(self, name: str | F | None = None) -> Callable[[F], F] | F:
        """Register the handler of the user event ``name`` (a :class:`UserEvent`).

        Without a name, the handler gets every user event that has no handler of its own. Its
        return value is the reply sent to the client: ``str`` as text, ``bytes`` as binary, a
        dict, list, number or bool as JSON, a :class:`UserEventResponse`, or None for no reply.
        """
        if callable(name):
            self.default_user_event_handler = name
            return name
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError("on_user_event() takes an event name or nothing")

        def decorator(f: F) -> F:
            if name is None:
                self.default_user_event_handler = f
            else:
                self.user_event_handlers[name] = f
            return f

        return decorator

    def on_negotiate(self, f: F) -> F:
        """Register the function that decides who a negotiating client is.

        It is called in the request context of the negotiate route (so it can read the session
        or ``abort(401)``) and returns :class:`NegotiateOptions`, a dict with the same keys, or
        None for an anonymous client.
        """
        self.negotiate_handler = f
        return f

    def user_event_handler(self, name: str) -> Callable[..., Any] | None:
        """The handler for a user event: its own, else the catch-all, else None."""
        return self.user_event_handlers.get(name, self.default_user_event_handler)


class WebPubSubState:
    """What the extension keeps per app, at ``app.extensions["webpubsub"]``."""

    def __init__(self, extension: WebPubSub, settings: Settings, app: Flask) -> None:
        self.extension = extension
        self.settings = settings
        self._clients: dict[str, WebPubSubServiceClient] = {}
        self._lock = threading.RLock()
        self._default_hub = settings.hub.lower()
        self._credential: Any = settings.credential
        self._app = app
        self._synced: dict[Callable[..., Any], Callable[..., Any]] = {}

    @property
    def app(self) -> Flask:
        """The app this state belongs to."""
        return self._app

    def __repr__(self) -> str:
        return f"<WebPubSubState hub={self.settings.hub!r} endpoint={self.settings.endpoint.url!r}>"

    @property
    def response_class(self) -> type[Response]:
        """The app's response class."""
        return self._app.response_class

    def ensure_sync(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """``app.ensure_sync(handler)``, worked out once per handler rather than per event."""
        synced = self._synced.get(handler)
        if synced is None:
            synced = self._synced[handler] = self._app.ensure_sync(handler)
        return synced

    @property
    def hub_names(self) -> list[str]:
        """The hubs this app serves: the default one first."""
        return [self.settings.hub, *(h.name for h in self.extension.hubs.values() if h.name)]

    def find_hub(self, name: str) -> Hub | None:
        """A served hub's handlers, matched case-insensitively; None for any other hub."""
        key = name.lower()
        if key == self._default_hub:
            return self.extension
        return self.extension.hubs.get(key)

    def canonical_hub_name(self, name: str) -> str | None:
        """The configured spelling of a served hub's name."""
        hub = self.find_hub(name)
        if hub is None:
            return None
        return self.settings.hub if hub is self.extension else hub.name

    @property
    def client(self) -> WebPubSubServiceClient:
        """The service client of the default hub."""
        return self.client_for(self.settings.hub)

    def client_for(self, hub: str) -> WebPubSubServiceClient:
        """The service client of a hub this app serves, created once and reused."""
        name = self.canonical_hub_name(hub)
        if name is None:
            raise KeyError(f"this app does not serve the hub {hub!r}; register it first")
        client = self._clients.get(name)
        if client is None:
            with self._lock:
                client = self._clients.get(name)
                if client is None:
                    client = self._clients[name] = self._create_client(name)
        return client

    def _create_client(self, hub: str) -> WebPubSubServiceClient:
        from azure.messaging.webpubsubservice import WebPubSubServiceClient

        endpoint = self.settings.endpoint
        if endpoint.access_key:
            from azure.core.credentials import AzureKeyCredential

            return WebPubSubServiceClient(
                endpoint=endpoint.url, hub=hub, credential=AzureKeyCredential(endpoint.access_key)
            )
        return WebPubSubServiceClient(endpoint=endpoint.url, hub=hub, credential=self.credential)

    @property
    def credential(self) -> Any:
        """The Microsoft Entra ID credential: the configured one, else DefaultAzureCredential."""
        if self._credential is not None:
            return self._credential
        try:
            from azure.identity import DefaultAzureCredential  # type: ignore[import-untyped]
        except ImportError:
            raise ConfigurationError(
                "no access key is configured, so Microsoft Entra ID is used, which needs "
                "azure-identity: pip install 'flask-webpubsub[identity]', or set "
                "WEBPUBSUB_CREDENTIAL"
            ) from None
        with self._lock:
            if self._credential is None:
                self._credential = DefaultAzureCredential()
        return self._credential


class WebPubSub(Hub):
    """Azure Web PubSub for a Flask app.

    ``WebPubSub(app)``, or ``WebPubSub()`` and later ``init_app(app)`` in an app factory; one
    instance may serve several apps. Decorators register the default hub's handlers.
    Keyword arguments override the ``WEBPUBSUB_*`` config keys of the same name, in lower case
    (``hub="chat"`` beats ``WEBPUBSUB_HUB``).
    """

    def __init__(self, app: Flask | None = None, **options: Any) -> None:
        super().__init__()
        unknown = {f"WEBPUBSUB_{name.upper()}" for name in options} - set(CONFIG_KEYS)
        if unknown:
            raise TypeError(f"unknown WebPubSub options: {sorted(unknown)}")
        self._options = {f"WEBPUBSUB_{name.upper()}": value for name, value in options.items()}
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
            if key in self._options:
                app.config[key] = self._options[key]
            else:
                app.config.setdefault(key, default)
        settings = resolve_settings(app.config)
        for hub in self.hubs.values():
            if hub.name and hub.name.lower() == settings.hub.lower():
                raise ConfigurationError(
                    f"the hub {hub.name!r} is registered and is also WEBPUBSUB_HUB: use the "
                    "extension's own decorators for the default hub"
                )
        state = app.extensions[EXTENSION_KEY] = WebPubSubState(self, settings, app)

        from .views import create_blueprint, direct_dispatch

        blueprint = create_blueprint(state)
        app.register_blueprint(blueprint)
        _exempt_from_csrf(app, blueprint)
        if settings.direct_dispatch:
            app.wsgi_app = direct_dispatch(state, app.wsgi_app)  # type: ignore[method-assign,assignment]

    @property
    def state(self) -> WebPubSubState:
        """This extension's state in the current app."""
        try:
            state = current_app.extensions[EXTENSION_KEY]
        except KeyError:
            raise RuntimeError(
                "The current Flask app is not registered with this 'WebPubSub' instance. Did "
                "you forget to call 'init_app', or did you create a new instance?"
            ) from None
        if state.extension is not self:
            raise RuntimeError("The current Flask app is registered with another WebPubSub.")
        return state  # type: ignore[no-any-return]

    @property
    def settings(self) -> Settings:
        """The current app's resolved settings."""
        return self.state.settings

    @property
    def client(self) -> WebPubSubServiceClient:
        """The current app's service client for the default hub."""
        return self.state.client

    def client_for(self, hub: str) -> WebPubSubServiceClient:
        """The current app's service client for one of its hubs."""
        return self.state.client_for(hub)

    def get_client_access(
        self, options: NegotiateOptions | dict[str, Any] | None = None, *, hub: str | None = None
    ) -> dict[str, str]:
        """A client access token and URL, as the negotiate route returns them:
        ``{"url", "baseUrl", "token"}``."""
        from .negotiate import client_access

        return client_access(self.state, hub or self.settings.hub, options)


def _exempt_from_csrf(app: Flask, blueprint: Blueprint) -> None:
    """The service cannot send a CSRF token: exempt the upstream routes from Flask-WTF's check,
    whether CSRFProtect was set up before this extension or after it (before the first
    request)."""
    csrf = app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(blueprint)
        return

    @app.before_request
    def exempt_late_csrf() -> None:
        late = app.extensions.get("csrf")
        if late is not None:
            late.exempt(blueprint)
        # Done after the first request: drop this hook by rebinding the list. Flask is iterating
        # the old list object right now, so this skips nothing, as removing in place would.
        funcs = app.before_request_funcs
        funcs[None] = [f for f in funcs.get(None, []) if f is not exempt_late_csrf]
