"""What the extension keeps for one app, at ``app.extensions["webpubsub"]``: its settings, its
hubs and their service clients. Internal: apps use the :class:`~flask_webpubsub.WebPubSub`
instance instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from flask import Flask

from .config import Settings
from .core.errors import ConfigurationError
from .hubs import Hub

if TYPE_CHECKING:
    from azure.messaging.webpubsubservice import WebPubSubServiceClient

#: Where the extension keeps its per-app binding: ``app.extensions[EXTENSION_KEY]``.
EXTENSION_KEY = "webpubsub"


class ClientFactory(Protocol):
    """Builds the service client of one hub. ``WebPubSubServiceClient`` itself is the default;
    tests pass a function that returns a fake, with the same keyword arguments."""

    def __call__(self, *, endpoint: str, hub: str, credential: Any) -> Any: ...


def default_client_factory(*, endpoint: str, hub: str, credential: Any) -> Any:
    """``WebPubSubServiceClient(endpoint=..., hub=..., credential=...)``."""
    from azure.messaging.webpubsubservice import WebPubSubServiceClient

    return WebPubSubServiceClient(endpoint=endpoint, hub=hub, credential=credential)


class AppBinding:
    """One app's settings, hubs and service clients."""

    def __init__(
        self,
        extension: Hub,
        hubs: dict[str, Hub],
        app: Flask,
        settings: Settings,
    ) -> None:
        #: The :class:`~flask_webpubsub.WebPubSub` instance this app is registered with, which
        #: is also the default hub.
        self.extension = extension
        #: The other hubs by lower-case name: the extension's own registry, not a copy.
        self.hubs = hubs
        self.app = app
        self.settings = settings
        self._default_hub = settings.hub.lower()
        self._client_factory: ClientFactory = settings.client_factory or default_client_factory
        self._clients: dict[str, WebPubSubServiceClient] = {}
        self._lock = threading.RLock()
        self._credential: Any = settings.credential
        self._synced: dict[Callable[..., Any], Callable[..., Any]] = {}

    def __repr__(self) -> str:
        return f"<AppBinding hub={self.settings.hub!r} endpoint={self.settings.endpoint.url!r}>"

    def ensure_sync(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """``app.ensure_sync(handler)``, worked out once per handler rather than per event."""
        synced = self._synced.get(handler)
        if synced is None:
            synced = self._synced[handler] = self.app.ensure_sync(handler)
        return synced

    @property
    def hub_names(self) -> list[str]:
        """The hubs this app serves, as configured: the default one first."""
        return [self.settings.hub, *(h.name for h in self.hubs.values() if h.name)]

    def find_hub(self, name: str) -> Hub | None:
        """A served hub's handlers, matched case-insensitively; None for any other hub."""
        key = name.lower()
        if key == self._default_hub:
            return self.extension
        return self.hubs.get(key)

    def canonical_hub_name(self, name: str) -> str | None:
        """The configured spelling of a served hub's name."""
        hub = self.find_hub(name)
        if hub is None:
            return None
        return hub.name if hub is not self.extension and hub.name else self.settings.hub

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

    def _create_client(self, hub: str) -> Any:
        endpoint = self.settings.endpoint
        if endpoint.access_key:
            from azure.core.credentials import AzureKeyCredential

            credential: Any = AzureKeyCredential(endpoint.access_key)
        else:
            credential = self.credential
        return self._client_factory(endpoint=endpoint.url, hub=hub, credential=credential)

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
