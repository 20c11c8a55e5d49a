"""pytest fixtures for apps that use flask_webpubsub; active once the package is installed.

- ``webpubsub_client``: a :class:`~flask_webpubsub.testing.WebPubSubTestClient` bound to your
  ``app`` fixture, for signed events through Flask's test client.
"""

from __future__ import annotations

import pytest
from flask import Flask

from .testing import WebPubSubTestClient


@pytest.fixture
def webpubsub_client(app: Flask) -> WebPubSubTestClient:
    """Signed Web PubSub events for the ``app`` fixture your tests define."""
    return WebPubSubTestClient(app)
