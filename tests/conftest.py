"""Shared fixtures: a configured app with echoing handlers, its test client and the signed-event
helper from :mod:`flask_webpubsub.testing`."""

from __future__ import annotations

import pytest
from flask import Flask

from flask_webpubsub import WebPubSub
from flask_webpubsub.testing import WebPubSubTestClient

#: Realistic keys: 44 characters, like the service's base64 keys.
PRIMARY_KEY = "cHJpbWFyeS1rZXktZm9yLXRlc3RzLW9ubHktMDAwMDA="
SECONDARY_KEY = "c2Vjb25kYXJ5LWtleS1mb3ItdGVzdHMtb25seS0wMDA="
ENDPOINT = "https://contoso.webpubsub.azure.com"
CONNECTION_STRING = f"Endpoint={ENDPOINT};AccessKey={PRIMARY_KEY};Version=1.0;"
HOST = "contoso.webpubsub.azure.com"


def make_app(**config: object) -> Flask:
    """A bare app configured for the tests' service."""
    app = Flask(__name__)
    app.config.update(
        TESTING=True,
        WEBPUBSUB_CONNECTION_STRING=CONNECTION_STRING,
        WEBPUBSUB_HUB="chat",
    )
    app.config.update(config)
    return app


@pytest.fixture
def app() -> Flask:
    """An app with the extension and no handlers (tests register their own)."""
    app = make_app()
    WebPubSub(app)
    return app


@pytest.fixture
def webpubsub(app: Flask) -> WebPubSub:
    return app.extensions["webpubsub"].extension  # type: ignore[no-any-return]


@pytest.fixture
def wps(app: Flask) -> WebPubSubTestClient:
    """Signed events for ``app``."""
    return WebPubSubTestClient(app)
