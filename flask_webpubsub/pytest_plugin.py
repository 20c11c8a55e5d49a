"""pytest fixtures for apps that use flask_webpubsub; active once the package is installed.

- ``webpubsub_client``: a :class:`~flask_webpubsub.testing.WebPubSubTestClient` bound to your
  ``app`` fixture: signed events through Flask's test client, no server needed.
- ``webpubsub_emulator`` and ``webpubsub_live_server``: end-to-end tests with real clients. The
  emulator (the ``emulator`` extra) runs in a background thread and forwards events to your app,
  which ``webpubsub_live_server`` serves on loopback. Build your ``app`` fixture from the
  emulator's connection string::

      @pytest.fixture
      def app(webpubsub_emulator):
          return create_app({"WEBPUBSUB_CONNECTION_STRING": webpubsub_emulator.connection_string})

      def test_chat(webpubsub_live_server):
          negotiate = requests.get(f"{webpubsub_live_server}/negotiate").json()
          client = WebPubSubClient(negotiate["url"])  # azure-messaging-webpubsubclient
          ...

  Override ``webpubsub_event_handler_path`` if your app moved its event handler.

The plugin changes nothing outside these fixtures: no third-party library is patched.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from flask import Flask
from werkzeug.serving import make_server

from .testing import WebPubSubTestClient

if TYPE_CHECKING:
    from .emulator import EmulatorThread


@pytest.fixture
def webpubsub_client(app: Flask) -> WebPubSubTestClient:
    """Signed Web PubSub events for the ``app`` fixture your tests define."""
    return WebPubSubTestClient(app)


@pytest.fixture
def webpubsub_event_handler_path() -> str:
    """The app's ``WEBPUBSUB_EVENT_HANDLER_PATH``, where the emulator sends events."""
    return "/eventhandler"


@pytest.fixture
def _webpubsub_app_socket() -> Iterator[socket.socket]:
    # Bound before the emulator starts, so the emulator knows where the app will listen and the
    # app's config can name the emulator: each needs the other's address first.
    listener = socket.create_server(("127.0.0.1", 0))
    yield listener
    listener.close()


@pytest.fixture
def webpubsub_emulator(
    _webpubsub_app_socket: socket.socket,
    webpubsub_event_handler_path: str,
) -> Iterator[EmulatorThread]:
    """A running local Web PubSub emulator whose events go to ``webpubsub_live_server``."""
    try:
        from .emulator import EmulatorThread
    except ImportError as exc:
        pytest.fail(str(exc))
    port = _webpubsub_app_socket.getsockname()[1]
    emulator = EmulatorThread(
        upstream=f"http://127.0.0.1:{port}{webpubsub_event_handler_path}",
        validate_upstream=False,  # the app is not served yet; checked before the first event
    )
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def webpubsub_live_server(
    app: Flask, webpubsub_emulator: EmulatorThread, _webpubsub_app_socket: socket.socket
) -> Iterator[str]:
    """Your ``app`` served on loopback, with the emulator calling it: its base URL."""
    server = make_server(
        "127.0.0.1", 0, app, threaded=True, fd=_webpubsub_app_socket.fileno()
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{_webpubsub_app_socket.getsockname()[1]}"
    server.shutdown()
    thread.join(5)
